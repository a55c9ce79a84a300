//! What `map_event` returns: the envelope's vendor-dependent fields, what identifies the event,
//! and why mapping failed.

use serde::Serialize;
use serde_json::Value;

/// The vendor-dependent part of the event envelope. The core adds `id`, `workspace`, `vendor`,
/// the dedupe fields (from [`MappedEvent::identity`]), `received_at`, and `raw`: the request
/// body as it arrived, which the core keeps itself so that nothing re-serialises it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappedEvent {
    /// The event name as the vendor spells it, e.g. `incoming_message`.
    pub vendor_type: String,
    /// The canonical type shared by all vendors, e.g. `message.received`; equal to
    /// `vendor_type` for types the plugin does not know.
    #[serde(rename = "type")]
    pub canonical_type: String,
    /// The vendor's own event id, when the payload carries one.
    pub vendor_event_id: Option<String>,
    /// When the event happened, RFC 3339, from the payload; `None` when it does not say.
    pub occurred_at: Option<String>,
    /// Canonical fields for the type (see [`crate::canonical`]); the payload's own data for
    /// types without a canonical shape.
    pub data: Value,
    /// What makes this event this event: the core keys its repeat check on it.
    pub identity: Identity,
}

impl MappedEvent {
    /// An event of `vendor_type`, mapped to `canonical_type` with its canonical `data`, and what
    /// identifies it; the vendor's event id and when it happened are added with
    /// [`MappedEvent::vendor_event_id`] and [`MappedEvent::occurred_at`] where the payload says.
    pub fn new(
        vendor_type: impl Into<String>,
        canonical_type: impl Into<String>,
        data: Value,
        identity: Identity,
    ) -> MappedEvent {
        MappedEvent {
            vendor_type: vendor_type.into(),
            canonical_type: canonical_type.into(),
            vendor_event_id: None,
            occurred_at: None,
            data,
            identity,
        }
    }

    /// The vendor's own event id, for the envelope's `vendor_event_id`.
    pub fn vendor_event_id(mut self, id: Option<String>) -> MappedEvent {
        self.vendor_event_id = id;
        self
    }

    /// When the event happened, RFC 3339 (as [`crate::payload::timestamp`] gives it).
    pub fn occurred_at(mut self, at: Option<String>) -> MappedEvent {
        self.occurred_at = at;
        self
    }
}

/// What identifies one event, so that the core recognises the vendor's retries of it, and only
/// those. Pick the first that holds for the vendor:
///
/// 1. [`Identity::event_id`]: the vendor's event id, where it is stable across retries and unique
///    per event; [`Identity::and`] adds what makes it unique where the id alone is not.
/// 2. [`Identity::delivery_id`]: the delivery id, where that is what the vendor documents.
/// 3. [`Identity::content`]: the fields that identify the event, where there is no id.
/// 4. [`Identity::body_hash`]: a hash of the body's canonical JSON (sorted keys, no whitespace),
///    computed by the core, so a retry that re-serialises the body is still a repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    basis: Basis,
    parts: Vec<Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Basis {
    EventId,
    DeliveryId,
    Content,
    BodyHash,
}

impl Identity {
    pub fn event_id(id: impl Into<String>) -> Identity {
        Identity {
            basis: Basis::EventId,
            parts: vec![Some(id.into())],
        }
    }

    /// Adds a part to an event id that is not unique on its own (absent: `None`).
    pub fn and(mut self, part: Option<String>) -> Identity {
        self.parts.push(part);
        self
    }

    pub fn delivery_id(id: impl Into<String>) -> Identity {
        Identity {
            basis: Basis::DeliveryId,
            parts: vec![Some(id.into())],
        }
    }

    /// The identifying fields, in a fixed order; absent ones are `None`. The core hashes them,
    /// so message text in a key never reaches a log.
    pub fn content(parts: impl IntoIterator<Item = Option<String>>) -> Identity {
        Identity {
            basis: Basis::Content,
            parts: parts.into_iter().collect(),
        }
    }

    pub fn body_hash() -> Identity {
        Identity {
            basis: Basis::BodyHash,
            parts: Vec::new(),
        }
    }

    /// `event_id`, `delivery_id`, `content` or `body_hash`, as the envelope's `dedupe_basis`.
    pub fn basis(&self) -> &'static str {
        match self.basis {
            Basis::EventId => "event_id",
            Basis::DeliveryId => "delivery_id",
            Basis::Content => "content",
            Basis::BodyHash => "body_hash",
        }
    }

    pub fn parts(&self) -> &[Option<String>] {
        &self.parts
    }
}

/// Why a payload could not be mapped. The core answers 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("required field `{0}` is missing or empty")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// Nothing tells this event apart from another: the text says what was looked for.
    #[error("the event cannot be identified: {0}")]
    MissingIdentity(&'static str),
    #[error("{0}")]
    Other(String),
}
