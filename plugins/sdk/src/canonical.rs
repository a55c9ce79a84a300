//! The canonical `data` shapes shared by every vendor, so one consumer serves all of them.
//!
//! Fields a vendor does not send are `None` and serialise as `null`: never guessed.

use serde::Serialize;

/// `message.received`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageReceived {
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub text: Option<String>,
    pub media: Option<Media>,
    pub contact: Option<Contact>,
    pub conversation_id: Option<String>,
    /// RFC 3339.
    pub sent_at: Option<String>,
    /// Earlier messages of the conversation, decoded, when the vendor sends them (WhatsAble's
    /// `last_messages`); `null` otherwise.
    pub history: Option<serde_json::Value>,
}

/// `message.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageStatus {
    pub message_id: Option<String>,
    /// Lower case: `sent`, `delivered`, `read`, `failed`...
    pub status: Option<String>,
    /// RFC 3339.
    pub at: Option<String>,
}

/// `contact.updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContactUpdated {
    pub contact: Contact,
}

/// `media.uploaded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MediaUploaded {
    pub message_id: Option<String>,
    pub media: Media,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Media {
    pub url: Option<String>,
    pub mime_type: Option<String>,
    pub caption: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Contact {
    pub id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// Canonical type names.
pub const MESSAGE_RECEIVED: &str = "message.received";
pub const MESSAGE_STATUS: &str = "message.status";
pub const CONTACT_UPDATED: &str = "contact.updated";
pub const MEDIA_UPLOADED: &str = "media.uploaded";

/// Serialises a canonical shape into the envelope's `data`.
pub fn to_data<T: Serialize>(shape: &T) -> serde_json::Value {
    // These shapes hold only strings and options: serialisation cannot fail.
    serde_json::to_value(shape).unwrap_or(serde_json::Value::Null)
}
