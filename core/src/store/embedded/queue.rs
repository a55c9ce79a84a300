//! The delivery side of the store: what each sink owes, in event-id (accept) order, and what
//! became of each delivery. Queue entries are references; the envelope is read from `events`.

use std::sync::atomic::Ordering;

use sled::IVec;

use super::record::StoredEvent;
use super::{EmbeddedStore, SinkQueue, StoreError};
use crate::base::id::EventId;
use crate::store::codec;
use crate::store::{DeadPage, DeliveryOf, Queued};

impl EmbeddedStore {
    /// Up to `limit` entries a sink still owes, oldest first, from `from` (inclusive) on.
    pub fn peek_from(
        &self,
        q: &SinkQueue,
        from: Option<&EventId>,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        let trees = self.trees()?;
        let start = match from {
            Some(id) => q.key(id),
            None => q.prefix().to_vec(),
        };
        let mut out = Vec::new();
        for key in trees.queue.range(start..).keys() {
            let key = key?;
            if !key.starts_with(q.prefix()) || out.len() == limit {
                break;
            }
            let Some(id) = q.event_id(&key) else { continue };
            out.push(self.queued_entry(id, &key)?);
        }
        Ok(out)
    }

    /// How long the oldest event the sink still owes has waited (by its id's time); zero for
    /// an empty queue. One read, whatever the backlog.
    pub fn oldest_queued_age(&self, q: &SinkQueue) -> std::time::Duration {
        let oldest = self.peek_from(q, None, 1).ok().and_then(|mut v| v.pop());
        let now = crate::base::id::millis(std::time::SystemTime::now());
        std::time::Duration::from_millis(
            oldest.map_or(0, |o| now.saturating_sub(o.id.timestamp_ms())),
        )
    }

    /// Drops an orphaned queue (its sink no longer configured): its entries and their attempt
    /// records go; its dead letters stay. Returns how many entries went.
    pub fn drop_queue(&self, q: &SinkQueue) -> Result<u64, StoreError> {
        let trees = self.trees()?;
        let mut dropped = 0;
        for key in trees.queue.scan_prefix(q.prefix()).keys() {
            let key = key?;
            trees.attempts.remove(&key)?;
            if trees.queue.remove(&key)?.is_some() {
                dropped += 1;
            }
        }
        q.0.depth.store(0, Ordering::Relaxed);
        Ok(dropped)
    }

    /// One queued entry, if the sink still owes it.
    pub fn queued(&self, q: &SinkQueue, id: &EventId) -> Result<Option<Queued>, StoreError> {
        let trees = self.trees()?;
        let key = q.key(id);
        if !trees.queue.contains_key(&key)? {
            return Ok(None);
        }
        self.queued_entry(id.clone(), &key).map(Some)
    }

    fn queued_entry(&self, id: EventId, key: &[u8]) -> Result<Queued, StoreError> {
        let trees = self.trees()?;
        let state = self.versioned(&trees.attempts, key)?;
        Ok(Queued { id, state })
    }

