//! Cluster queues: each sink's queue is a durable pull consumer on the work-queue stream,
//! shared by every instance. An instance that runs the sink's worker takes messages from it
//! into leases it holds ([`super::feed`]) (kept alive with progress acks, so a retry waiting on the sink's
//! backoff is not handed to another instance); the worker reads those leases as the embedded
//! store's workers read their queue. A completed delivery is acknowledged (and leaves the
//! stream); an instance that dies leaves its leases to be redelivered to the others once
//! the ack wait runs out.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, kv, stream};

use super::feed::{Lease, Leases};
use super::subjects::{consumer_name, event_id, record_key, subject};
use super::ClusterStore;
use crate::base::id::EventId;
use crate::store::codec;
use crate::store::{lock, DeliveryOf, Queued, SinkQueue, StoreError};

impl ClusterStore {
    fn leases_of(&self, q: &SinkQueue) -> Option<Arc<Leases>> {
        lock(&self.leases).get(q.prefix()).cloned()
    }

    pub(in crate::store) fn peek_from(
        &self,
        q: &SinkQueue,
        from: Option<&EventId>,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        let Some(leases) = self.leases_of(q) else {
            return Ok(Vec::new());
        };
        let held = lock(&leases.0);
        let range = match from {
            Some(from) => held.range(from.clone()..),
            None => held.range(..),
        };
        Ok(range
            .take(limit)
            .map(|(id, lease)| Queued {
                id: id.clone(),
                state: lease.state.clone(),
            })
            .collect())
    }

    pub(in crate::store) fn queued(
        &self,
        q: &SinkQueue,
        id: &EventId,
    ) -> Result<Option<Queued>, StoreError> {
        let Some(leases) = self.leases_of(q) else {
            return Ok(None);
        };
        let held = lock(&leases.0);
        Ok(held.get(id).map(|lease| Queued {
            id: id.clone(),
            state: lease.state.clone(),
        }))
    }

    pub(in crate::store) fn envelope_of(&self, q: &SinkQueue, id: &EventId) -> Option<Vec<u8>> {
        let leases = self.leases_of(q)?;
        let held = lock(&leases.0);
        held.get(id).map(|lease| lease.message.payload.to_vec())
    }

    pub(in crate::store) async fn set_attempts(
        &self,
        q: &SinkQueue,
        id: &EventId,
        state: &[u8],
    ) -> Result<(), StoreError> {
        if let Some(leases) = self.leases_of(q) {
            if let Some(lease) = lock(&leases.0).get_mut(id) {
                lease.state = Some(state.to_vec());
            }
        }
        self.attempts
            .put(record_key(q, id), codec::versioned(state).into())
            .await
            .map_err(|e| StoreError::Cluster(format!("recording an attempt: {e}")))?;
        Ok(())
    }

