//! The store boundary: everything the ingest path and the delivery workers keep, behind one
//! [`Store`] whose methods say what happens (accept an event, read a sink's queue, complete,
//! bury, replay). Two stores stand behind it, and nothing outside this module knows which one
//! runs:
//! - [`embedded`] (the default): a write-ahead log and sled in `data_dir`, one process.
//! - [`cluster`] (`server.store.type: nats`): NATS JetStream, shared by any number of
//!   instances: dedupe claims in a key-value bucket, queues as durable consumers.

pub mod cluster;
pub mod embedded;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::Notify;

use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};
use crate::event::dedupe::DedupeKey;

pub use cluster::{ClusterOptions, ClusterStore};
pub use embedded::record::RecordError;
pub use embedded::EmbeddedStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store in {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        source: sled::Error,
    },
    #[error("cannot open the write-ahead log in {}: {source}", path.display())]
    Log {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the store in {} was written by an earlier release (no format version); deliver its queues with that release, or move the directory aside to start empty", path.display())]
    Unversioned { path: std::path::PathBuf },
    #[error("the store in {} has format version {found}; this release reads {}", path.display(), embedded::record::VERSION)]
    Version { path: std::path::PathBuf, found: u8 },
    #[error("the store cannot take writes: {0}")]
    Write(String),
    #[error("the store could not sync to disk: {0}")]
    Sync(String),
    #[error("a stored record could not be read: {0}")]
    Record(#[from] RecordError),
    #[error("cannot reach NATS JetStream at {servers}: {reason}")]
    Connect { servers: String, reason: String },
    #[error("NATS JetStream: {0}")]
    Cluster(String),
    #[error("another instance is storing the first copy of this event")]
    InFlight,
    #[error("{0}")]
    Unsupported(&'static str),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Write(e.to_string())
    }
}

/// How the embedded store is opened, from routes.yaml.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub cache_bytes: u64,
    /// How long accepted events are kept for lookup: log segments are closed at a quarter of
    /// it (between a second and an hour) so that they can be retired on time.
    pub retention: Duration,
}

/// What the store reports to /metrics.
#[derive(Clone, Default)]
pub struct StoreMetrics {
    /// Batches made durable (one log write and sync each; one event each in cluster mode).
    pub commits: Counter,
    /// Events per committed batch.
    pub batch_events: Option<Histogram>,
    /// Stored records that could not be read (damage, or a format this release does not
    /// know): each is also logged, never skipped silently.
    pub unreadable: Counter,
}

/// A verified, mapped event to keep.
pub struct Accept {
    pub key: DedupeKey,
    /// The id it gets if it is new.
    pub id: EventId,
    /// When its dedupe claim ends (ms since the Unix epoch).
    pub claim_expires_at_ms: u64,
    /// Now, in ms since the Unix epoch: claims that ended before it are free again.
    pub now_ms: u64,
    /// Compact JSON; the embedded store keeps it compressed.
    pub envelope: Vec<u8>,
    /// The sinks it is routed to; empty keeps it for lookup only (unrouted).
    pub queues: Vec<SinkQueue>,
}

/// The first-seen decision, made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    New,
    /// Seen inside the window; the first delivery's event id.
    Duplicate(EventId),
}

/// A queued event, as a delivery worker reads its queue: its envelope is read only when it is
/// handed to the sink ([`Store::envelope_of`]), so scanning ahead costs no memory.
pub struct Queued {
    pub id: EventId,
    /// The delivery state recorded by earlier attempts.
    pub state: Option<Vec<u8>>,
}

/// One page of a sink's dead letters, oldest first.
pub struct DeadPage {
    pub letters: Vec<(EventId, Vec<u8>)>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<EventId>,
}

/// Where one event stands with one sink; the bytes are [`crate::deliver`]'s records.
pub enum DeliveryOf {
    Queued(Option<Vec<u8>>),
    Dead(Vec<u8>),
    Delivered(Vec<u8>),
    /// Not routed to this sink, or its record is past retention.
    Unknown,
}

/// One sink's queue: its names, its counters (kept in memory) and the signal that wakes its
/// delivery worker.
#[derive(Clone)]
pub struct SinkQueue(Arc<QueueState>);

