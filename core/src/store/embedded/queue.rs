//! The delivery side of the store: each sink's queue read from the log through its lane
//! ([`super::lanes`]), and what became of each delivery. Delivering an event that succeeds at
//! once writes nothing to sled: its completion moves the lane's cursor, logged in batches. An
//! event that fails has its attempts (and its envelope) recorded in sled; a dead letter too.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::engine::FreeRetired;
use super::lanes::{Lane, Owed, Slot};
use super::record::{self, Kept, StoredEvent};
use super::wal::Position;
use super::{EmbeddedStore, SinkQueue, StoreError};
use crate::base::id::EventId;
use crate::store::codec;
use crate::store::{DeadPage, DeliveryOf, Queued};

impl EmbeddedStore {
    fn lane(&self, q: &SinkQueue) -> Option<Arc<Slot>> {
        self.lanes.get(q.prefix())
    }

    /// Reads the log into the lane's window until `want` events wait from `from` on.
    fn fill(&self, q: &SinkQueue, lane: &mut Lane, from: Option<&EventId>, want: usize) {
        match lane.fill(q.prefix(), &self.log, from, want) {
            Ok((lower, damaged)) => {
                if let Some(lower) = lower {
                    q.read_again_from(&lower);
                }
                for _ in 0..damaged {
                    self.unreadable(
                        &format!("a log frame of {}/{}", q.workspace(), q.sink()),
                        &"damaged or of another format",
                    );
                }
            }
            // Read again at the next pass; the log keeps everything.
            Err(error) => {
                tracing::error!(workspace = %q.workspace(), sink = %q.sink(), %error, "reading the queue from the log failed")
            }
        }
    }

    /// Up to `limit` entries a sink still owes, oldest first, from `from` (inclusive) on.
    pub fn peek_from(
        &self,
        q: &SinkQueue,
        from: Option<&EventId>,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        let Some(lane) = self.lane(q) else {
            return Ok(Vec::new());
        };
        let mut lane = lane.lane();
        self.fill(q, &mut lane, from, limit);
        let range = match from {
            Some(from) => lane.window.range(from.clone()..),
            None => lane.window.range(..),
        };
        Ok(range
            .filter(|(_, owed)| !owed.buried)
            .take(limit)
            .map(|(id, owed)| Queued {
                id: id.clone(),
                state: owed.state.clone(),
            })
            .collect())
    }

    /// How long the oldest event the sink still owes has waited (by its id's time); zero for
    /// an empty queue. Reads at most the next frame for it, whatever the backlog.
    pub fn oldest_queued_age(&self, q: &SinkQueue) -> std::time::Duration {
        let oldest = self.lane(q).and_then(|lane| {
            let mut lane = lane.lane();
            if lane.oldest().is_none() {
                self.fill(q, &mut lane, None, 1);
            }
            lane.oldest().map(EventId::timestamp_ms)
        });
        let now = crate::base::id::millis(std::time::SystemTime::now());
        std::time::Duration::from_millis(oldest.map_or(0, |o| now.saturating_sub(o)))
    }

    /// Drops an orphaned queue (its sink no longer configured): what it owes goes (the lane
    /// moves to the log's end), its dead letters stay. Returns how many entries went.
    pub fn drop_queue(&self, q: &SinkQueue) -> Result<u64, StoreError> {
        let trees = self.trees()?;
        let _free = FreeRetired;
        for key in trees.attempts.scan_prefix(q.prefix()).keys() {
            trees.attempts.remove(key?)?;
        }
        if let Some(lane) = self.lane(q) {
            let end = self.lanes.end();
            let mut lane = lane.lane();
            lane.window.clear();
            lane.read = lane.read.max(end);
            lane.tail = lane.tail.max(end);
        }
        self.advance(q.prefix());
        Ok(q.0.depth.swap(0, Ordering::Relaxed))
    }

    /// One queued entry, if the sink still owes it.
    pub fn queued(&self, q: &SinkQueue, id: &EventId) -> Result<Option<Queued>, StoreError> {
        let Some(lane) = self.lane(q) else {
            return Ok(None);
        };
        let lane = lane.lane();
        Ok(lane
            .window
            .get(id)
            .filter(|owed| !owed.buried)
            .map(|owed| Queued {
                id: id.clone(),
                state: owed.state.clone(),
            }))
    }

