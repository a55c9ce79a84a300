//! Background upkeep: expired dedupe claims, events and delivery records past retention, and log
//! segments retention has passed. An event still queued for a sink, or held by a dead letter,
//! stays however old it is: when its segment is retired, its envelope moves into sled.

use std::time::{Duration, SystemTime};

use super::record::{self, Body, Claim, StoredEvent};
use super::sync_sled;
use super::wal;
use super::{EmbeddedStore, StoreError};
use crate::base::id::millis;

impl EmbeddedStore {
    /// Removes dedupe claims whose window ended before `now`; returns how many.
    pub fn sweep_dedupe(&self, now: SystemTime) -> Result<usize, StoreError> {
        let trees = self.trees()?;
        let end = millis(now).to_be_bytes();
        let mut removed = 0;
        for entry in trees.dedupe_expiry.range(..end.as_slice()) {
            let (expiry_key, _) = entry?;
            if let Some((at, key)) = record::split_expiry_key(&expiry_key) {
                if let Some(current) = trees.dedupe.get(key)? {
                    // Only the claim this expiry entry was written for; a reclaim has its own.
                    if Claim::decode(&current).is_ok_and(|c| c.expires_at_ms == at) {
                        let swapped =
                            trees
                                .dedupe
                                .compare_and_swap(key, Some(current), None::<&[u8]>)?;
                        removed += usize::from(swapped.is_ok());
                    }
                }
            }
            trees.dedupe_expiry.remove(&expiry_key)?;
        }
        Ok(removed)
    }

    /// Removes events and delivery records older than `retention` (both keyed by the
    /// time-ordered event id first), except events a queue or a dead letter still needs.
    pub fn sweep_events(&self, retention: Duration, now: SystemTime) -> Result<usize, StoreError> {
        let trees = self.trees()?;
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
                Ok(event) => self.still_needed(&id, &event.queues)?,
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

    /// Retires log segments that are behind the checkpoint and older than `retention`: the
    /// envelopes still needed (queued, dead, or kept for lookup) move inline into sled first.
    /// Returns how many segments went.
    pub fn sweep_log(&self, retention: Duration, now: SystemTime) -> Result<usize, StoreError> {
        let trees = self.trees()?;
        let dir = self.dir.join("wal");
        let io = |e: std::io::Error| StoreError::Write(format!("the log: {e}"));
        let _retiring = super::lock(&self.retiring);
        let checkpoint = wal::read_checkpoint(&dir).map_err(io)?;
        let mut retired = 0;
        for segment in wal::segments(&dir).map_err(io)? {
            if segment >= checkpoint.segment {
                break;
            }
            let modified = std::fs::metadata(wal::segment_path(&dir, segment))
                .and_then(|m| m.modified())
                .map_err(io)?;
            if modified + retention > now {
                break;
            }
            let mut moved = 0;
            wal::segment_frames(&dir, segment, 0, |at, payload| {
                moved += self
                    .keep_inline(at, payload)
                    .map_err(std::io::Error::other)?;
                Ok(())
            })
            .map_err(io)?;
            // Power-safe before the segment goes: sled's own flush is not.
            sync_sled(&trees.db, &self.dir).map_err(|e| StoreError::Sync(e.to_string()))?;
            self.log.retire(segment).map_err(io)?;
            tracing::debug!(segment, moved, "log segment retired");
            retired += 1;
        }
        Ok(retired)
    }

    /// Moves the envelopes of one logged batch that sled still points at into sled.
    fn keep_inline(&self, at: wal::Position, payload: &[u8]) -> Result<usize, StoreError> {
        let trees = self.trees()?;
        let mut moved = 0;
        for (id, offset, len) in super::frame::envelopes(payload)? {
            let Some(bytes) = trees.events.get(id.to_bytes())? else {
                continue;
            };
            let event = StoredEvent::decode(&bytes)?;
            let Body::Logged(span) = event.body else {
                continue;
            };
            if span.segment != at.segment || span.offset != at.offset + offset as u64 {
                continue;
            }
            let envelope = record::decompress(&payload[offset..offset + len])?;
            let inline = StoredEvent::encode(&event.queues, Body::Inline(&envelope));
            trees.events.insert(id.to_bytes(), inline)?;
            moved += 1;
        }
        Ok(moved)
    }

    fn still_needed(&self, id: &[u8], queues: &[&[u8]]) -> Result<bool, StoreError> {
        let trees = self.trees()?;
        for prefix in queues {
            let mut key = prefix.to_vec();
            key.extend_from_slice(id);
            if trees.queue.contains_key(&key)? || trees.dead.contains_key(&key)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
