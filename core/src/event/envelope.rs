//! The canonical event envelope every sink receives, and [`MappedEvent`]: what a vendor plugin
//! says an event is, from which the envelope is written.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::base::id::{rfc3339, EventId};
use crate::base::names::{VendorName, WorkspaceId};
use crate::event::dedupe::{DedupeBasis, DedupeKey, Identity};

/// The vendor-dependent envelope fields as the plugin wrote them, the event's identity, and the
/// request body. `data` and `raw` stay serialised: the core only embeds them.
#[derive(Debug)]
pub struct MappedEvent {
    pub vendor_type: String,
    pub canonical_type: String,
    pub vendor_event_id: Option<String>,
    pub occurred_at: Option<String>,
    pub data: Box<RawValue>,
    pub identity: Identity,
    /// The request body: its bytes, checked to be JSON, never re-serialised (see
    /// [`crate::plugins::wire::raw_json`]).
    pub raw: Box<RawValue>,
}

/// The envelope as serialised for sinks, one JSON object (one line) per event.
#[derive(Serialize)]
pub struct Envelope<'a> {
    pub id: String,
    pub workspace: &'a WorkspaceId,
    pub vendor: &'a VendorName,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub vendor_type: &'a str,
    pub vendor_event_id: Option<&'a str>,
    pub dedupe_key: &'a str,
    pub dedupe_basis: &'static str,
    pub occurred_at: Option<&'a str>,
    pub received_at: String,
    /// The request's `Content-Type` as the vendor sent it, for sinks that relay the body as
    /// received (`format: raw`); absent when the request had none (and in envelopes written
    /// before it was kept). It and `raw_body` come before `data`, so `raw` stays last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_content_type: Option<&'a str>,
    /// The body byte for byte, only when it differs from `raw` (which drops its line breaks so
    /// the envelope stays one line); JSON is text, so it is a string here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<&'a str>,
    pub data: &'a RawValue,
    pub raw: &'a RawValue,
    /// The W3C trace context of the request that brought the event, when traces are on
    /// (`server.telemetry`): its delivery attempts continue that trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl<'a> Envelope<'a> {
    pub fn new(
        id: &EventId,
        workspace: &'a WorkspaceId,
        vendor: &'a VendorName,
        mapped: &'a MappedEvent,
        dedupe: (&'a DedupeKey, DedupeBasis),
        received_at: SystemTime,
    ) -> Envelope<'a> {
        Envelope {
            id: id.to_string(),
            workspace,
            vendor,
            event_type: &mapped.canonical_type,
            vendor_type: &mapped.vendor_type,
            vendor_event_id: mapped.vendor_event_id.as_deref(),
            dedupe_key: dedupe.0.as_str(),
            dedupe_basis: dedupe.1.as_str(),
            occurred_at: mapped.occurred_at.as_deref(),
            received_at: rfc3339(received_at),
            data: &mapped.data,
            raw: &mapped.raw,
            raw_content_type: None,
            raw_body: None,
            traceparent: None,
        }
    }

    /// Keeps how the request came: its content type, and its body when `raw` is not it byte
    /// for byte.
    pub fn received_as(mut self, content_type: Option<&'a str>, body: &'a [u8]) -> Envelope<'a> {
        self.raw_content_type = content_type;
        if body != self.raw.get().as_bytes() {
            self.raw_body = std::str::from_utf8(body).ok();
        }
        self
    }

    /// Compact JSON: no newlines, so JSON-lines sinks stay one event per line.
    pub fn to_json(&self) -> Vec<u8> {
        // Sized for `raw` and `data` plus the other fields, so a large event's JSON is written
        // once instead of being copied as its buffer doubles.
        let body = self.raw_body.map_or(0, str::len);
        let mut json =
            Vec::with_capacity(self.raw.get().len() + self.data.get().len() + body + 1024);
        // Every field is a string, an option or already-valid JSON: serialisation cannot fail.
        match serde_json::to_writer(&mut json, self) {
            Ok(()) => json,
            Err(_) => Vec::new(),
        }
    }
}

/// How [`Envelope::to_json`] ends when the event has a `traceparent`: `,"traceparent":"`, the
/// 55 characters of a version-00 trace context, `"}`.
const TRACEPARENT_KEY: &[u8] = b",\"traceparent\":\"";
const TRACEPARENT_LEN: usize = 55;

/// The `traceparent` a stored envelope carries, read off its end without parsing the rest:
/// every delivery attempt needs it, and the envelope is mostly `data` and `raw`. It is written
/// last, right after `raw`; `raw` is valid JSON, so when the envelope has no `traceparent` its
/// end cannot look like one (a JSON string holds no unescaped quote, and `raw` itself follows
/// `"raw":`, not this key).
pub fn stored_traceparent(envelope: &[u8]) -> Option<&str> {
    let tail = envelope.strip_suffix(b"\"}")?;
    let (head, value) = tail.split_at_checked(tail.len().checked_sub(TRACEPARENT_LEN)?)?;
    head.ends_with(TRACEPARENT_KEY)
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::dedupe::DedupeBasis;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn mapped(raw: &str) -> MappedEvent {
        let raw = RawValue::from_string(raw.to_owned()).unwrap();
        MappedEvent {
            vendor_type: "message".into(),
            canonical_type: "message.received".into(),
            vendor_event_id: Some("evt_1".into()),
            occurred_at: None,
            data: RawValue::from_string(r#"{"traceparent":"x"}"#.into()).unwrap(),
            identity: Identity::body_hash(&raw),
            raw,
        }
    }

    fn json(mapped: &MappedEvent, traceparent: Option<&str>) -> Vec<u8> {
        let (workspace, vendor) = (WorkspaceId::new("acme"), VendorName::new("watsi"));
        let (key, basis) = DedupeKey::derive(&workspace, &vendor, &mapped.identity);
        assert_eq!(basis, DedupeBasis::BodyHash);
        let mut envelope = Envelope::new(
            &EventId::generate(),
            &workspace,
            &vendor,
            mapped,
            (&key, basis),
            SystemTime::now(),
        );
        envelope.traceparent = traceparent.map(str::to_owned);
        envelope.to_json()
    }

    #[test]
    fn the_stored_traceparent_is_read_back_off_the_envelopes_end() {
        let event = mapped(r#"{"id":"evt_1","text":"hi"}"#);
        let envelope = json(&event, Some(TRACEPARENT));
        assert_eq!(stored_traceparent(&envelope), Some(TRACEPARENT));
        let parsed: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        assert_eq!(parsed["traceparent"], TRACEPARENT);
    }

    #[test]
    fn a_raw_body_that_ends_like_a_traceparent_is_not_taken_for_one() {
        let lookalikes = [
            format!(r#"{{"a":1,"traceparent":"{TRACEPARENT}"}}"#),
            format!(r#"["traceparent","{TRACEPARENT}"]"#),
            format!(r#""{TRACEPARENT}""#),
            format!(r#""x\",\"traceparent\":\"{TRACEPARENT}""#),
        ];
        for raw in lookalikes {
            let envelope = json(&mapped(&raw), None);
            assert_eq!(stored_traceparent(&envelope), None, "raw {raw}");
            let envelope = json(&mapped(&raw), Some(TRACEPARENT));
            assert_eq!(
                stored_traceparent(&envelope),
                Some(TRACEPARENT),
                "raw {raw}"
            );
        }
    }
}