    /// A queued event's envelope for delivery; `None` when its record is missing or unreadable
    /// (damage): the worker dead-letters it with that reason rather than stall its queue.
    pub fn envelope_of(&self, q: &SinkQueue, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        let compressed = self.lane(q).and_then(|lane| {
            let lane = lane.lane();
            lane.window.get(id).and_then(|owed| owed.envelope.clone())
        });
        let Some(compressed) = compressed else {
            return Ok(None);
        };
        match record::decompress(&compressed) {
            Ok(envelope) => Ok(Some(envelope)),
            Err(error) => {
                self.unreadable(&format!("stored event {id}"), &error);
                Ok(None)
            }
        }
    }

    /// Records a failed attempt's new delivery state, with the envelope, so retries resume
    /// after a restart and no log segment is held for the event.
    pub fn set_attempts(
        &self,
        q: &SinkQueue,
        id: &EventId,
        state: &[u8],
    ) -> Result<(), StoreError> {
        let Some(lane) = self.lane(q) else {
            return Ok(());
        };
        let trees = self.trees()?;
        let _free = FreeRetired;
        let mut lane = lane.lane();
        let Some(owed) = lane.window.get_mut(id) else {
            return Ok(());
        };
        let envelope = owed.envelope.as_deref().unwrap_or_default();
        trees
            .attempts
            .insert(q.key(id), Kept::encode(state, envelope))?;
        owed.state = Some(state.to_vec());
        owed.recorded.get_or_insert_with(|| self.lanes.record());
        Ok(())
    }

