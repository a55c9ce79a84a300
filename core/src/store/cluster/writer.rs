//! The cluster store's accept path: concurrent accepts are taken in batches by one task, as the
//! embedded store's writer takes them, and a batch costs two pipelined JetStream round trips
//! whatever its size. First every dedupe claim of the batch is sent at once (create-if-absent,
//! atomic across instances) and the acknowledgements awaited together; then every event and
//! queue message of the events claimed is sent at once and awaited together. Each accept is
//! answered once JetStream has acknowledged its writes. Marking the claims `done` follows the
//! answers, off their path: a `pending` claim whose event is stored already counts as done
//! ([`super::claims`]).
//!
//! Two deliveries with the same dedupe key in one batch claim it once: the first is stored,
//! the others are its duplicates, as in the embedded store.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::{self, kv};
use futures_util::future::join_all;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::claims::{Claim, Claimed, TAKEOVER_AFTER};
use crate::base::id::EventId;
use crate::store::{Accept, Accepted, StoreError, StoreMetrics};

/// Accepts taken into one batch at most; more wait for the next.
const MAX_BATCH: usize = 512;
/// Accepts waiting for the writer at most; more wait to be queued (the HTTP side's body
/// budget bounds them long before).
const QUEUE: usize = 4096;

/// An accept and where its answer goes.
pub(super) struct Waiting {
    pub(super) accept: Accept,
    pub(super) reply: oneshot::Sender<Result<Accepted, StoreError>>,
}

/// What the writer task owns: clones of the store's handles, so that it ends when the store
/// (the only sender) is dropped.
pub(super) struct Writer {
    pub(super) js: jetstream::Context,
    pub(super) events: kv::Store,
    pub(super) dedupe: super::DedupeBuckets,
    pub(super) replicas: usize,
    pub(super) unreadable: prometheus_client::metrics::counter::Counter,
    pub(super) metrics: StoreMetrics,
}

/// One accept of a batch on its way through.
struct Slot {
    accept: Accept,
    reply: oneshot::Sender<Result<Accepted, StoreError>>,
    bucket: kv::Store,
    key: String,
    /// The earlier accept of this batch with the same bucket and key.
    leader: Option<usize>,
}

