//! The canonical event envelope every sink receives, and the event id that names it.

use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::base::names::{VendorName, WorkspaceId};
use crate::event::dedupe::{DedupeBasis, DedupeKey};
use crate::plugins::MappedEvent;

/// A ULID assigned on accept: unique, and ordered by time so queues and lookups sort by it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(ulid::Ulid);

static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);

impl EventId {
    /// A new id, strictly greater than every id this process generated before, so events
    /// accepted in one millisecond keep their order.
    pub fn generate() -> EventId {
        let mut guard = GENERATOR
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let generator = guard.get_or_insert_with(ulid::Generator::new);
        // Overflow needs 2^80 ids in one millisecond; fall back to a random one rather than fail.
        EventId(generator.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }

    pub fn parse(s: &str) -> Option<EventId> {
        ulid::Ulid::from_string(s).ok().map(EventId)
    }

    /// Big-endian bytes: byte order is time order, for sled keys.
    pub fn to_bytes(&self) -> [u8; 16] {
        self.0.to_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> EventId {
        EventId(ulid::Ulid::from_bytes(bytes))
    }

    /// The id right after this one in byte (and time) order: where a scan resumes.
    pub fn successor(&self) -> Option<EventId> {
        self.0.increment().map(EventId)
    }

    /// Milliseconds since the Unix epoch at which the id was generated.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
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
    pub data: &'a RawValue,
    pub raw: &'a RawValue,
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
        }
    }

    /// Compact JSON: no newlines, so JSON-lines sinks stay one event per line.
    pub fn to_json(&self) -> Vec<u8> {
        // Sized for `raw` and `data` plus the other fields, so a large event's JSON is written
        // once instead of being copied as its buffer doubles.
        let mut json = Vec::with_capacity(self.raw.get().len() + self.data.get().len() + 1024);
        // Every field is a string, an option or already-valid JSON: serialisation cannot fail.
        match serde_json::to_writer(&mut json, self) {
            Ok(()) => json,
            Err(_) => Vec::new(),
        }
    }
}

/// RFC 3339 in UTC with millisecond precision.
pub fn rfc3339(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing_and_round_trip() {
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let id = &ids[0];
        assert_eq!(EventId::parse(&id.to_string()).as_ref(), Some(id));
        assert_eq!(&EventId::from_bytes(id.to_bytes()), id);
        assert_eq!(EventId::parse("not-a-ulid"), None);
    }

    #[test]
    fn received_at_is_rfc3339_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
    }
}