    pub(in crate::store) async fn complete(
        &self,
        q: &SinkQueue,
        done: &[(EventId, Vec<u8>)],
    ) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        // The record first: a crash in between means one more delivery, never a lost one.
        let records = done.iter().map(|(id, record)| {
            self.delivered
                .put(record_key(q, id), codec::versioned(record).into())
        });
        for put in futures_util::future::join_all(records).await {
            put.map_err(|e| StoreError::Cluster(format!("recording a delivery: {e}")))?;
        }
        let Some(leases) = self.leases_of(q) else {
            return Ok(());
        };
        let settled: Vec<(EventId, Lease)> = {
            let mut held = lock(&leases.0);
            done.iter()
                .filter_map(|(id, _)| held.remove(id).map(|lease| (id.clone(), lease)))
                .collect()
        };
        let acks = settled.iter().map(|(id, lease)| async move {
            if let Err(error) = lease.message.double_ack().await {
                // Redelivered later, maybe to another instance: one more delivery.
                tracing::warn!(workspace = %q.workspace(), sink = %q.sink(), event_id = %id, %error, "a completed delivery was not acknowledged");
            }
            if lease.state.is_some() {
                let _ = self.attempts.purge(record_key(q, id)).await;
            }
        });
        futures_util::future::join_all(acks).await;
        let n = settled.len() as u64;
        let _ =
            q.0.depth
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(n))
                });
        Ok(())
    }

    /// Takes a lease out of this instance's holdings, to bury it.
    pub(super) fn release(&self, q: &SinkQueue, id: &EventId) -> Option<jetstream::Message> {
        let leases = self.leases_of(q)?;
        let lease = lock(&leases.0).remove(id)?;
        Some(lease.message)
    }

    /// Gives a lease back after a failed burial, so the worker finds it again.
    pub(super) fn restore(&self, q: &SinkQueue, id: &EventId, message: jetstream::Message) {
        if let Some(leases) = self.leases_of(q) {
            lock(&leases.0).insert(
                id.clone(),
                Lease {
                    message,
                    state: None,
                },
            );
        }
    }

    pub(in crate::store) async fn delivery_of(
        &self,
        q: &SinkQueue,
        id: &EventId,
    ) -> Result<DeliveryOf, StoreError> {
        if let Some(queued) = self.queued(q, id)? {
            return Ok(DeliveryOf::Queued(queued.state));
        }
        if let Some(dead) = self.dead_letter(q, id).await? {
            return Ok(DeliveryOf::Dead(dead));
        }
        let key = record_key(q, id);
        if let Some(delivered) = self.versioned(&self.delivered, &key).await? {
            return Ok(DeliveryOf::Delivered(Some(delivered)));
        }
        let routed = self
            .event_record(id)
            .await?
            .is_some_and(|(queues, _)| queues.iter().any(|p| p == q.prefix()));
        if routed {
            return Ok(DeliveryOf::Queued(
                self.versioned(&self.attempts, &key).await?,
            ));
        }
        Ok(DeliveryOf::Unknown)
    }

    async fn versioned(
        &self,
        bucket: &kv::Store,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = bucket
            .get(key)
            .await
            .map_err(|e| StoreError::Cluster(format!("reading {key}: {e}")))?
        else {
            return Ok(None);
        };
        Ok(Some(codec::payload(&bytes)?.to_vec()))
    }

    pub(in crate::store) async fn drop_queue(&self, q: &SinkQueue) -> Result<u64, StoreError> {
        if let Err(e) = self.queue_stream.delete_consumer(&consumer_name(q)).await {
            // Already gone (dropped before, or by another instance) is what was asked.
            let gone = match e.kind() {
                ConsumerErrorKind::JetStream(j) => j.error_code() == ErrorCode::CONSUMER_NOT_FOUND,
                _ => false,
            };
            if !gone {
                return Err(StoreError::Cluster(format!("dropping the queue: {e}")));
            }
        }
        let purged = self
            .queue_stream
            .purge()
            .filter(subject(q))
            .await
            .map_err(|e| StoreError::Cluster(format!("dropping the queue: {e}")))?;
        q.0.depth.store(0, Ordering::Relaxed);
        Ok(purged.purged)
    }

    /// One queue's counts as JetStream has them, for every instance alike.
    pub(super) async fn refresh_queue(&self, q: &SinkQueue) -> Result<(), StoreError> {
        let cluster = |e: &dyn std::fmt::Display| StoreError::Cluster(e.to_string());
        let depth = match self.queue_stream.consumer_info(consumer_name(q)).await {
            Ok(info) => info.num_pending + info.num_ack_pending as u64,
            // No consumer (an orphan that was dropped): what the stream still holds for it.
            Err(_) => 0,
        };
        q.0.depth.store(depth, Ordering::Relaxed);
        q.0.dead
            .store(self.count_dead_letters(q).await?, Ordering::Relaxed);
        let oldest = match self
            .queue_stream
            .get_first_raw_message_by_subject(subject(q), 0)
            .await
        {
            Ok(message) => event_id(Some(&message.headers)).map_or(0, |id| id.timestamp_ms()),
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => 0,
            Err(e) => return Err(cluster(&e)),
        };
        q.0.oldest_ms.store(oldest, Ordering::Relaxed);
        Ok(())
    }
}
