//! The cluster store: NATS JetStream, shared by any number of switchyard instances.
//!
//! Accepts are batched ([`writer`]): one task takes whatever is waiting and claims, stores and
//! answers it in two pipelined round trips to JetStream, whatever the batch's size.
//!
//! What lives where (every stream and bucket with the configured replicas):
//! - dedupe claims: a key-value bucket per dedupe window (`SWITCHYARD_DEDUPE_<secs>`), its TTL
//!   the window. A claim is created atomically (create-if-absent), first as `pending`, then
//!   `done` once the event is stored (a `pending` claim whose event is stored counts as done),
//!   so a claim whose first instance died before storing the event is taken over instead of
//!   answering `duplicate` for an event nobody kept.
//! - events: the `SWITCHYARD_EVENTS` bucket (TTL: retention), for lookups and replays.
//! - queues: the `SWITCHYARD_QUEUE` work-queue stream, one message per event and sink on
//!   `switchyard.queue.<workspace>.<sink>`, `Nats-Msg-Id` set so a retried publish is stored
//!   once; each sink's queue is a durable consumer every instance pulls from ([`queue`]).
//! - dead letters: the `SWITCHYARD_DEAD` stream, one subject per letter ([`dead`]).
//! - delivery state: `SWITCHYARD_ATTEMPTS` (failed attempts, so another instance resumes
//!   them) and `SWITCHYARD_DELIVERED` (completed deliveries, for lookups; TTL: retention).

mod claims;
mod dead;
mod feed;
mod queue;
mod subjects;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;

use super::{lock, Accept, Accepted, NatsStoreConfig, SinkQueue, StoreError, StoreMetrics};
use crate::base::broker_url::BrokerUrl;
use crate::base::names::{SinkName, WorkspaceId};

use claims::TAKEOVER_AFTER;
pub use feed::Feed;
use writer::{Waiting, Writer};

const QUEUE_STREAM: &str = "SWITCHYARD_QUEUE";
const DEAD_STREAM: &str = "SWITCHYARD_DEAD";
const EVENTS_BUCKET: &str = "SWITCHYARD_EVENTS";
const ATTEMPTS_BUCKET: &str = "SWITCHYARD_ATTEMPTS";
const DELIVERED_BUCKET: &str = "SWITCHYARD_DELIVERED";
const EVENT_ID_HEADER: &str = "Switchyard-Event-Id";
/// The dedupe buckets by window (seconds), created on first use.
type DedupeBuckets = Arc<tokio::sync::Mutex<HashMap<u64, kv::Store>>>;

/// How often queue counters and sizes are read back from JetStream.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

pub struct ClusterStore {
    client: async_nats::Client,
    js: jetstream::Context,
    lease: Duration,
    queue_stream: stream::Stream,
    dead_stream: stream::Stream,
    events: kv::Store,
    attempts: kv::Store,
    delivered: kv::Store,
    dedupe: DedupeBuckets,
    /// The writer task's queue ([`writer`]).
    accepts: tokio::sync::mpsc::Sender<Waiting>,
    queues: Mutex<HashMap<Vec<u8>, SinkQueue>>,
    /// What this instance has taken from each queue and not yet settled.
    leases: Arc<Mutex<HashMap<Vec<u8>, Arc<feed::Leases>>>>,
    /// Cleared by a failed write, set again by a successful one.
    writes_ok: AtomicBool,
    bytes: AtomicU64,
    unreadable: Counter,
}

impl ClusterStore {
    pub(super) async fn open(
        options: &NatsStoreConfig,
        retention: Duration,
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
        let events = bucket(&js, EVENTS_BUCKET, retention, replicas).await?;
        let attempts = bucket(&js, ATTEMPTS_BUCKET, retention, replicas).await?;
        let delivered = bucket(&js, DELIVERED_BUCKET, retention, replicas).await?;
        let dedupe = DedupeBuckets::default();
        let accepts = Writer {
            js: js.clone(),
            events: events.clone(),
            dedupe: dedupe.clone(),
            replicas,
            unreadable: metrics.unreadable.clone(),
            metrics: metrics.clone(),
        }
        .spawn();
        let store = ClusterStore {
            client,
            js,
            lease: options.lease,
            queue_stream,
            dead_stream,
            events,
            attempts,
            delivered,
            dedupe,
            accepts,
            queues: Mutex::default(),
            leases: Arc::default(),
            writes_ok: AtomicBool::new(true),
            bytes: AtomicU64::new(0),
            unreadable: metrics.unreadable,
        };
        store.find_queues().await?;
        tracing::info!(servers = %redact_servers(&options.servers), replicas, "cluster store on NATS JetStream");
        Ok(store)
    }

    /// Starts reading queue counters back from JetStream; ends with the store.
    pub(super) fn start_refresh(store: &Arc<ClusterStore>) {
        let weak = Arc::downgrade(store);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(store) = weak.upgrade() else { return };
                store.refresh().await;
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

    pub(super) fn forget_queue(&self, q: &SinkQueue) {
        lock(&self.queues).remove(q.prefix());
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
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Cluster("the accept writer has stopped".into());
        self.accepts
            .send(Waiting { accept, reply })
            .await
            .map_err(|_| stopped())?;
        let result = answer.await.map_err(|_| stopped())?;
        match &result {
            Ok(_) => self.writes_ok.store(true, Ordering::Relaxed),
            Err(StoreError::Cluster(_)) => self.writes_ok.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        result
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
            let names = info.config.description.as_deref().and_then(subjects::names);
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
    fn server_credentials_never_reach_logs() {
        let shown = redact_servers(&[
            BrokerUrl::new("nats://user:hunter2@10.0.0.1:4222"),
            BrokerUrl::new("tls://10.0.0.2:4222"),
        ]);
        assert_eq!(shown, "nats://10.0.0.1:4222,tls://10.0.0.2:4222");
    }
}
