//! Dedupe claims and the events they guard: a delivery claims its dedupe key in the window's
//! bucket (create-if-absent, `pending` then `done`), stores its event and queue messages, and
//! a claim left `pending` by an instance that died is taken over.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{bucket, subjects, ClusterStore};
use crate::base::id::EventId;
use crate::store::codec::{self, Reader};
use crate::store::{Accept, Accepted, SinkQueue, StoreError};

/// A `pending` claim older than this is taken over: its instance died, or lost NATS, between
/// claiming and storing. Far longer than a store takes, far shorter than vendors' retries.
pub(super) const TAKEOVER_AFTER: Duration = Duration::from_secs(30);
impl ClusterStore {
    pub(super) async fn claim_and_store(&self, accept: &Accept) -> Result<Accepted, StoreError> {
        let window = accept.claim_expires_at_ms.saturating_sub(accept.now_ms);
        let bucket = self.dedupe_bucket(Duration::from_millis(window)).await?;
        let key = hex::encode(Sha256::digest(accept.key.as_bytes()));
        let pending = Claim::Pending(accept.id.clone(), accept.now_ms);
        let revision = match bucket.create(&key, pending.encode()).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.claimed(&bucket, &key, accept).await? {
                    Claimed::Duplicate(first) => return Ok(Accepted::Duplicate(first)),
                    Claimed::TakenOver(revision) => revision,
                }
            }
            Err(e) => return Err(StoreError::Cluster(format!("claiming the dedupe key: {e}"))),
        };
        if let Err(error) = self.store_event(accept).await {
            // Free the claim so the vendor's retry is stored; if even that fails, the pending
            // claim is taken over after TAKEOVER_AFTER.
            let _ = bucket.delete_expect_revision(&key, Some(revision)).await;
            return Err(error);
        }
        let done = Claim::Done(accept.id.clone()).encode();
        if let Err(error) = bucket.update(&key, done, revision).await {
            // The event is stored: the claim stays pending, and a retry after TAKEOVER_AFTER
            // stores it a second time (at least once), never loses it.
            tracing::warn!(event_id = %accept.id, %error, "dedupe claim left pending");
        }
        Ok(Accepted::New)
    }

    /// A claim exists: a duplicate of a stored event, or one to take over.
    async fn claimed(
        &self,
        bucket: &kv::Store,
        key: &str,
        accept: &Accept,
    ) -> Result<Claimed, StoreError> {
        let busy = || StoreError::InFlight;
        let entry = bucket
            .entry(key)
            .await
            .map_err(|e| StoreError::Cluster(format!("reading the dedupe claim: {e}")))?
            .filter(|e| e.operation == kv::Operation::Put)
            .ok_or_else(busy)?;
        match Claim::decode(&entry.value) {
            Some(Claim::Done(first)) => Ok(Claimed::Duplicate(first)),
            Some(Claim::Pending(_, at_ms))
                if accept.now_ms.saturating_sub(at_ms) < TAKEOVER_AFTER.as_millis() as u64 =>
            {
                Err(busy())
            }
            claim => {
                if claim.is_none() {
                    self.unreadable("a dedupe claim", &"not a switchyard claim");
                }
                let pending = Claim::Pending(accept.id.clone(), accept.now_ms).encode();
                let revision = bucket
                    .update(key, pending, entry.revision)
                    .await
                    .map_err(|_| busy())?;
                tracing::warn!(event_id = %accept.id, "a dedupe claim left pending by a failed store is taken over");
                Ok(Claimed::TakenOver(revision))
            }
        }
    }

    async fn dedupe_bucket(&self, window: Duration) -> Result<kv::Store, StoreError> {
        let secs = window.as_secs().max(1);
        let mut buckets = self.dedupe.lock().await;
        if let Some(bucket) = buckets.get(&secs) {
            return Ok(bucket.clone());
        }
        let window = Duration::from_secs(secs);
        let name = format!("SWITCHYARD_DEDUPE_{secs}");
        let bucket = bucket(&self.js, &name, window, self.replicas).await?;
        buckets.insert(secs, bucket.clone());
        Ok(bucket)
    }

    /// The event for lookups, and one queue message per sink; returns once JetStream has
    /// acknowledged every one of them.
    async fn store_event(&self, accept: &Accept) -> Result<(), StoreError> {
        let mut acks = Vec::with_capacity(accept.queues.len());
        for q in &accept.queues {
            let ack = self
                .js
                .publish_with_headers(
                    subjects::subject(q),
                    subjects::headers(&accept.id, q, None),
                    Bytes::copy_from_slice(&accept.envelope),
                )
                .await
                .map_err(|e| StoreError::Cluster(format!("queueing for {}: {e}", q.sink())))?;
            acks.push(ack);
        }
        let record = EventRecord::encode(&accept.queues, &accept.envelope);
        self.events
            .put(accept.id.to_string(), record)
            .await
            .map_err(|e| StoreError::Cluster(format!("storing the event: {e}")))?;
        for ack in acks {
            ack.await
                .map_err(|e| StoreError::Cluster(format!("queueing: {e}")))?;
        }
        Ok(())
    }

    pub(in crate::store) async fn event(
        &self,
        id: &EventId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.event_record(id).await?.map(|(_, envelope)| envelope))
    }

    /// The queues an event went to and its envelope.
    pub(super) async fn event_record(
        &self,
        id: &EventId,
    ) -> Result<Option<(Vec<Vec<u8>>, Vec<u8>)>, StoreError> {
        let Some(bytes) = self
            .events
            .get(id.to_string())
            .await
            .map_err(|e| StoreError::Cluster(format!("reading event {id}: {e}")))?
        else {
            return Ok(None);
        };
        match EventRecord::decode(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(error) => {
                self.unreadable(&format!("stored event {id}"), &error);
                Ok(None)
            }
        }
    }
}