impl Writer {
    /// Starts the writer task; accepts are sent to it on the returned channel.
    pub(super) fn spawn(self) -> mpsc::Sender<Waiting> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(Arc::new(self).run(rx));
        tx
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Waiting>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.commit(std::mem::take(&mut batch)).await;
        }
    }

    /// Claims, stores and answers one batch.
    async fn commit(self: &Arc<Self>, batch: Vec<Waiting>) {
        let mut slots = Vec::with_capacity(batch.len());
        let mut first: HashMap<(u64, String), usize> = HashMap::new();
        for Waiting { accept, reply } in batch {
            let window = accept.claim_expires_at_ms.saturating_sub(accept.now_ms);
            let secs = (window / 1000).max(1);
            let bucket = match self.dedupe_bucket(secs).await {
                Ok(bucket) => bucket,
                Err(error) => {
                    let _ = reply.send(Err(error));
                    continue;
                }
            };
            let key = hex::encode(Sha256::digest(accept.key.as_bytes()));
            let at = slots.len();
            let leader = first.entry((secs, key.clone())).or_insert(at);
            let leader = (*leader != at).then_some(*leader);
            slots.push(Slot {
                accept,
                reply,
                bucket,
                key,
                leader,
            });
        }
        let leaders: Vec<usize> = (0..slots.len())
            .filter(|i| slots[*i].leader.is_none())
            .collect();

        // Round trip one: every claim at once.
        let claims = join_all(leaders.iter().map(|i| {
            let s = &slots[*i];
            self.claim(&s.bucket, &s.key, &s.accept)
        }))
        .await;
        let mut outcome: Vec<Option<Result<Accepted, StoreError>>> =
            (0..slots.len()).map(|_| None).collect();
        let mut to_store = Vec::new();
        for (i, claim) in leaders.iter().zip(claims) {
            match claim {
                Ok(Claimed::Duplicate(id)) => outcome[*i] = Some(Ok(Accepted::Duplicate(id))),
                Ok(Claimed::Mine(revision)) => to_store.push((*i, revision)),
                Err(error) => outcome[*i] = Some(Err(error)),
            }
        }

        // Round trip two: every claimed event and its queue messages at once.
        let stored =
            join_all(to_store.iter().map(|(i, _)| {
                super::claims::store_event(&self.js, &self.events, &slots[*i].accept)
            }))
            .await;
        let mut done = Vec::new();
        for ((i, revision), result) in to_store.into_iter().zip(stored) {
            let s = &slots[i];
            match result {
                Ok(()) => {
                    outcome[i] = Some(Ok(Accepted::New));
                    done.push((
                        s.bucket.clone(),
                        s.key.clone(),
                        s.accept.id.clone(),
                        revision,
                    ));
                }
                Err(error) => {
                    // Free the claim so the vendor's retry is stored; if even that fails, the
                    // pending claim is taken over after TAKEOVER_AFTER.
                    let _ = s
                        .bucket
                        .delete_expect_revision(&s.key, Some(revision))
                        .await;
                    outcome[i] = Some(Err(error));
                }
            }
        }
        if !done.is_empty() {
            self.metrics.commits.inc();
            if let Some(h) = &self.metrics.batch_events {
                h.observe(done.len() as f64);
            }
        }

        // Answers: a follower is its leader's duplicate, or fails with it.
        let leader_result: Vec<Option<Result<EventId, ()>>> = outcome
            .iter()
            .zip(&slots)
            .map(|(o, s)| match o {
                Some(Ok(Accepted::New)) => Some(Ok(s.accept.id.clone())),
                Some(Ok(Accepted::Duplicate(first))) => Some(Ok(first.clone())),
                Some(Err(_)) => Some(Err(())),
                None => None,
            })
            .collect();
        for (i, s) in slots.into_iter().enumerate() {
            let answer = match (s.leader, outcome[i].take()) {
                (None, Some(result)) => result,
                (Some(leader), _) => match &leader_result[leader] {
                    Some(Ok(first)) => Ok(Accepted::Duplicate(first.clone())),
                    _ => Err(StoreError::InFlight),
                },
                (None, None) => Err(StoreError::InFlight),
            };
            let _ = s.reply.send(answer);
        }

        if done.is_empty() {
            return;
        }
        // Off the answers' path: the claims of stored events become `done`.
        tokio::spawn(async move {
            let updates = done.iter().map(|(bucket, key, id, revision)| async move {
                if let Err(error) = bucket
                    .update(key, Claim::Done(id.clone()).encode(), *revision)
                    .await
                {
                    // The event is stored: a pending claim whose event exists reads as done.
                    tracing::debug!(event_id = %id, %error, "dedupe claim left pending");
                }
            });
            join_all(updates).await;
        });
    }

    /// The bucket of a dedupe window of `secs` seconds, created on first use.
    async fn dedupe_bucket(&self, secs: u64) -> Result<kv::Store, StoreError> {
        let mut buckets = self.dedupe.lock().await;
        if let Some(bucket) = buckets.get(&secs) {
            return Ok(bucket.clone());
        }
        let name = format!("SWITCHYARD_DEDUPE_{secs}");
        let window = std::time::Duration::from_secs(secs);
        let bucket = super::bucket(&self.js, &name, window, self.replicas).await?;
        buckets.insert(secs, bucket.clone());
        Ok(bucket)
    }
}

impl Writer {
    /// Claims `key` for `accept` in `bucket`: create-if-absent, or take over a claim left
    /// pending by a failed store (older than [`TAKEOVER_AFTER`], its event not stored). A
    /// `pending` claim whose event is stored counts as `done`: the update to `done` follows
    /// the answer and may be lost with its instance.
    async fn claim(
        &self,
        bucket: &kv::Store,
        key: &str,
        accept: &Accept,
    ) -> Result<Claimed, StoreError> {
        let pending = Claim::Pending(accept.id.clone(), accept.now_ms);
        match bucket.create(key, pending.encode()).await {
            Ok(revision) => Ok(Claimed::Mine(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                self.claimed(bucket, key, accept).await
            }
            Err(e) => Err(StoreError::Cluster(format!("claiming the dedupe key: {e}"))),
        }
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
            // Its event is stored: the claim is done, its update still on the way (or lost).
            Some(Claim::Pending(first, _)) if self.is_stored(&first).await? => {
                Ok(Claimed::Duplicate(first))
            }
            Some(Claim::Pending(_, at_ms))
                if accept.now_ms.saturating_sub(at_ms) < TAKEOVER_AFTER.as_millis() as u64 =>
            {
                Err(busy())
            }
            claim => {
                if claim.is_none() {
                    self.unreadable.inc();
                    tracing::error!(
                        error = "not a switchyard claim",
                        "a dedupe claim unreadable"
                    );
                }
                let pending = Claim::Pending(accept.id.clone(), accept.now_ms).encode();
                let revision = bucket
                    .update(key, pending, entry.revision)
                    .await
                    .map_err(|_| busy())?;
                tracing::warn!(event_id = %accept.id, "a dedupe claim left pending by a failed store is taken over");
                Ok(Claimed::Mine(revision))
            }
        }
    }

    async fn is_stored(&self, id: &EventId) -> Result<bool, StoreError> {
        self.events
            .get(id.to_string())
            .await
            .map(|e| e.is_some())
            .map_err(|e| StoreError::Cluster(format!("reading event {id}: {e}")))
    }
}