struct QueueState {
    workspace: WorkspaceId,
    sink: SinkName,
    prefix: Vec<u8>,
    depth: AtomicU64,
    dead: AtomicU64,
    in_flight: AtomicU64,
    /// When the oldest event still owed was accepted (ms since the epoch; 0: none), where the
    /// store keeps it rather than reads it (cluster mode).
    oldest_ms: AtomicU64,
    wake: Notify,
    /// The lowest id added since the worker last looked: commits can land out of id order,
    /// and a replay puts back an old id, so the worker rescans from here.
    added_min: Mutex<Option<EventId>>,
}

impl SinkQueue {
    fn new(workspace: &WorkspaceId, sink: &SinkName, depth: u64, dead: u64) -> SinkQueue {
        SinkQueue(Arc::new(QueueState {
            workspace: workspace.clone(),
            sink: sink.clone(),
            prefix: queue_prefix(workspace, sink),
            depth: AtomicU64::new(depth),
            dead: AtomicU64::new(dead),
            in_flight: AtomicU64::new(0),
            oldest_ms: AtomicU64::new(0),
            wake: Notify::new(),
            added_min: Mutex::new(None),
        }))
    }

    pub fn workspace(&self) -> &WorkspaceId {
        &self.0.workspace
    }

    pub fn sink(&self) -> &SinkName {
        &self.0.sink
    }

    /// Events the sink still owes (in flight included).
    pub fn depth(&self) -> u64 {
        self.0.depth.load(Ordering::Relaxed)
    }

    pub fn dead(&self) -> u64 {
        self.0.dead.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u64 {
        self.0.in_flight.load(Ordering::Relaxed)
    }

    /// The delivery worker counts what it has handed to the sink and not yet settled.
    pub fn set_in_flight(&self, n: u64) {
        self.0.in_flight.store(n, Ordering::Relaxed);
    }

    /// Resolves once the queue has new entries (or already had them since the last wait).
    pub async fn changed(&self) {
        self.0.wake.notified().await;
    }

    /// Takes the lowest id added to the queue since the last call.
    pub fn take_added_min(&self) -> Option<EventId> {
        lock(&self.0.added_min).take()
    }

    /// Records an added entry and wakes the worker.
    fn added(&self, id: &EventId) {
        {
            let mut min = lock(&self.0.added_min);
            if min.as_ref().is_none_or(|m| id < m) {
                *min = Some(id.clone());
            }
        }
        self.0.depth.fetch_add(1, Ordering::Relaxed);
        self.0.wake.notify_one();
    }

    /// Makes the worker read its whole queue again, from the first entry.
    fn rescan(&self) {
        *lock(&self.0.added_min) = Some(EventId::from_bytes([0; 16]));
        self.0.wake.notify_one();
    }

    fn key(&self, id: &EventId) -> Vec<u8> {
        let mut key = self.0.prefix.clone();
        key.extend_from_slice(&id.to_bytes());
        key
    }

    fn prefix(&self) -> &[u8] {
        &self.0.prefix
    }

    fn event_id(&self, key: &[u8]) -> Option<EventId> {
        let id: [u8; 16] = key.get(self.0.prefix.len()..)?.try_into().ok()?;
        Some(EventId::from_bytes(id))
    }
}

/// Names never contain '/' or NUL (config validates them), so prefixes cannot overlap.
fn queue_prefix(workspace: &WorkspaceId, sink: &SinkName) -> Vec<u8> {
    format!("{workspace}/{sink}\0").into_bytes()
}

/// Held by a sink's delivery worker while it runs: in cluster mode it keeps this instance
/// taking its share of the sink's shared queue, and dropping it hands that share back.
pub struct Consumer {
    _feed: Option<cluster::Feed>,
}

/// The store the server runs on.
pub enum Store {
    Embedded(Arc<EmbeddedStore>),
    Cluster(Box<ClusterStore>),
}

macro_rules! both {
    ($self:ident, $store:ident => $body:expr) => {
        match $self {
            Store::Embedded($store) => $body,
            Store::Cluster($store) => $body,
        }
    };
}

impl Store {
    /// Opens (or creates) the embedded store in `dir`.
    pub fn open_embedded(
        dir: &Path,
        options: &StoreOptions,
        metrics: StoreMetrics,
    ) -> Result<Arc<Store>, StoreError> {
        EmbeddedStore::open(dir, options, metrics).map(|s| Arc::new(Store::Embedded(s)))
    }

