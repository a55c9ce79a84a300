//! The store boundary: everything the ingest path and the delivery workers keep, behind one
//! [`Store`] whose methods say what happens (accept an event, read a sink's queue, complete,
//! bury, replay). Two stores stand behind it, and nothing outside this module knows which one
//! runs:
//! - [`embedded`] (the default): a write-ahead log and sled in `data_dir`, one process.
//! - [`cluster`] (`server.store.type: nats`): NATS JetStream, shared by any number of
//!   instances: dedupe claims in a key-value bucket, queues as durable consumers.

pub mod cluster;
pub mod codec;
pub mod embedded;
mod queue;
pub mod search;
mod types;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};

pub use cluster::ClusterStore;
pub use codec::RecordError;
pub use embedded::EmbeddedStore;
use queue::queue_prefix;
pub use queue::SinkQueue;
pub use types::{
    Accept, Accepted, DeadPage, DeliveryOf, NatsStoreConfig, Queued, Replayed, StoreConfig,
    StoreError, StoreMetrics, StoreOptions, Window,
};

/// The most sink queues one event can be kept for: the log frame and the event record count
/// them in one byte. The configuration refuses routes that could send an event to more.
pub const MAX_QUEUES_PER_EVENT: usize = u8::MAX as usize;

/// Held by a sink's delivery worker while it runs: in cluster mode it keeps this instance
/// taking its share of the sink's shared queue, and dropping it hands that share back.
pub struct Consumer {
    _feed: Option<cluster::Feed>,
}

/// The store the server runs on.
pub enum Store {
    Embedded(Arc<EmbeddedStore>),
    Cluster(Arc<ClusterStore>),
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
    /// Opens the store `config` names: embedded in `dir`, or the cluster's on NATS.
    pub async fn open(
        config: &StoreConfig,
        dir: &Path,
        options: &StoreOptions,
        metrics: StoreMetrics,
    ) -> Result<Arc<Store>, StoreError> {
        match config {
            StoreConfig::Embedded => Store::open_embedded(dir, options, metrics),
            StoreConfig::Nats(nats) => Store::open_cluster(nats, options.retention, metrics).await,
        }
    }

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
        config: &NatsStoreConfig,
        retention: Duration,
        metrics: StoreMetrics,
    ) -> Result<Arc<Store>, StoreError> {
        let cluster = Arc::new(ClusterStore::open(config, retention, metrics).await?);
        ClusterStore::start_refresh(&cluster);
        Ok(Arc::new(Store::Cluster(cluster)))
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

    /// Forgets a queue whose sink is gone and that holds nothing any more (an orphan emptied
    /// by the operator), so that it is no longer listed.
    pub fn forget_queue(&self, q: &SinkQueue) {
        both!(self, s => s.forget_queue(q))
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

    /// Events that answer a search, newest first. Only the embedded store keeps a search
    /// index; it reads sled and the lanes, so callers run it off the async threads.
    pub fn search(&self, query: &search::SearchQuery) -> Result<search::SearchPage, StoreError> {
        match self {
            Store::Embedded(s) => s.search(query),
            Store::Cluster(_) => Err(StoreError::Unsupported(
                "event search needs the embedded store: cluster mode (server.store.type: nats) keeps no search index",
            )),
        }
    }

    /// Puts every event accepted in `window` that went to `q` back on it, with `state` as its
    /// delivery state, durable at the next [`Store::sync`]. Embedded store only.
    pub fn replay_window(
        &self,
        q: &SinkQueue,
        window: &Window,
        state: &[u8],
    ) -> Result<Replayed, StoreError> {
        match self {
            Store::Embedded(s) => s.replay_window(q, window, state),
            Store::Cluster(_) => Err(StoreError::Unsupported(
                "replaying a window needs the embedded store: cluster mode (server.store.type: nats) keeps no event index",
            )),
        }
    }

    /// A kept event's envelope; any event accepted before the call is found.
    pub async fn event(&self, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Embedded(s) => {
                let (s, id) = (s.clone(), id.clone());
                blocking(move || s.event(&id)).await
            }
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
            Store::Embedded(s) => s.envelope_of(q, id),
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

    /// Puts a dead letter back on its sink's queue with `state` as its delivery state (the
    /// attempts so far, so a replay keeps the event's history). The dedupe index is not
    /// consulted: a replay is deliberate.
    pub async fn requeue(
        &self,
        q: &SinkQueue,
        id: &EventId,
        state: &[u8],
    ) -> Result<bool, StoreError> {
        match self {
            Store::Embedded(s) => s.requeue(q, id, state),
            Store::Cluster(s) => s.requeue(q, id, state).await,
        }
    }

    /// Puts one event back on one sink's queue by id, whatever became of it there (delivered,
    /// dead, waiting for a retry), with `state` as its delivery state: the operator's "deliver
    /// again". An event still queued is left as it is. False when the event was not routed to
    /// that sink or its envelope is past retention. Durable at the next [`Store::sync`].
    pub async fn put_back(
        &self,
        q: &SinkQueue,
        id: &EventId,
        state: &[u8],
    ) -> Result<bool, StoreError> {
        match self {
            Store::Embedded(s) => {
                let (s, q, id, state) = (s.clone(), q.clone(), id.clone(), state.to_vec());
                blocking(move || s.put_back(&q, &id, &state)).await
            }
            Store::Cluster(s) => s.put_back(q, id, state).await,
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

/// Runs an embedded store's lookup off the async threads: a miss may wait for its index.
async fn blocking<T: Send + 'static>(
    lookup: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(lookup)
        .await
        .unwrap_or_else(|e| Err(StoreError::Write(format!("the lookup task failed: {e}"))))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