    /// A kept event's envelope for delivery; `None` when its record is missing or unreadable
    /// (damage): the worker dead-letters it with that reason rather than stall its queue.
    pub fn envelope_of(&self, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        let trees = self.trees()?;
        let Some(bytes) = trees.events.get(id.to_bytes())? else {
            return Ok(None);
        };
        match StoredEvent::decode(&bytes)
            .map_err(StoreError::from)
            .and_then(|event| self.envelope(&event))
        {
            Ok(envelope) => Ok(Some(envelope)),
            Err(StoreError::Record(error)) => {
                self.unreadable(&format!("stored event {id}"), &error);
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Records a failed attempt's new delivery state, so retries resume after a restart.
    pub fn set_attempts(
        &self,
        q: &SinkQueue,
        id: &EventId,
        state: &[u8],
    ) -> Result<(), StoreError> {
        let trees = self.trees()?;
        trees.attempts.insert(q.key(id), codec::versioned(state))?;
        Ok(())
    }

    /// Deliveries finished: their entries leave the queue and their records are kept for
    /// lookup. The record is written before the entry goes, so a crash in between means one
    /// more delivery, never a lost one.
    pub fn complete(&self, q: &SinkQueue, done: &[(EventId, Vec<u8>)]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let trees = self.trees()?;
        // Plain inserts: sled runs a batch as a transaction, which costs far more.
        for (id, record) in done {
            let mut key = id.to_bytes().to_vec();
            key.extend_from_slice(q.prefix());
            trees.delivered.insert(key, codec::versioned(record))?;
        }
        for (id, _) in done {
            let key = q.key(id);
            trees.attempts.remove(&key)?;
            if trees.queue.remove(&key)?.is_some() {
                q.0.depth.fetch_sub(1, Ordering::Relaxed);
            }
        }
        // Logged with the next commit, so a crash soon after does not undo them.
        self.committer.completed(super::frame::Completed {
            prefix: q.prefix().to_vec(),
            ids: done.iter().map(|(id, _)| id.clone()).collect(),
        });
        Ok(())
    }

    /// A delivery gave up: the entry moves from the queue to the dead letters.
    pub fn bury(&self, q: &SinkQueue, id: &EventId, dead_letter: &[u8]) -> Result<(), StoreError> {
        let trees = self.trees()?;
        let key = q.key(id);
        if self
            .trees()?
            .dead
            .insert(&key, codec::versioned(dead_letter))?
            .is_none()
        {
            q.0.dead.fetch_add(1, Ordering::Relaxed);
        }
        trees.attempts.remove(&key)?;
        if trees.queue.remove(&key)?.is_some() {
            q.0.depth.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A page of a sink's dead letters, oldest first, starting after `after`.
    pub fn dead_letters(
        &self,
        q: &SinkQueue,
        after: Option<&EventId>,
        limit: usize,
    ) -> Result<DeadPage, StoreError> {
        let trees = self.trees()?;
        let start = match after {
            Some(id) => {
                let mut key = q.key(id);
                key.push(0);
                key
            }
            None => q.prefix().to_vec(),
        };
        let mut letters = Vec::new();
        let mut next = None;
        for entry in trees.dead.range(start..) {
            let (key, bytes) = entry?;
            if !key.starts_with(q.prefix()) {
                break;
            }
            let Some(id) = q.event_id(&key) else { continue };
            if letters.len() == limit {
                next = letters
                    .last()
                    .map(|(id, _): &(EventId, Vec<u8>)| id.clone());
                break;
            }
            letters.push((id, codec::payload(&bytes)?.to_vec()));
        }
        Ok(DeadPage { letters, next })
    }

    /// One dead letter of a sink.
    pub fn dead_letter(&self, q: &SinkQueue, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        let trees = self.trees()?;
        self.versioned(&trees.dead, &q.key(id))
    }

    /// Puts a dead letter back on its sink's queue with a fresh delivery state. The dedupe
    /// index is not consulted: a replay is deliberate.
    pub fn requeue(&self, q: &SinkQueue, id: &EventId) -> Result<bool, StoreError> {
        let trees = self.trees()?;
        let key = q.key(id);
        if trees.dead.remove(&key)?.is_none() {
            return Ok(false);
        }
        q.0.dead.fetch_sub(1, Ordering::Relaxed);
        trees.attempts.remove(&key)?;
        if self
            .trees()?
            .queue
            .insert(&key, &[codec::VERSION])?
            .is_none()
        {
            q.added(id);
        }
        Ok(true)
    }

    /// Deletes a dead letter for good; its event then leaves with retention.
    pub fn delete_dead_letter(&self, q: &SinkQueue, id: &EventId) -> Result<bool, StoreError> {
        let trees = self.trees()?;
        let removed = trees.dead.remove(q.key(id))?.is_some();
        if removed {
            q.0.dead.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Where one event stands with one sink: queued (with its state), dead, or delivered.
    pub fn delivery_of(&self, q: &SinkQueue, id: &EventId) -> Result<DeliveryOf, StoreError> {
        let trees = self.trees()?;
        let key = q.key(id);
        if trees.queue.contains_key(&key)? {
            return Ok(DeliveryOf::Queued(self.versioned(&trees.attempts, &key)?));
        }
        if let Some(dead) = self.versioned(&trees.dead, &key)? {
            return Ok(DeliveryOf::Dead(dead));
        }
        let mut delivered_key = id.to_bytes().to_vec();
        delivered_key.extend_from_slice(q.prefix());
        Ok(match self.versioned(&trees.delivered, &delivered_key)? {
            Some(record) => DeliveryOf::Delivered(record),
            None => DeliveryOf::Unknown,
        })
    }

    fn versioned(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match tree.get(key)? {
            Some(bytes) => Ok(Some(payload_of(&bytes)?)),
            None => Ok(None),
        }
    }
}

fn payload_of(bytes: &IVec) -> Result<Vec<u8>, StoreError> {
    Ok(codec::payload(bytes)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreMetrics, StoreOptions};

    #[test]
    fn an_unreadable_record_is_counted_and_reported_as_missing_never_skipped_silently() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = StoreMetrics::default();
        let store = EmbeddedStore::open(
            dir.path(),
            &StoreOptions {
                cache_bytes: 8 << 20,
                retention: std::time::Duration::from_secs(60),
            },
            metrics.clone(),
        )
        .unwrap();
        let id = EventId::generate();
        // A record from a future release: another format version.
        store
            .trees()
            .unwrap()
            .events
            .insert(id.to_bytes(), &[9u8, 0, 0][..])
            .unwrap();
        assert_eq!(store.envelope_of(&id).unwrap(), None);
        assert_eq!(metrics.unreadable.get(), 1);
    }
}
