//! The cluster store: NATS JetStream, shared by any number of switchyard instances.
//!
//! What lives where (every stream and bucket with the configured replicas):
//! - dedupe claims: a key-value bucket per dedupe window (`SWITCHYARD_DEDUPE_<secs>`), its TTL
//!   the window. A claim is created atomically (create-if-absent), first as `pending`, then
//!   `done` once the event is stored, so a claim whose first instance died before storing
//!   the event is taken over instead of answering `duplicate` for an event nobody kept.
//! - events: the `SWITCHYARD_EVENTS` bucket (TTL: retention), for lookups and replays.
//! - queues: the `SWITCHYARD_QUEUE` work-queue stream, one message per event and sink on
//!   `switchyard.queue.<workspace>.<sink>`, `Nats-Msg-Id` set so a retried publish is stored
//!   once; each sink's queue is a durable consumer every instance pulls from ([`queue`]).
//! - dead letters: the `SWITCHYARD_DEAD` stream, one subject per letter ([`dead`]).
//! - delivery state: `SWITCHYARD_ATTEMPTS` (failed attempts, so another instance resumes
//!   them) and `SWITCHYARD_DELIVERED` (completed deliveries, for lookups; TTL: retention).

mod dead;
mod queue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

use super::codec::{self, Reader};
use super::{lock, Accept, Accepted, SinkQueue, StoreError, StoreMetrics};
use crate::base::broker_url::BrokerUrl;
use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};
use crate::base::nats::NatsAccess;

pub use queue::Feed;

const QUEUE_STREAM: &str = "SWITCHYARD_QUEUE";
const DEAD_STREAM: &str = "SWITCHYARD_DEAD";
const EVENTS_BUCKET: &str = "SWITCHYARD_EVENTS";
const ATTEMPTS_BUCKET: &str = "SWITCHYARD_ATTEMPTS";
const DELIVERED_BUCKET: &str = "SWITCHYARD_DELIVERED";
const EVENT_ID_HEADER: &str = "Switchyard-Event-Id";
/// A `pending` claim older than this is taken over: its instance died, or lost NATS, between
/// claiming and storing. Far longer than a store takes, far shorter than vendors' retries.
const TAKEOVER_AFTER: Duration = Duration::from_secs(30);
/// How often queue counters and sizes are read back from JetStream.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// `server.store` with `type: nats`, from routes.yaml.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterOptions {
    /// May carry credentials: shown only redacted.
    pub servers: Vec<BrokerUrl>,
    /// Copies JetStream keeps of every stream and bucket; an accept is acknowledged only
    /// once a majority of them have it.
    pub replicas: usize,
    /// How long accepted events and delivery records are kept for lookup.
    pub retention: Duration,
    /// How long a connection attempt or a JetStream request may take.
    pub timeout: Duration,
    /// How long this instance holds what it took from a queue without renewing it; once it
    /// runs out (the instance died), JetStream hands the events to another instance.
    pub lease: Duration,
    /// Credentials and TLS.
    pub access: NatsAccess,
}

pub struct ClusterStore {
    client: async_nats::Client,
    js: jetstream::Context,
    replicas: usize,
    lease: Duration,
    queue_stream: stream::Stream,
    dead_stream: stream::Stream,
    events: kv::Store,
    attempts: kv::Store,
    delivered: kv::Store,
    /// Dedupe buckets by window, created on first use.
    dedupe: tokio::sync::Mutex<HashMap<u64, kv::Store>>,
    queues: Mutex<HashMap<Vec<u8>, SinkQueue>>,
    /// What this instance has taken from each queue and not yet settled.
    leases: Arc<Mutex<HashMap<Vec<u8>, Arc<queue::Leases>>>>,
    /// Cleared by a failed write, set again by a successful one.
    writes_ok: AtomicBool,
    bytes: AtomicU64,
    metrics: StoreMetrics,
    unreadable: Counter,
}