/// What an existing claim means for a new copy.
enum Claimed {
    Duplicate(EventId),
    TakenOver(u64),
}

/// A dedupe claim's value.
enum Claim {
    /// Claimed by this event id at this time (ms), not yet known to be stored.
    Pending(EventId, u64),
    Done(EventId),
}

impl Claim {
    fn encode(&self) -> Bytes {
        match self {
            Claim::Pending(id, at) => format!("pending {id} {at}").into(),
            Claim::Done(id) => format!("done {id}").into(),
        }
    }

    fn decode(bytes: &[u8]) -> Option<Claim> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split(' ');
        match (parts.next()?, parts.next().and_then(EventId::parse)?) {
            ("done", id) => Some(Claim::Done(id)),
            ("pending", id) => Some(Claim::Pending(id, parts.next()?.parse().ok()?)),
            _ => None,
        }
    }
}

/// An event as the events bucket keeps it: the queues it went to, then its envelope.
struct EventRecord;

impl EventRecord {
    fn encode(queues: &[SinkQueue], envelope: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(envelope.len() + 64);
        out.extend_from_slice(&(queues.len() as u16).to_be_bytes());
        for q in queues {
            codec::put_bytes16(&mut out, q.prefix());
        }
        out.extend_from_slice(envelope);
        codec::versioned(&out).into()
    }

    fn decode(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, Vec<u8>), codec::RecordError> {
        let mut r = Reader(codec::payload(bytes)?);
        let queues = (0..r.u16()?)
            .map(|_| r.bytes16().map(<[u8]>::to_vec))
            .collect::<Result<_, _>>()?;
        Ok((queues, r.0.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_and_foreign_values_are_not_claims() {
        let id = EventId::generate();
        match Claim::decode(&Claim::Pending(id.clone(), 42).encode()) {
            Some(Claim::Pending(got, 42)) => assert_eq!(got, id),
            _ => panic!("pending claim did not round-trip"),
        }
        match Claim::decode(&Claim::Done(id.clone()).encode()) {
            Some(Claim::Done(got)) => assert_eq!(got, id),
            _ => panic!("done claim did not round-trip"),
        }
        assert!(Claim::decode(b"done not-an-id").is_none());
        assert!(Claim::decode(b"").is_none());
    }
}
