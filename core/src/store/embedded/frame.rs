//! The write-ahead log's frame: the queues a batch's events go to, the events (id, claim
//! expiry, dedupe key, queues, compressed envelope), then the sink cursors logged with it.
//! Encoded by the writer, decoded by the applier, the queues' readers and the recovery.
//!
//! Payload: the frame format byte, `u16` queue count and each queue's prefix, `u32` event
//! count and each event, `u32` cursor count and each cursor (queue prefix, read position, the
//! events it still owes behind that position). Queues are named once per frame; an event
//! names its queues by their index in that table.

use super::super::Accept;
use super::record::FRAME_FORMAT;
use super::wal::Position;
use crate::base::id::EventId;
use crate::store::codec::{self, Reader, RecordError};

/// A batch stops growing here, so one huge burst does not delay its first waiters for long.
pub(super) const MAX_BATCH_EVENTS: usize = 4096;

/// Where one event is in the log: the frame holding it and its index there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct EventAt {
    pub frame: Position,
    pub index: u32,
}

/// How far a sink's queue is through the log: every event routed to it in a frame before
/// `read` is settled (delivered, dead, or has its attempts in sled), except those in `owed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Cursor {
    pub read: Position,
    /// Ascending.
    pub owed: Vec<EventAt>,
}

impl Cursor {
    /// The first log position this queue may still need.
    pub fn low(&self) -> Position {
        self.owed
            .first()
            .map_or(self.read, |at| at.frame.min(self.read))
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_position(out, self.read);
        out.extend_from_slice(&(self.owed.len() as u32).to_be_bytes());
        for at in &self.owed {
            put_position(out, at.frame);
            out.extend_from_slice(&at.index.to_be_bytes());
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Cursor, RecordError> {
        let read = position(r)?;
        let n = r.u32()?;
        let mut owed = Vec::with_capacity(n.min(4096) as usize);
        for _ in 0..n {
            let frame = position(r)?;
            owed.push(EventAt {
                frame,
                index: r.u32()?,
            });
        }
        Ok(Cursor { read, owed })
    }
}

fn put_position(out: &mut Vec<u8>, at: Position) {
    out.extend_from_slice(&at.segment.to_be_bytes());
    out.extend_from_slice(&at.offset.to_be_bytes());
}

fn position(r: &mut Reader<'_>) -> Result<Position, RecordError> {
    Ok(Position {
        segment: r.u64()?,
        offset: r.u64()?,
    })
}

/// One new event as the log holds it.
pub(super) struct LoggedEvent<'a> {
    pub id: EventId,
    pub expires_at_ms: u64,
    pub key: &'a [u8],
    /// Indexes into the frame's queue table.
    pub queues: Vec<u16>,
    /// The compressed envelope, and where it starts in the payload.
    pub envelope: &'a [u8],
    pub envelope_at: usize,
}

/// A decoded frame.
pub(super) struct Frame<'a> {
    pub queues: Vec<&'a [u8]>,
    pub events: Vec<LoggedEvent<'a>>,
    pub cursors: Vec<(&'a [u8], Cursor)>,
}

impl Frame<'_> {
    /// The index of a queue in this frame's table.
    pub fn queue_index(&self, prefix: &[u8]) -> Option<u16> {
        self.queues
            .iter()
            .position(|q| *q == prefix)
            .and_then(|i| u16::try_from(i).ok())
    }
}

/// Encodes a batch's new events and the cursors logged with them.
pub(super) fn encode(events: &[&Accept], cursors: &[(Vec<u8>, Cursor)]) -> Vec<u8> {
    let mut table: Vec<&[u8]> = Vec::new();
    for accept in events {
        for q in &accept.queues {
            if !table.contains(&q.prefix()) {
                table.push(q.prefix());
            }
        }
    }
    let mut out = vec![FRAME_FORMAT];
    out.extend_from_slice(&(table.len() as u16).to_be_bytes());
    for q in &table {
        codec::put_bytes16(&mut out, q);
    }
    out.extend_from_slice(&(events.len() as u32).to_be_bytes());
    for a in events {
        out.extend_from_slice(&a.id.to_bytes());
        out.extend_from_slice(&a.claim_expires_at_ms.to_be_bytes());
        codec::put_bytes32(&mut out, a.key.as_bytes());
        // Config refuses more than 255 sinks for one route's event.
        let queues: Vec<u16> = (a.queues.iter())
            .filter_map(|q| table.iter().position(|t| *t == q.prefix()))
            .map(|i| i as u16)
            .take(usize::from(u8::MAX))
            .collect();
        out.push(queues.len() as u8);
        for i in queues {
            out.extend_from_slice(&i.to_be_bytes());
        }
        codec::put_bytes32(&mut out, &a.envelope);
    }
    out.extend_from_slice(&(cursors.len() as u32).to_be_bytes());
    for (prefix, cursor) in cursors {
        codec::put_bytes16(&mut out, prefix);
        cursor.encode(&mut out);
    }
    out
}

