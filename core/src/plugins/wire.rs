//! The core's side of the plugin wire format: what `map_event` writes (JSON, read into
//! [`MappedEvent`]) and the status it returns. The SDK (`switchyard-plugin`) is the other side;
//! `plugins/abi` holds the status codes both agree on.

use serde::Deserialize;
use serde_json::value::RawValue;
use switchyard_plugin_abi as abi;

use super::MapFailure;
use crate::event::dedupe::{Identity, IdentityError};
use crate::event::envelope::MappedEvent;

/// What `map_event` writes. A plugin's own `raw` (ABI 1.0 plugins still write one) is ignored:
/// the core keeps the request bytes itself.
#[derive(Deserialize)]
struct WireEvent {
    vendor_type: String,
    #[serde(rename = "type")]
    canonical_type: String,
    vendor_event_id: Option<String>,
    occurred_at: Option<String>,
    data: Box<RawValue>,
    /// Since ABI 1.1; absent from a 1.0 plugin's events.
    identity: Option<WireIdentity>,
}

#[derive(Deserialize)]
struct WireIdentity {
    basis: String,
    #[serde(default)]
    parts: Vec<Option<String>>,
}

/// The body as the envelope's `raw`: the request's own bytes, checked to be JSON, so key order,
/// number precision and string escapes survive. Line breaks are the one thing dropped: valid JSON
/// can only hold them between tokens, where they mean nothing, and a JSON-lines sink needs each
/// envelope on one line.
pub fn raw_json(body: &[u8]) -> Result<Box<RawValue>, String> {
    serde_json::from_slice::<&RawValue>(body)
        .map_err(|e| format!("body is not valid JSON: {e}"))?;
    let one_line: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    // Still valid UTF-8 and JSON: only whitespace bytes between tokens were removed.
    let text = String::from_utf8(one_line).map_err(|e| format!("body is not valid JSON: {e}"))?;
    RawValue::from_string(text).map_err(|e| format!("body is not valid JSON: {e}"))
}

/// The event a plugin's `map_event` answered with `status` and `out`, around the request body
/// `raw`. Without an identity (ABI 1.0), the event id, else `delivery_id`, else the body names it.
pub(super) fn mapped(
    status: u32,
    out: &[u8],
    raw: Box<RawValue>,
    delivery_id: Option<&str>,
) -> Result<MappedEvent, MapFailure> {
    let text = || String::from_utf8_lossy(out).into_owned();
    match status {
        abi::MAP_OK => {}
        abi::MAP_INVALID_PAYLOAD => return Err(MapFailure::InvalidPayload(text())),
        abi::MAP_PANICKED => return Err(MapFailure::PluginFailed(text())),
        other => {
            return Err(MapFailure::PluginFailed(format!(
                "plugin returned unknown status {other}"
            )))
        }
    }
    let event: WireEvent = serde_json::from_slice(out).map_err(|e| {
        MapFailure::PluginFailed(format!("plugin wrote an invalid mapped event: {e}"))
    })?;
    if event.canonical_type.is_empty() || event.vendor_type.is_empty() {
        return Err(MapFailure::InvalidPayload("the event type is empty".into()));
    }
    let identity = match &event.identity {
        Some(wire) => {
            Identity::from_parts(&wire.basis, &wire.parts, &raw).map_err(|e| match e {
                IdentityError::Empty(_) => MapFailure::InvalidPayload(e.to_string()),
                IdentityError::UnknownBasis(_) => MapFailure::PluginFailed(e.to_string()),
            })?
        }
        None => Identity::implied(event.vendor_event_id.as_deref(), delivery_id, &raw),
    };
    Ok(MappedEvent {
        vendor_type: event.vendor_type,
        canonical_type: event.canonical_type,
        vendor_event_id: event.vendor_event_id,
        occurred_at: event.occurred_at,
        data: event.data,
        identity,
        raw,
    })
}
