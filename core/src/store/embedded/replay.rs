//! Bringing sled and the queues up to date with the log: after each frame (the applier), and on
//! start after a crash or a heal. [`recover`] replays what sled may not have made durable (past
//! the checkpoint); [`rebuild`] then finds each queue in the log from its cursor: what it
//! still owes, how much, and where its last events are.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::claims::NewClaim;
use super::frame::{self, Cursor, Frame};
use super::lanes::{Lane, Owed};
use super::record::{Claim, Kept};
use super::scan;
use super::wal::{self, Position};
use super::{StoreError, Trees};
use crate::base::id::EventId;
use crate::store::codec::{self, Reader, RecordError};

/// Brings sled up to date with one logged frame: each new event's dedupe claim (in its claim
/// generation, see [`super::claims`]) and the cursors it carries (the event index is beside
/// the log, see [`super::index`]). A replay (after a crash) may meet claims sled already has:
/// it keeps the newer one.
pub(super) fn apply(trees: &Trees, frame: &Frame<'_>, replay: bool) -> Result<(), StoreError> {
    // Plain inserts, not `apply_batch`: sled 0.34 runs a batch as a transaction, with a
    // process-wide lock and a log reservation per call; atomicity across them is the log's
    // job (a crash replays the frame).
    let claims: Vec<NewClaim<'_>> = (frame.events.iter())
        .map(|e| NewClaim {
            key: e.key,
            accepted_ms: e.id.timestamp_ms(),
            claim: Claim {
                expires_at_ms: e.expires_at_ms,
                event_id: e.id.clone(),
            },
        })
        .collect();
    trees.claims.record(&claims, replay)?;
    for (prefix, cursor) in &frame.cursors {
        let mut value = vec![codec::VERSION];
        cursor.encode(&mut value);
        trees.cursors.insert(prefix, value)?;
    }
    Ok(())
}

/// Replays the log past its checkpoint into sled and makes that durable; returns how many
/// frames it replayed. A damaged frame stops it with the segment and offset.
pub(super) fn recover(trees: &Trees, wal_dir: &Path) -> std::io::Result<usize> {
    crate::base::durable::create_dirs(wal_dir)?;
    let from = wal::read_checkpoint(wal_dir)?;
    let invalid = |e: StoreError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let frames = wal::replay(wal_dir, from, |at, _, payload| {
        let frame = frame::decode(payload).map_err(|e| undecodable(wal_dir, at, &e))?;
        apply(trees, &frame, true).map_err(invalid)
    })?;
    if frames > 0 {
        let sled_dir = wal_dir.parent().unwrap_or(wal_dir);
        trees.sync(sled_dir)?;
    }
    Ok(frames)
}

/// A frame whose checksum holds but whose payload does not decode: damage all the same.
fn undecodable(wal_dir: &Path, at: Position, error: &RecordError) -> std::io::Error {
    let offset = usize::try_from(at.offset).unwrap_or(usize::MAX);
    let reason = format!("a frame that does not decode: {error}");
    scan::damaged(wal_dir, at.segment, offset, &reason)
}

/// What start-up finds of every queue: its lane and its (depth, dead letters).
pub(super) type Found = (HashMap<Vec<u8>, Lane>, HashMap<Vec<u8>, (u64, u64)>);

/// Rebuilds every queue from sled (its cursor, the events that failed and their attempts, its
/// dead letters) and from the log after its cursor (what it still owes and how much). The
/// one pass over the log, at start-up.
pub(super) fn rebuild(trees: &Trees, wal_dir: &Path) -> Result<Found, StoreError> {
    let mut lanes: HashMap<Vec<u8>, Lane> = HashMap::new();
    let mut counts: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
    let mut cursors: HashMap<Vec<u8>, Cursor> = HashMap::new();
    for entry in trees.cursors.iter() {
        let (prefix, value) = entry?;
        let cursor = Cursor::decode(&mut Reader(codec::payload(&value)?))?;
        let mut lane = Lane::new(cursor.read);
        lane.durable = cursor.low();
        lanes.insert(prefix.to_vec(), lane);
        cursors.insert(prefix.to_vec(), cursor);
    }
    // Events that failed: back in their window with their attempts and envelope.
    for entry in trees.attempts.iter() {
        let (key, value) = entry?;
        let Some((prefix, id)) = split_key(&key) else {
            continue;
        };
        let kept = Kept::decode(&value)?;
        let lane = (lanes.entry(prefix.to_vec())).or_insert_with(|| Lane::new(Position::default()));
        lane.window.insert(
            id,
            Owed {
                at: None,
                envelope: Some(kept.envelope.to_vec()),
                state: Some(kept.record.to_vec()),
                recorded: Some(0),
                buried: false,
            },
        );
    }
    for key in trees.dead.iter().keys() {
        if let Some((prefix, _)) = split_key(&key?) {
            counts.entry(prefix.to_vec()).or_default().1 += 1;
        }
    }
    let has_dead: HashSet<Vec<u8>> = (counts.iter())
        .filter(|(_, (_, dead))| *dead > 0)
        .map(|(prefix, _)| prefix.clone())
        .collect();
    let start = (cursors.values()).map(Cursor::low).min();
    if let Some(start) = start {
        wal::replay(wal_dir, start, |at, next, payload| {
            let frame = frame::decode(payload).map_err(|e| undecodable(wal_dir, at, &e))?;
            for (prefix, cursor) in &cursors {
                let (Some(index), Some(lane)) = (frame.queue_index(prefix), lanes.get_mut(prefix))
                else {
                    continue;
                };
                let behind = at < cursor.read;
                for (i, event) in frame.events.iter().enumerate() {
                    if !event.queues.contains(&index) {
                        continue;
                    }
                    let here = frame::EventAt {
                        frame: at,
                        index: i as u32,
                    };
                    let owed = behind && cursor.owed.binary_search(&here).is_ok();
                    if (owed || !behind) && has_dead.contains(prefix.as_slice()) {
                        // Dead-lettered, but the crash came before its cursor was logged:
                        // kept aside as buried, so it is neither delivered nor counted again.
                        let mut key = prefix.clone();
                        key.extend_from_slice(&event.id.to_bytes());
                        if trees.dead.contains_key(&key)? {
                            lane.window.insert(event.id.clone(), Owed::buried_at(here));
                            continue;
                        }
                    }
                    if owed {
                        (lane.window.entry(event.id.clone()))
                            .or_insert_with(|| Owed::logged(here, event.envelope));
                    } else if !behind {
                        counts.entry(prefix.clone()).or_default().0 += 1;
                    }
                }
                if !behind {
                    lane.tail = next;
                }
            }
            Ok(())
        })
        .map_err(|source| StoreError::Log {
            path: wal_dir.to_owned(),
            source,
        })?;
    }
    for (prefix, lane) in &mut lanes {
        lane.tail = lane.tail.max(lane.read);
        let owed = lane.window.values().filter(|owed| !owed.buried).count();
        counts.entry(prefix.clone()).or_default().0 += owed as u64;
    }
    Ok((lanes, counts))
}

/// Splits a `{workspace}/{sink}\0` + event id key.
pub(super) fn split_key(key: &[u8]) -> Option<(&[u8], EventId)> {
    let end = key.iter().position(|b| *b == 0)?;
    let id: [u8; 16] = key.get(end + 1..)?.try_into().ok()?;
    Some((&key[..=end], EventId::from_bytes(id)))
}
