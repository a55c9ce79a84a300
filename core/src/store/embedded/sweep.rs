//! Background upkeep: claim generations whose claims have all ended, index entries and delivery records past
//! retention, idle queues' cursors, and log segments (with their index) that every queue has
//! passed and retention allows to go. An event still owed from the log keeps its segment; one
//! that failed carries its envelope in sled (its attempts, its dead letter), so it keeps none.

use std::time::{Duration, SystemTime};

use super::engine::FreeRetired;
use super::record::StoredEvent;
use super::replay::split_key;
use super::wal;
use super::{sync_sled, EmbeddedStore, StoreError};
use crate::base::id::millis;

impl EmbeddedStore {
    /// Deletes the claim generations whose claims have all ended by `now` (see
    /// [`super::claims`]); returns how many.
    pub fn sweep_dedupe(&self, now: SystemTime) -> Result<usize, StoreError> {
        let trees = self.trees()?;
        (trees.claims.sweep(millis(now)))
            .map_err(|e| StoreError::Write(format!("deleting a claim generation: {e}")))
    }

    /// Removes delivery records and sled's index entries (those carried from retired
    /// segments, and a format 2 store's) older than `retention` (both keyed by the
    /// time-ordered event id first), except the index entries of events a queue's attempts
    /// or a dead letter still holds (for `switchyard event`). The index beside the log goes
    /// with its segments.
    pub fn sweep_events(&self, retention: Duration, now: SystemTime) -> Result<usize, StoreError> {
        let trees = self.trees()?;
        let _free = FreeRetired;
        let cutoff_ms = millis(now).saturating_sub(retention.as_millis() as u64);
        let end = ulid::Ulid::from_parts(cutoff_ms, 0).to_bytes();
        let mut removed = 0;
        for entry in trees.delivered.range(..end.as_slice()) {
            let (key, _) = entry?;
            trees.delivered.remove(key)?;
            removed += 1;
        }
        for entry in trees.events.range(..end.as_slice()) {
            let (id, bytes) = entry?;
            let needed = match StoredEvent::decode(&bytes) {
                Ok(event) => self.still_needed(&id, &event)?,
                Err(error) => {
                    // Kept for inspection, not swept.
                    self.unreadable("stored event", &error);
                    true
                }
            };
            if !needed {
                trees.events.remove(&id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Moves every queue's cursor on (an idle queue to the log's end), then retires the log
    /// segments before all of them, before the checkpoint, and older than `retention`.
    /// Returns how many segments went.
    pub fn sweep_log(&self, retention: Duration, now: SystemTime) -> Result<usize, StoreError> {
        for (prefix, _) in self.lanes.all() {
            self.advance(&prefix);
        }
        // Logged and synced before the segments are weighed, waiting for the writer (bounded):
        // cursors wait a while for a frame to carry them (see `gather`).
        self.committer.flush();
        let dir = self.dir.join("wal");
        let io = |e: std::io::Error| StoreError::Write(format!("the log: {e}"));
        let _retiring = super::lock(&self.retiring);
        let checkpoint = wal::read_checkpoint(&dir).map_err(io)?;
        let low = self.lanes.low();
        let mut retired = 0;
        // Read once, at the first segment to go.
        let mut held = None;
        for segment in wal::segments(&dir).map_err(io)? {
            if segment >= checkpoint.segment || segment >= low.segment {
                break;
            }
            let modified = std::fs::metadata(wal::segment_path(&dir, segment))
                .and_then(|m| m.modified())
                .map_err(io)?;
            if modified + retention > now {
                break;
            }
            if held.is_none() {
                held = Some(self.held()?);
            }
            self.carry(segment, held.as_deref().unwrap_or_default())?;
            self.index.retire(segment).map_err(io)?;
            self.log.retire(segment).map_err(io)?;
            tracing::debug!(segment, "log segment retired");
            retired += 1;
        }
        Ok(retired)
    }

    /// The ids of every event a queue still retries or holds dead, sorted.
    fn held(&self) -> Result<Vec<[u8; 16]>, StoreError> {
        let trees = self.trees()?;
        let mut held = Vec::new();
        for key in trees.attempts.iter().keys().chain(trees.dead.iter().keys()) {
            if let Some((_, id)) = split_key(&key?) {
                held.push(id.to_bytes());
            }
        }
        held.sort_unstable();
        held.dedup();
        Ok(held)
    }

    /// Before a segment goes with its index: the entries of its events among `held` (see
    /// [`EmbeddedStore::held`]) move into sled's `events` tree (durably), so that `switchyard
    /// event` still finds them; [`EmbeddedStore::sweep_events`] removes them in time.
    fn carry(&self, segment: u64, held: &[[u8; 16]]) -> Result<(), StoreError> {
        let trees = self.trees()?;
        let found = self.index.find_in(segment, held)?;
        for (id, entry) in &found {
            trees.events.insert(id, entry.as_slice())?;
        }
        if !found.is_empty() {
            sync_sled(&trees.db, &self.dir).map_err(|e| StoreError::Sync(e.to_string()))?;
        }
        Ok(())
    }

    /// Whether an event's index entry must stay: a queue has still to read it, retries it or
    /// holds it dead.
    fn still_needed(&self, id: &[u8], event: &StoredEvent<'_>) -> Result<bool, StoreError> {
        let trees = self.trees()?;
        let at = wal::Position {
            segment: event.span.segment,
            offset: event.span.offset,
        };
        for prefix in &event.queues {
            if (self.lanes.get(prefix)).is_some_and(|slot| slot.lane().read < at) {
                return Ok(true);
            }
            let mut key = prefix.to_vec();
            key.extend_from_slice(id);
            if trees.attempts.contains_key(&key)? || trees.dead.contains_key(&key)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
