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
    /// The request body: its bytes, checked to be JSON, never re-serialised (see [`crate::plugins::wire::raw_json`]).
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