    /// Connects to NATS JetStream and creates what the cluster store needs there, if absent.
    pub async fn open_cluster(
        options: &ClusterOptions,
        metrics: StoreMetrics,
    ) -> Result<Arc<Store>, StoreError> {
        let cluster = ClusterStore::open(options, metrics).await?;
        let store = Arc::new(Store::Cluster(Box::new(cluster)));
        ClusterStore::start_refresh(&store);
        Ok(store)
    }

    /// The queue of one sink, with its counters.
    pub fn queue(&self, workspace: &WorkspaceId, sink: &SinkName) -> SinkQueue {
        both!(self, s => s.queue(workspace, sink))
    }

    /// Starts taking this instance's share of a sink's queue, for its delivery worker.
    pub fn consume(&self, queue: &SinkQueue, ordered: bool) -> Consumer {
        Consumer {
            _feed: match self {
                Store::Embedded(_) => None,
                Store::Cluster(s) => Some(s.consume(queue, ordered)),
            },
        }
    }

    /// Every queue the store knows: those of running sinks, and those left by sinks the
    /// configuration no longer has (orphans, kept until a sink of that name returns).
    pub fn known_queues(&self) -> Vec<SinkQueue> {
        both!(self, s => s.known_queues())
    }

    /// The known queue of one workspace's sink, running or orphaned.
    pub fn known_queue(&self, workspace: &str, sink: &str) -> Option<SinkQueue> {
        self.known_queues()
            .into_iter()
            .find(|q| q.workspace().as_str() == workspace && q.sink().as_str() == sink)
    }

    /// Keeps a verified event for its sinks, unless its dedupe key is already claimed; answers
    /// once it is durable, and wakes its sinks' workers.
    pub async fn accept(&self, accept: Accept) -> Result<Accepted, StoreError> {
        both!(self, s => s.accept(accept).await)
    }

    /// True while the store takes writes.
    pub fn is_healthy(&self) -> bool {
        both!(self, s => s.is_healthy())
    }

    /// Makes every write so far durable, for records that do not go through the commit path
    /// (a failed attempt's retry time, a dead letter).
    pub async fn sync(&self) -> Result<(), StoreError> {
        match self {
            Store::Embedded(s) => s.sync().await,
            // Every cluster write is acknowledged by JetStream before it returns.
            Store::Cluster(_) => Ok(()),
        }
    }

    /// A kept event's envelope.
    pub async fn event(&self, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Embedded(s) => s.event(id),
            Store::Cluster(s) => s.event(id).await,
        }
    }

    /// Bytes the store occupies (on disk, or in JetStream's streams).
    pub fn size_on_disk(&self) -> u64 {
        both!(self, s => s.size_on_disk())
    }

    /// A clean shutdown.
    pub fn close(&self) {
        if let Store::Embedded(s) = self {
            s.close();
        }
    }

    /// The embedded store, for what only it does (sweeps, backups); cluster mode leaves those
    /// to JetStream (bucket and stream limits, `nats stream backup`).
    pub fn embedded(&self) -> Option<&EmbeddedStore> {
        match self {
            Store::Embedded(s) => Some(s),
            Store::Cluster(_) => None,
        }
    }

    /// A consistent copy of the embedded store in `to`; returns how many events it holds.
    /// Blocking: run it off the async threads.
    pub fn backup(&self, to: &Path) -> Result<usize, StoreError> {
        match self {
            Store::Embedded(s) => s.backup(to),
            Store::Cluster(_) => Err(StoreError::Unsupported(
                "cluster mode keeps everything in NATS JetStream: back it up there (`nats stream backup` for each SWITCHYARD_ stream and KV_SWITCHYARD_ bucket)",
            )),
        }
    }

    /// Counts and logs a stored record that could not be read.
    pub fn unreadable(&self, what: &str, error: &dyn std::fmt::Display) {
        both!(self, s => s.unreadable(what, error))
    }

    /// Up to `limit` entries a sink still owes, oldest first, from `from` (inclusive) on.
    pub fn peek_from(
        &self,
        q: &SinkQueue,
        from: Option<&EventId>,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        both!(self, s => s.peek_from(q, from, limit))
    }

