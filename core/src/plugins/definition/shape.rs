//! The canonical `data` shapes (DESIGN.md, "The event envelope"), as the slots a definition
//! fills by pointer, and the message fields every `message.*` type carries when its definition
//! names none (read from the usual keys, as the SDK's `unknown_type_data` does).

use super::{Data, Field, Kind, Source, Spec, TimeFormat};
use crate::base::locate::KeyPath;

/// What one slot of a shape holds.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    Value(Kind),
    Object(&'static [&'static str]),
}

const MEDIA: &[&str] = &["url", "mime_type", "caption"];
const CONTACT: &[&str] = &["id", "name", "phone"];

const MESSAGE: &[(&str, Slot)] = &[
    ("message_id", Slot::Value(Kind::Text)),
    ("from", Slot::Value(Kind::Text)),
    ("to", Slot::Value(Kind::Text)),
    ("text", Slot::Value(Kind::Text)),
    ("media", Slot::Object(MEDIA)),
    ("contact", Slot::Object(CONTACT)),
    ("conversation_id", Slot::Value(Kind::Text)),
    ("sent_at", Slot::Value(Kind::Time)),
    ("history", Slot::Value(Kind::List)),
];

const STATUS: &[(&str, Slot)] = &[
    ("message_id", Slot::Value(Kind::Text)),
    ("status", Slot::Value(Kind::Lower)),
    ("at", Slot::Value(Kind::Time)),
];

const CONTACT_UPDATED: &[(&str, Slot)] = &[("contact", Slot::Object(CONTACT))];

const MEDIA_UPLOADED: &[(&str, Slot)] = &[
    ("message_id", Slot::Value(Kind::Text)),
    ("media", Slot::Object(MEDIA)),
];

/// The canonical types a `types` entry may map to.
pub(super) const CANONICAL: &[&str] = &[
    "message.received",
    "message.status",
    "contact.updated",
    "media.uploaded",
];

/// The shape of an event type's `data`: the canonical types', the message fields for any other
/// `message.*` type, none (the payload passes through) for the rest.
pub(super) fn of(event_type: &str) -> Option<&'static [(&'static str, Slot)]> {
    match event_type {
        "message.status" => Some(STATUS),
        "contact.updated" => Some(CONTACT_UPDATED),
        "media.uploaded" => Some(MEDIA_UPLOADED),
        t if t.starts_with("message.") => Some(MESSAGE),
        _ => None,
    }
}

/// The message fields of a `message.*` type the definition gives no `data` for.
pub(super) fn default_message() -> Data {
    let spec = |keys: &[&str], format: Option<TimeFormat>| Spec {
        sources: (keys.iter())
            .map(|key| Source {
                from: super::From::Pointer(format!("/{key}")),
                lower: false,
                format,
                decode: false,
            })
            .collect(),
        at: KeyPath::root(),
    };
    let value = |name: &str| -> Option<Field> {
        let (kind, keys, format): (Kind, &[&str], _) = match name {
            "message_id" => (Kind::Text, &["message_id", "messageId"], None),
            "conversation_id" => (Kind::Text, &["conversation_id", "conversationId"], None),
            "from" => (Kind::Text, &["from"], None),
            "to" => (Kind::Text, &["to"], None),
            "text" => (Kind::Text, &["text"], None),
            "sent_at" => (Kind::Time, &["timestamp"], Some(TimeFormat::Auto)),
            _ => return None,
        };
        Some(Field::Value(kind, spec(keys, format)))
    };
    Data::Shape(
        MESSAGE
            .iter()
            .map(|(name, _)| (*name, value(name)))
            .collect(),
    )
}
