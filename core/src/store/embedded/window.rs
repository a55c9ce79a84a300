//! Replaying a window: every event accepted in a time range that went to one sink goes back on
//! that sink's queue, delivered or not. Each is put back as a failed event is kept: an
//! `attempts` record in sled with its envelope (so the replay survives a restart, found again
//! with the other retries) and an entry in the lane's window (so the worker sends it now).
//! Events the lane has not yet read, or still owes, are on the queue already and are left.
//! The operator's "deliver again" puts one event back the same way (`put_back`).

use std::sync::atomic::Ordering;

use super::record::{Kept, StoredEvent};
use super::search::{bound, decode};
use super::wal::Position;
use super::{EmbeddedStore, StoreError};
use crate::base::id::EventId;
use crate::store::{Replayed, SinkQueue, Window};

impl EmbeddedStore {
    pub fn replay_window(
        &self,
        q: &SinkQueue,
        window: &Window,
        state: &[u8],
    ) -> Result<Replayed, StoreError> {
        // Every event accepted before the request is in the index the window is read from.
        self.settle();
        let trees = self.trees()?;
        let low = bound(window.since_ms);
        let high = bound(window.until_ms.saturating_add(1));
        let mut replayed = Replayed::default();
        if high <= low {
            return Ok(replayed);
        }
        for entry in self.entries(&trees, low, Some(high), false) {
            let (id, bytes) = entry?;
            let stored = match StoredEvent::decode(&bytes) {
                Ok(stored) => stored,
                Err(error) => {
                    self.unreadable("stored event", &error);
                    continue;
                }
            };
            if !stored.queues.contains(&q.prefix()) {
                continue;
            }
            if let Some(glob) = &window.event_type {
                // An entry written before search kept no type: it cannot be told to match.
                if !decode(stored.search).is_some_and(|f| glob.matches(f.event_type)) {
                    continue;
                }
            }
            let id = EventId::from_bytes(id);
            match self.put_back_stored(q, &id, &stored, state)? {
                true => replayed.queued += 1,
                false => replayed.gone += 1,
            }
        }
        Ok(replayed)
    }

    /// Puts one event back on one sink's queue by id, whatever its state there; false when
    /// it was not routed to that sink or its envelope is gone with retention.
    /// Blocking: a miss may wait for the index (see [`EmbeddedStore::event`]).
    pub fn put_back(&self, q: &SinkQueue, id: &EventId, state: &[u8]) -> Result<bool, StoreError> {
        let Some(bytes) = self.indexed(&self.trees()?, id)? else {
            return Ok(false);
        };
        let stored = StoredEvent::decode(&bytes)?;
        if !stored.queues.contains(&q.prefix()) {
            return Ok(false);
        }
        self.put_back_stored(q, id, &stored, state)
    }

    /// Puts one event back on the queue; false when its envelope is gone with retention.
    fn put_back_stored(
        &self,
        q: &SinkQueue,
        id: &EventId,
        stored: &StoredEvent<'_>,
        state: &[u8],
    ) -> Result<bool, StoreError> {
        let trees = self.trees()?;
        let at = Position {
            segment: stored.span.segment,
            offset: stored.span.offset,
        };
        let slot = (self.lanes.get(q.prefix())).unwrap_or_else(|| self.lanes.add(q.prefix()));
        {
            let lane = slot.lane();
            if lane.read < at || lane.window.get(id).is_some_and(|owed| !owed.buried) {
                return Ok(true);
            }
        }
        let key = q.key(id);
        let kept = match trees.dead.get(&key)? {
            Some(dead) => Some(dead),
            None => trees.attempts.get(&key)?,
        };
        let envelope = match kept {
            Some(kept) => Kept::decode(&kept)?.envelope.to_vec(),
            None => match self.log.read(stored.span) {
                Ok(compressed) => compressed,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => {
                    return Err(StoreError::Write(format!(
                        "reading an envelope from the log: {e}"
                    )))
                }
            },
        };
        trees
            .attempts
            .insert(&key, Kept::encode(state, &envelope))?;
        if trees.dead.remove(&key)?.is_some() {
            q.0.dead.fetch_sub(1, Ordering::Relaxed);
        }
        self.owe_again(q, &slot, id, envelope, state);
        Ok(true)
    }
}
