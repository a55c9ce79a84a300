//! The canonical `data` shapes shared by every vendor, so one consumer serves all of them.
//!
//! Fields a vendor does not send are `None` and serialise as `null`: never guessed.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::payload;

/// `message.received`, and the canonical message fields of every other `message.*` type except
/// `message.status` (a DocsSmith `message.updated`, a type a plugin does not know yet).
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

/// The `data` of a type the plugin does not know: the payload's own `data`, except that a
/// `message.*` type still carries the canonical message fields (read from the usual keys, null
/// where absent), so one consumer of `message.*` serves every vendor.
pub fn unknown_type_data(vendor_type: &str, data: &Map<String, Value>) -> Value {
    if !vendor_type.starts_with("message.") {
        return Value::Object(data.clone());
    }
    let text = |keys: &[&str]| keys.iter().find_map(|k| payload::text(data, k));
    to_data(&MessageReceived {
        message_id: text(&["message_id", "messageId"]),
        from: text(&["from"]),
        to: text(&["to"]),
        text: text(&["text"]),
        conversation_id: text(&["conversation_id", "conversationId"]),
        sent_at: payload::timestamp(data, "timestamp"),
        ..MessageReceived::default()
    })
}

/// Serialises a canonical shape into the envelope's `data`.
pub fn to_data<T: Serialize>(shape: &T) -> Value {
    // These shapes hold only strings, options and JSON values: serialisation cannot fail.
    serde_json::to_value(shape).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_message_types_carry_the_message_fields() {
        let data = json!({"messageId": "m1", "text": "hi", "emoji": "+1"});
        let data = data.as_object().unwrap();
        assert_eq!(
            unknown_type_data("message.reaction", data),
            json!({"message_id":"m1","from":null,"to":null,"text":"hi","media":null,
                   "contact":null,"conversation_id":null,"sent_at":null,"history":null})
        );
        assert_eq!(
            unknown_type_data("call.missed", data),
            Value::Object(data.clone())
        );
    }
}
