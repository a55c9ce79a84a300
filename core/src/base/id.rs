//! The ids and times every layer shares: [`EventId`] names an accepted event (a ULID, ordered by
//! time), [`rfc3339`] writes a time for people and sinks, [`millis`] for the stores.

use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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

/// RFC 3339 in UTC with millisecond precision.
pub fn rfc3339(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
