//! What `map_event` returns: the envelope's vendor-dependent fields, and why mapping failed.

use serde::Serialize;
use serde_json::Value;

/// The vendor-dependent part of the event envelope. The core adds `id`, `workspace`, `vendor`,
/// the dedupe fields and `received_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappedEvent {
    /// The event name as the vendor spells it, e.g. `incoming_message`.
    pub vendor_type: String,
    /// The canonical type shared by all vendors, e.g. `message.received`; equal to
    /// `vendor_type` for types the plugin does not know.
    #[serde(rename = "type")]
    pub canonical_type: String,
    /// The vendor's own event id, when the payload carries one (the preferred dedupe basis).
    pub vendor_event_id: Option<String>,
    /// When the event happened, RFC 3339, from the payload; `None` when it does not say.
    pub occurred_at: Option<String>,
    /// Canonical fields for the type (see [`crate::canonical`]); the payload's own data for
    /// types without a canonical shape.
    pub data: Value,
    /// The vendor's payload exactly as parsed.
    pub raw: Value,
}

/// Why a payload could not be mapped. The core answers 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("{0}")]
    Other(String),
}