impl ClusterStore {
    pub(super) async fn open(
        options: &ClusterOptions,
        metrics: StoreMetrics,
    ) -> Result<ClusterStore, StoreError> {
        let connect_error = |reason: String| StoreError::Connect {
            servers: redact_servers(&options.servers),
            reason,
        };
        let addresses: Vec<async_nats::ServerAddr> = options
            .servers
            .iter()
            .map(|s| s.expose().parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::io::Error| connect_error(e.to_string()))?;
        // The first connection must succeed (no instance accepts what it cannot store); after
        // that the client reconnects for as long as it takes, while /readyz says not ready.
        let connect = options.access.options().await.map_err(connect_error)?;
        let client = connect
            .name("switchyard")
            .max_reconnects(None)
            .request_timeout(Some(options.timeout))
            .connection_timeout(options.timeout)
            .connect(addresses)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(options.timeout);
        let replicas = options.replicas;
        let stream_error = |name: &str, e: &dyn std::fmt::Display| {
            StoreError::Cluster(format!("stream {name}: {e}"))
        };
        js.create_or_update_stream(stream::Config {
            name: QUEUE_STREAM.into(),
            description: Some("switchyard: what each sink still owes".into()),
            subjects: vec!["switchyard.queue.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            num_replicas: replicas,
            duplicate_window: TAKEOVER_AFTER * 4,
            ..Default::default()
        })
        .await
        .map_err(|e| stream_error(QUEUE_STREAM, &e))?;
        let queue_stream = js
            .get_stream(QUEUE_STREAM)
            .await
            .map_err(|e| stream_error(QUEUE_STREAM, &e))?;
        js.create_or_update_stream(stream::Config {
            name: DEAD_STREAM.into(),
            description: Some("switchyard: dead letters, kept until replayed or deleted".into()),
            subjects: vec!["switchyard.dead.>".into()],
            max_messages_per_subject: 1,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| stream_error(DEAD_STREAM, &e))?;
        let dead_stream = js
            .get_stream(DEAD_STREAM)
            .await
            .map_err(|e| stream_error(DEAD_STREAM, &e))?;
        let events = bucket(&js, EVENTS_BUCKET, options.retention, replicas).await?;
        let attempts = bucket(&js, ATTEMPTS_BUCKET, options.retention, replicas).await?;
        let delivered = bucket(&js, DELIVERED_BUCKET, options.retention, replicas).await?;
        let store = ClusterStore {
            client,
            js,
            replicas,
            lease: options.lease,
            queue_stream,
            dead_stream,
            events,
            attempts,
            delivered,
            dedupe: tokio::sync::Mutex::default(),
            queues: Mutex::default(),
            leases: Arc::default(),
            writes_ok: AtomicBool::new(true),
            bytes: AtomicU64::new(0),
            unreadable: metrics.unreadable.clone(),
            metrics,
        };
        store.find_queues().await?;
        tracing::info!(servers = %redact_servers(&options.servers), replicas, "cluster store on NATS JetStream");
        Ok(store)
    }

    /// Starts reading queue counters back from JetStream; ends with the store.
    pub(super) fn start_refresh(store: &Arc<super::Store>) {
        let weak = Arc::downgrade(store);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(store) = weak.upgrade() else { return };
                if let super::Store::Cluster(cluster) = &*store {
                    cluster.refresh().await;
                }
            }
        });
    }

    pub(super) fn queue(&self, workspace: &WorkspaceId, sink: &SinkName) -> SinkQueue {
        let q = SinkQueue::new(workspace, sink, 0, 0);
        lock(&self.queues)
            .entry(q.prefix().to_vec())
            .or_insert(q)
            .clone()
    }

    pub(super) fn known_queues(&self) -> Vec<SinkQueue> {
        let mut queues: Vec<SinkQueue> = lock(&self.queues).values().cloned().collect();
        queues.sort_by(|a, b| a.prefix().cmp(b.prefix()));
        queues
    }

    pub(super) fn unreadable(&self, what: &str, error: &dyn std::fmt::Display) {
        self.unreadable.inc();
        tracing::error!(%error, "{what} unreadable");
    }

    pub(super) fn is_healthy(&self) -> bool {
        self.writes_ok.load(Ordering::Relaxed)
            && self.client.connection_state() == async_nats::connection::State::Connected
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(super) async fn accept(&self, accept: Accept) -> Result<Accepted, StoreError> {
        let result = self.claim_and_store(&accept).await;
        match &result {
            Ok(_) => {
                self.writes_ok.store(true, Ordering::Relaxed);
                self.metrics.commits.inc();
                if let Some(h) = &self.metrics.batch_events {
                    h.observe(1.0);
                }
            }
            Err(StoreError::Cluster(_)) => self.writes_ok.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }

    async fn claim_and_store(&self, accept: &Accept) -> Result<Accepted, StoreError> {
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
                    queue::subject(q),
                    queue::headers(&accept.id, q, None),
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

    pub(super) async fn event(&self, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.event_record(id).await?.map(|(_, envelope)| envelope))
    }

    /// The queues an event went to and its envelope.
    async fn event_record(
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

    /// Registers the queues JetStream already has (sinks this configuration may no longer
    /// have), with their counts.
    async fn find_queues(&self) -> Result<(), StoreError> {
        use futures_util::TryStreamExt;
        let consumers: Vec<_> = self
            .queue_stream
            .consumers()
            .try_collect()
            .await
            .map_err(|e| StoreError::Cluster(format!("listing queues: {e}")))?;
        for info in consumers {
            let names = info.config.description.as_deref().and_then(queue::names);
            if let Some((workspace, sink)) = names {
                self.queue(&workspace, &sink);
            }
        }
        self.refresh().await;
        Ok(())
    }

    /// Reads every known queue's depth, dead letters and oldest entry back from JetStream:
    /// each instance sees the whole cluster's counts.
    async fn refresh(&self) {
        if !self.writes_ok.load(Ordering::Relaxed) {
            // Readiness comes back once JetStream takes a write again, with no request needed.
            match self.attempts.put("probe", Bytes::new()).await {
                Ok(_) => {
                    self.writes_ok.store(true, Ordering::Relaxed);
                    tracing::info!("NATS JetStream takes writes again");
                }
                Err(error) => tracing::debug!(%error, "NATS JetStream still refuses writes"),
            }
        }
        for q in self.known_queues() {
            if let Err(error) = self.refresh_queue(&q).await {
                tracing::debug!(workspace = %q.workspace(), sink = %q.sink(), %error, "queue counts not refreshed");
            }
        }
        let mut bytes = 0;
        for stream in [&self.queue_stream, &self.dead_stream] {
            if let Ok(info) = stream.get_info().await {
                bytes += info.state.bytes;
            }
        }
        let dedupe: Vec<kv::Store> = self.dedupe.lock().await.values().cloned().collect();
        for bucket in [&self.events, &self.attempts, &self.delivered]
            .into_iter()
            .chain(&dedupe)
        {
            if let Ok(status) = bucket.status().await {
                bytes += status.info.state.bytes;
            }
        }
        self.bytes.store(bytes, Ordering::Relaxed);
    }
}

/// A key-value bucket, created (or its limits updated) if need be. Its stream is made here
/// with the key-value conventions rather than by the client's `create_key_value`, whose
/// request carries settings that NATS servers before 2.10 refuse.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    ttl: Duration,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    let failed = |e: &dyn std::fmt::Display| StoreError::Cluster(format!("bucket {name}: {e}"));
    js.create_or_update_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: ttl,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| failed(&e))?;
    js.get_key_value(name).await.map_err(|e| failed(&e))
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

/// Server addresses for logs and errors, without any credentials they carry.
fn redact_servers(servers: &[BrokerUrl]) -> String {
    servers
        .iter()
        .map(BrokerUrl::redacted)
        .collect::<Vec<_>>()
        .join(",")
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

    #[test]
    fn server_credentials_never_reach_logs() {
        let shown = redact_servers(&[
            BrokerUrl::new("nats://user:hunter2@10.0.0.1:4222"),
            BrokerUrl::new("tls://10.0.0.2:4222"),
        ]);
        assert_eq!(shown, "nats://10.0.0.1:4222,tls://10.0.0.2:4222");
    }
}