    /// How long the oldest event the sink still owes has waited; zero for an empty queue.
    pub fn oldest_queued_age(&self, q: &SinkQueue) -> Duration {
        match self {
            Store::Embedded(s) => s.oldest_queued_age(q),
            Store::Cluster(_) => {
                let oldest = q.0.oldest_ms.load(Ordering::Relaxed);
                let now = crate::base::id::millis(std::time::SystemTime::now());
                Duration::from_millis(if oldest == 0 {
                    0
                } else {
                    now.saturating_sub(oldest)
                })
            }
        }
    }

    /// One queued entry, if the sink still owes it.
    pub fn queued(&self, q: &SinkQueue, id: &EventId) -> Result<Option<Queued>, StoreError> {
        both!(self, s => s.queued(q, id))
    }

    /// A queued event's envelope for delivery; `None` when its record is missing or unreadable
    /// (damage): the worker dead-letters it with that reason rather than stall its queue.
    pub fn envelope_of(&self, q: &SinkQueue, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Embedded(s) => s.envelope_of(id),
            Store::Cluster(s) => Ok(s.envelope_of(q, id)),
        }
    }

    /// Records a failed attempt's new delivery state, so retries resume after a restart.
    pub async fn set_attempts(
        &self,
        q: &SinkQueue,
        id: &EventId,
        state: &[u8],
    ) -> Result<(), StoreError> {
        match self {
            Store::Embedded(s) => s.set_attempts(q, id, state),
            Store::Cluster(s) => s.set_attempts(q, id, state).await,
        }
    }

    /// Deliveries finished: their entries leave the queue and their records are kept for
    /// lookup.
    pub async fn complete(
        &self,
        q: &SinkQueue,
        done: &[(EventId, Vec<u8>)],
    ) -> Result<(), StoreError> {
        match self {
            Store::Embedded(s) => s.complete(q, done),
            Store::Cluster(s) => s.complete(q, done).await,
        }
    }

    /// A delivery gave up: the entry moves from the queue to the dead letters.
    pub async fn bury(
        &self,
        q: &SinkQueue,
        id: &EventId,
        dead_letter: &[u8],
    ) -> Result<(), StoreError> {
        match self {
            Store::Embedded(s) => s.bury(q, id, dead_letter),
            Store::Cluster(s) => s.bury(q, id, dead_letter).await,
        }
    }

    /// A page of a sink's dead letters, oldest first, starting after `after`.
    pub async fn dead_letters(
        &self,
        q: &SinkQueue,
        after: Option<&EventId>,
        limit: usize,
    ) -> Result<DeadPage, StoreError> {
        match self {
            Store::Embedded(s) => s.dead_letters(q, after, limit),
            Store::Cluster(s) => s.dead_letters(q, after, limit).await,
        }
    }

    /// One dead letter of a sink.
    pub async fn dead_letter(
        &self,
        q: &SinkQueue,
        id: &EventId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Embedded(s) => s.dead_letter(q, id),
            Store::Cluster(s) => s.dead_letter(q, id).await,
        }
    }

    /// Puts a dead letter back on its sink's queue with a fresh delivery state. The dedupe
    /// index is not consulted: a replay is deliberate.
    pub async fn requeue(&self, q: &SinkQueue, id: &EventId) -> Result<bool, StoreError> {
        match self {
            Store::Embedded(s) => s.requeue(q, id),
            Store::Cluster(s) => s.requeue(q, id).await,
        }
    }

    /// Deletes a dead letter for good.
    pub async fn delete_dead_letter(
        &self,
        q: &SinkQueue,
        id: &EventId,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Embedded(s) => s.delete_dead_letter(q, id),
            Store::Cluster(s) => s.delete_dead_letter(q, id).await,
        }
    }

    /// Where one event stands with one sink: queued (with its state), dead, or delivered.
    pub async fn delivery_of(&self, q: &SinkQueue, id: &EventId) -> Result<DeliveryOf, StoreError> {
        match self {
            Store::Embedded(s) => s.delivery_of(q, id),
            Store::Cluster(s) => s.delivery_of(q, id).await,
        }
    }

    /// Drops an orphaned queue (its sink no longer configured): its entries go, its dead
    /// letters stay. Returns how many entries went.
    pub async fn drop_queue(&self, q: &SinkQueue) -> Result<u64, StoreError> {
        match self {
            Store::Embedded(s) => s.drop_queue(q),
            Store::Cluster(s) => s.drop_queue(q).await,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