pub(super) fn decode(payload: &[u8]) -> Result<Frame<'_>, RecordError> {
    let mut r = Reader(payload);
    match r.u8()? {
        FRAME_FORMAT => {}
        other => return Err(RecordError::Version(other)),
    }
    let queues = (0..r.u16()?)
        .map(|_| r.bytes16())
        .collect::<Result<Vec<_>, _>>()?;
    let count = r.u32()?;
    let mut events = Vec::with_capacity(count.min(MAX_BATCH_EVENTS as u32) as usize);
    for _ in 0..count {
        let id: [u8; 16] = r.take(16)?.try_into().map_err(|_| RecordError::Damaged)?;
        let expires_at_ms = r.u64()?;
        let key = r.bytes32()?;
        let mut routed = Vec::new();
        for _ in 0..r.u8()? {
            let i = r.u16()?;
            if usize::from(i) >= queues.len() {
                return Err(RecordError::Damaged);
            }
            routed.push(i);
        }
        let len = r.u32()? as usize;
        let envelope_at = payload.len() - r.0.len();
        let envelope = r.take(len)?;
        events.push(LoggedEvent {
            id: EventId::from_bytes(id),
            expires_at_ms,
            key,
            queues: routed,
            envelope,
            envelope_at,
        });
    }
    let mut cursors = Vec::new();
    for _ in 0..r.u32()? {
        let prefix = r.bytes16()?;
        cursors.push((prefix, Cursor::decode(&mut r)?));
    }
    if !r.is_empty() {
        return Err(RecordError::Damaged);
    }
    Ok(Frame {
        queues,
        events,
        cursors,
    })
}

/// The payload of a frame that holds nothing, exactly `len` bytes long (11, or 13 and more):
/// an empty batch whose queue table is padding (names no real queue has, so no event or
/// cursor refers to them). `store verify --salvage` writes it over unreadable bytes, so that
/// every position after them stays where the index and the cursors say it is.
pub(super) fn empty(len: usize) -> Option<Vec<u8>> {
    const BARE: usize = 11;
    const MAX_ENTRY: usize = 2 + u16::MAX as usize;
    let mut entries = Vec::new();
    let mut rest = len.checked_sub(BARE)?;
    while rest > 0 {
        // Each entry takes 2 bytes or more: never leave 1 behind.
        let take = match rest.min(MAX_ENTRY) {
            take if rest - take == 1 => take - 1,
            take => take,
        };
        entries.push(take.checked_sub(2)?);
        rest -= take;
    }
    let count = u16::try_from(entries.len()).ok()?;
    let mut out = vec![FRAME_FORMAT];
    out.extend_from_slice(&count.to_be_bytes());
    for padding in entries {
        codec::put_bytes16(&mut out, &vec![0; padding]);
    }
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::names::{SinkName, WorkspaceId};
    use crate::event::dedupe::{DedupeKey, Identity};
    use crate::store::embedded::record::compress;
    use crate::store::SinkQueue;

    #[test]
    fn frames_round_trip_with_their_queue_table_and_cursors_and_damage_is_an_error() {
        let ws = WorkspaceId::new("acme");
        let (crm, audit) = (
            SinkQueue::new(&ws, &SinkName::new("crm"), 0, 0),
            SinkQueue::new(&ws, &SinkName::new("audit"), 0, 0),
        );
        let identity = Identity::implied(
            Some("evt_1"),
            None,
            &serde_json::value::RawValue::NULL.to_owned(),
        );
        let vendor = crate::base::names::VendorName::new("watsi");
        let accept = |queues: Vec<SinkQueue>| Accept {
            key: DedupeKey::derive(&ws, &vendor, &identity).0,
            id: EventId::generate(),
            claim_expires_at_ms: 7,
            now_ms: 0,
            envelope: compress(b"{\"n\":1}"),
            queues,
        };
        let (a, b) = (
            accept(vec![crm.clone(), audit.clone()]),
            accept(vec![audit]),
        );
        let cursor = Cursor {
            read: Position {
                segment: 2,
                offset: 40,
            },
            owed: vec![EventAt {
                frame: Position {
                    segment: 1,
                    offset: 8,
                },
                index: 3,
            }],
        };
        let payload = encode(&[&a, &b], &[(crm.prefix().to_vec(), cursor.clone())]);
        let frame = decode(&payload).unwrap();
        assert_eq!(frame.queues.len(), 2);
        assert_eq!(frame.events[0].id, a.id);
        assert_eq!(frame.events[0].queues, [0, 1]);
        assert_eq!(frame.events[1].queues, [1]);
        assert_eq!(frame.queue_index(crm.prefix()), Some(0));
        let at = frame.events[1].envelope_at;
        assert_eq!(
            &payload[at..at + frame.events[1].envelope.len()],
            &b.envelope[..]
        );
        assert_eq!(frame.cursors, vec![(crm.prefix(), cursor.clone())]);
        assert_eq!(cursor.low().segment, 1);
        assert!(decode(&payload[..payload.len() - 1]).is_err());
        let mut other = payload.clone();
        other[0] = 1;
        assert_eq!(decode(&other).err(), Some(RecordError::Version(1)));
    }

    #[test]
    fn an_empty_frame_fills_exactly_the_length_asked_and_decodes_to_nothing() {
        for len in [11, 13, 14, 100, 65_548, 65_549, 65_550, 200_000] {
            let payload = empty(len).unwrap();
            assert_eq!(payload.len(), len);
            let frame = decode(&payload).unwrap();
            assert!(frame.events.is_empty() && frame.cursors.is_empty(), "{len}");
            assert_eq!(frame.queue_index(b"acme/crm\0"), None);
        }
        assert!(empty(10).is_none() && empty(12).is_none());
    }
}
