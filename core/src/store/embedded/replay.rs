//! Bringing sled up to date with the log: after each batch (the applier), and on start after a
//! crash or a heal, replaying what sled may not have made durable.

use std::path::Path;

use super::frame::{decode_frame, LoggedEvent};
use super::record::{Body, Claim, LogSpan, StoredEvent};
use super::wal::{self, Position};
use super::{sync_sled, StoreError, Trees};
use crate::store::codec;

/// Brings sled up to date with logged events, whose batch payload starts at `payload_at` in the
/// log. A replay (after a crash) may meet events sled already has: it keeps newer claims and
/// does not queue again what a sink already finished.
pub(super) fn apply(
    trees: &Trees,
    payload_at: Position,
    events: &[LoggedEvent<'_>],
    replaced_expiry: &[&[u8]],
    replay: bool,
) -> Result<(), StoreError> {
    // Plain inserts, not `apply_batch`: sled 0.34 runs a batch as a transaction, with a
    // process-wide lock and a log reservation per call (measured at ~40 us a call); atomicity
    // across them is the log's job (a crash replays the batch).
    for old in replaced_expiry {
        trees.dedupe_expiry.remove(*old)?;
    }
    for e in events {
        let id = e.id.to_bytes();
        let span = LogSpan {
            segment: payload_at.segment,
            offset: payload_at.offset + e.envelope_at as u64,
            len: e.envelope_len,
        };
        // The event before its queue entries: a worker that sees an entry finds its envelope.
        trees
            .events
            .insert(id, StoredEvent::encode(&e.queues, Body::Logged(span)))?;
        for prefix in &e.queues {
            let mut key = prefix.to_vec();
            key.extend_from_slice(&id);
            if replay {
                let mut done = id.to_vec();
                done.extend_from_slice(prefix);
                if trees.delivered.contains_key(&done)? || trees.dead.contains_key(&key)? {
                    continue;
                }
            }
            trees.queue.insert(key, &[codec::VERSION])?;
        }
        let claim = Claim {
            expires_at_ms: e.expires_at_ms,
            event_id: e.id.clone(),
        };
        let newer = replay
            && trees
                .dedupe
                .get(e.key)?
                .and_then(|v| Claim::decode(&v).ok())
                .is_some_and(|c| c.expires_at_ms >= e.expires_at_ms);
        if !newer {
            trees.dedupe.insert(e.key, claim.encode())?;
            trees.dedupe_expiry.insert(claim.expiry_key(e.key), &[])?;
        }
    }
    Ok(())
}

/// Replays the log past its checkpoint into sled and makes that durable; returns how many
/// batches it replayed.
pub(super) fn recover(trees: &Trees, wal_dir: &Path) -> std::io::Result<usize> {
    crate::base::durable::create_dirs(wal_dir)?;
    let from = wal::read_checkpoint(wal_dir)?;
    let invalid = |e: StoreError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let batches = wal::replay(wal_dir, from, |at, payload| {
        let frame = decode_frame(payload).map_err(|e| invalid(e.into()))?;
        apply(trees, at, &frame.events, &[], true).map_err(invalid)?;
        for (prefix, id) in &frame.completed {
            let mut key = prefix.to_vec();
            key.extend_from_slice(&id.to_bytes());
            trees.queue.remove(&key).map_err(|e| invalid(e.into()))?;
            trees.attempts.remove(&key).map_err(|e| invalid(e.into()))?;
        }
        Ok(())
    })?;
    if batches > 0 {
        let sled_dir = wal_dir.parent().unwrap_or(wal_dir);
        sync_sled(&trees.db, sled_dir)?;
    }
    Ok(batches)
}
