//! Background upkeep: expired dedupe claims, and events and delivery records past retention.
//! An event still queued for a sink, or held by a dead letter, stays however old it is.

use std::time::{Duration, SystemTime};

use super::record::{self, Claim, StoredEvent};
use super::{Store, StoreError};
use crate::dedupe::millis;

impl Store {
    /// Removes dedupe claims whose window ended before `now`; returns how many.
    pub fn sweep_dedupe(&self, now: SystemTime) -> Result<usize, StoreError> {
        let end = millis(now).to_be_bytes();
        let mut removed = 0;
        for entry in self.trees.dedupe_expiry.range(..end.as_slice()) {
            let (expiry_key, _) = entry?;
            if let Some((at, key)) = record::split_expiry_key(&expiry_key) {
                if let Some(current) = self.trees.dedupe.get(key)? {
                    // Only the claim this expiry entry was written for; a reclaim has its own.
                    if Claim::decode(&current).is_ok_and(|c| c.expires_at_ms == at) {
                        let swapped = self.trees.dedupe.compare_and_swap(
                            key,
                            Some(current),
                            None::<&[u8]>,
                        )?;
                        removed += usize::from(swapped.is_ok());
                    }
                }
            }
            self.trees.dedupe_expiry.remove(&expiry_key)?;
        }
        Ok(removed)
    }

    /// Removes events and delivery records older than `retention` (both keyed by the
    /// time-ordered event id first), except events a queue or a dead letter still needs.
    pub fn sweep_events(&self, retention: Duration, now: SystemTime) -> Result<usize, StoreError> {
        let cutoff_ms = millis(now).saturating_sub(retention.as_millis() as u64);
        let end = ulid::Ulid::from_parts(cutoff_ms, 0).to_bytes();
        let mut removed = 0;
        for entry in self.trees.delivered.range(..end.as_slice()) {
            let (key, _) = entry?;
            self.trees.delivered.remove(key)?;
            removed += 1;
        }
        for entry in self.trees.events.range(..end.as_slice()) {
            let (id, bytes) = entry?;
            let needed = match StoredEvent::decode(&bytes) {
                Ok(event) => self.still_needed(&id, &event.queues)?,
                Err(error) => {
                    tracing::error!(%error, "stored event unreadable; kept for inspection");
                    true
                }
            };
            if !needed {
                self.trees.events.remove(&id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn still_needed(&self, id: &[u8], queues: &[&[u8]]) -> Result<bool, StoreError> {
        for prefix in queues {
            let mut key = prefix.to_vec();
            key.extend_from_slice(id);
            if self.trees.queue.contains_key(&key)? || self.trees.dead.contains_key(&key)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
