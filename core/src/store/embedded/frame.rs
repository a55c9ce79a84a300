//! The write-ahead log's frame: one batch's new events (id, claim expiry, dedupe key, queues,
//! compressed envelope), then the deliveries sinks finished meanwhile. Encoded by the writer,
//! decoded by the applier, the replay and the sweeper.

use super::super::Accept;
use crate::base::id::EventId;
use crate::store::codec::{self, Reader, RecordError};

/// A batch stops growing here, so one huge burst does not delay its first waiters for long.
pub(super) const MAX_BATCH_EVENTS: usize = 4096;

/// Events one sink queue no longer owes.
pub(super) struct Completed {
    pub prefix: Vec<u8>,
    pub ids: Vec<EventId>,
}

/// One new event as the log holds it.
pub(super) struct LoggedEvent<'a> {
    pub id: EventId,
    pub expires_at_ms: u64,
    pub key: &'a [u8],
    pub queues: Vec<&'a [u8]>,
    /// Where the (compressed) envelope starts in the batch's payload, and its length.
    pub envelope_at: usize,
    pub envelope_len: u32,
}

pub(super) fn encode_event(out: &mut Vec<u8>, a: &Accept) {
    out.extend_from_slice(&a.id.to_bytes());
    out.extend_from_slice(&a.claim_expires_at_ms.to_be_bytes());
    codec::put_bytes32(out, a.key.as_bytes());
    out.push(u8::try_from(a.queues.len()).unwrap_or(u8::MAX));
    for q in a.queues.iter().take(usize::from(u8::MAX)) {
        codec::put_bytes16(out, q.prefix());
    }
    codec::put_bytes32(out, &a.envelope);
}

/// A logged frame: the batch's new events, then the deliveries sinks finished meanwhile.
pub(super) struct Frame<'a> {
    pub events: Vec<LoggedEvent<'a>>,
    /// (queue prefix, event id)
    pub completed: Vec<(&'a [u8], EventId)>,
}

pub(super) fn encode_completed(out: &mut Vec<u8>, completed: &[Completed]) {
    let count: usize = completed.iter().map(|c| c.ids.len()).sum();
    out.extend_from_slice(&(count as u32).to_be_bytes());
    for done in completed {
        for id in &done.ids {
            codec::put_bytes16(out, &done.prefix);
            out.extend_from_slice(&id.to_bytes());
        }
    }
}

pub(super) fn decode_frame(payload: &[u8]) -> Result<Frame<'_>, RecordError> {
    let mut r = Reader(payload);
    let events = decode_events(payload, &mut r)?;
    let mut completed = Vec::new();
    if !r.is_empty() {
        for _ in 0..r.u32()? {
            let prefix = r.bytes16()?;
            let id: [u8; 16] = r.take(16)?.try_into().map_err(|_| RecordError::Damaged)?;
            completed.push((prefix, EventId::from_bytes(id)));
        }
    }
    if !r.is_empty() {
        return Err(RecordError::Damaged);
    }
    Ok(Frame { events, completed })
}

pub(super) fn decode_events<'a>(
    payload: &'a [u8],
    r: &mut Reader<'a>,
) -> Result<Vec<LoggedEvent<'a>>, RecordError> {
    let count = r.u32()?;
    let mut events = Vec::with_capacity(count.min(MAX_BATCH_EVENTS as u32) as usize);
    for _ in 0..count {
        let id: [u8; 16] = r.take(16)?.try_into().map_err(|_| RecordError::Damaged)?;
        let expires_at_ms = r.u64()?;
        let key = r.bytes32()?;
        let queues = (0..r.u8()?)
            .map(|_| r.bytes16())
            .collect::<Result<Vec<_>, _>>()?;
        let envelope_len = r.u32()?;
        let envelope_at = payload.len() - r.0.len();
        r.take(envelope_len as usize)?;
        events.push(LoggedEvent {
            id: EventId::from_bytes(id),
            expires_at_ms,
            key,
            queues,
            envelope_at,
            envelope_len,
        });
    }
    Ok(events)
}

/// Each event of a logged batch: its id and where its envelope is in the payload.
pub(super) fn envelopes(payload: &[u8]) -> Result<Vec<(EventId, usize, usize)>, RecordError> {
    Ok(decode_frame(payload)?
        .events
        .into_iter()
        .map(|e| (e.id, e.envelope_at, e.envelope_len as usize))
        .collect())
}