    /// Deliveries finished: they leave the queue, and the cursor moves (logged with the next
    /// frame). Only an event that failed before leaves a record behind (its attempts, for
    /// lookup until retention ends); a crash before the cursor is logged means one more
    /// delivery, never a lost one.
    pub fn complete(&self, q: &SinkQueue, done: &[(EventId, Vec<u8>)]) -> Result<(), StoreError> {
        let Some(lane) = self.lane(q) else {
            return Ok(());
        };
        let mut retried = Vec::new();
        let mut left = 0;
        {
            let mut lane = lane.lane();
            for (id, record) in done {
                if let Some(owed) = lane.window.remove(id) {
                    left += 1;
                    if owed.state.is_some() {
                        retried.push((id, record));
                    }
                }
            }
        }
        if !retried.is_empty() {
            let trees = self.trees()?;
            let _free = FreeRetired;
            for (id, record) in retried {
                let mut key = id.to_bytes().to_vec();
                key.extend_from_slice(q.prefix());
                trees.delivered.insert(key, codec::versioned(record))?;
                trees.attempts.remove(q.key(id))?;
            }
        }
        // The cursor before the count: once a queue shows empty, the writer has its cursor,
        // and any frame it writes after that carries it.
        self.advance(q.prefix());
        let _ =
            q.0.depth
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(left))
                });
        Ok(())
    }

    /// A delivery gave up: the event moves from the queue to the dead letters, with its
    /// envelope. It holds the cursor until the dead letter is synced.
    pub fn bury(&self, q: &SinkQueue, id: &EventId, dead_letter: &[u8]) -> Result<(), StoreError> {
        let Some(lane) = self.lane(q) else {
            return Ok(());
        };
        let trees = self.trees()?;
        let _free = FreeRetired;
        let mut lane = lane.lane();
        let Some(owed) = lane.window.get_mut(id).filter(|owed| !owed.buried) else {
            return Ok(());
        };
        let envelope = owed.envelope.as_deref().unwrap_or_default();
        let key = q.key(id);
        if (trees.dead)
            .insert(&key, Kept::encode(dead_letter, envelope))?
            .is_none()
        {
            q.0.dead.fetch_add(1, Ordering::Relaxed);
        }
        trees.attempts.remove(&key)?;
        owed.buried = true;
        owed.recorded.get_or_insert_with(|| self.lanes.record());
        let _ =
            q.0.depth
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(1))
                });
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
            letters.push((id, Kept::decode(&bytes)?.record.to_vec()));
        }
        Ok(DeadPage { letters, next })
    }

    /// One dead letter of a sink.
    pub fn dead_letter(&self, q: &SinkQueue, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        let trees = self.trees()?;
        match trees.dead.get(q.key(id))? {
            Some(bytes) => Ok(Some(Kept::decode(&bytes)?.record.to_vec())),
            None => Ok(None),
        }
    }

    /// Puts a dead letter back on its sink's queue with `state` as its delivery state. The
    /// dedupe index is not consulted: a replay is deliberate.
    pub fn requeue(&self, q: &SinkQueue, id: &EventId, state: &[u8]) -> Result<bool, StoreError> {
        let trees = self.trees()?;
        let _free = FreeRetired;
        let key = q.key(id);
        let Some(dead) = trees.dead.remove(&key)? else {
            return Ok(false);
        };
        q.0.dead.fetch_sub(1, Ordering::Relaxed);
        let envelope = Kept::decode(&dead)?.envelope.to_vec();
        trees
            .attempts
            .insert(&key, Kept::encode(state, &envelope))?;
        let lane = self.lane(q).unwrap_or_else(|| self.lanes.add(q.prefix()));
        self.owe_again(q, &lane, id, envelope, state);
        Ok(true)
    }

    /// Puts an event whose envelope and `state` are now kept in sled back in the lane's
    /// window, due again; counted as queued unless it already was.
    pub(super) fn owe_again(
        &self,
        q: &SinkQueue,
        lane: &Slot,
        id: &EventId,
        envelope: Vec<u8>,
        state: &[u8],
    ) {
        let owed = Owed {
            at: None,
            envelope: Some(envelope),
            state: Some(state.to_vec()),
            recorded: Some(self.lanes.record()),
            buried: false,
        };
        let fresh = (lane.lane().window.insert(id.clone(), owed)).is_none_or(|old| old.buried);
        if fresh {
            q.added(id);
        }
    }

    /// Deletes a dead letter for good; its event then leaves with retention.
    pub fn delete_dead_letter(&self, q: &SinkQueue, id: &EventId) -> Result<bool, StoreError> {
        let trees = self.trees()?;
        let _free = FreeRetired;
        let removed = trees.dead.remove(q.key(id))?.is_some();
        if removed {
            q.0.dead.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Where one event stands with one sink: queued (with its state), dead, or delivered
    /// (with its record when it took more than one attempt).
    pub fn delivery_of(&self, q: &SinkQueue, id: &EventId) -> Result<DeliveryOf, StoreError> {
        let trees = self.trees()?;
        let key = q.key(id);
        if let Some(owed) = self.queued(q, id)? {
            return Ok(DeliveryOf::Queued(owed.state));
        }
        if let Some(kept) = trees.attempts.get(&key)? {
            return Ok(DeliveryOf::Queued(Some(
                Kept::decode(&kept)?.record.to_vec(),
            )));
        }
        if let Some(dead) = self.dead_letter(q, id)? {
            return Ok(DeliveryOf::Dead(dead));
        }
        let mut delivered_key = id.to_bytes().to_vec();
        delivered_key.extend_from_slice(q.prefix());
        if let Some(record) = trees.delivered.get(&delivered_key)? {
            return Ok(DeliveryOf::Delivered(Some(
                codec::payload(&record)?.to_vec(),
            )));
        }
        let Some(bytes) = self.entry(&trees, id)? else {
            return Ok(DeliveryOf::Unknown);
        };
        let event = StoredEvent::decode(&bytes)?;
        if !event.queues.contains(&q.prefix()) {
            return Ok(DeliveryOf::Unknown);
        }
        let at = Position {
            segment: event.span.segment,
            offset: event.span.offset,
        };
        let read = self.lane(q).map(|lane| lane.lane().read);
        Ok(match read {
            Some(read) if at < read => DeliveryOf::Delivered(None),
            _ => DeliveryOf::Queued(None),
        })
    }

    /// Hands the queue's cursor to the writer if it moved.
    pub(super) fn advance(&self, prefix: &[u8]) {
        let Some(lane) = self.lanes.get(prefix) else {
            return;
        };
        let end = self.lanes.end();
        let mut lane = lane.lane();
        let cursor = lane.cursor(self.lanes.synced(), end);
        if lane.sent.as_ref() != Some(&cursor) {
            lane.sent = Some(cursor.clone());
            self.committer.cursor(prefix.to_vec(), cursor);
        }
    }
}
