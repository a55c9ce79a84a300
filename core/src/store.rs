//! The embedded sled store: the dedupe index, per-sink delivery queues and recent events, and
//! the group commit that makes an accept durable before it is answered.
//!
//! Trees:
//! - `dedupe`, `dedupe_expiry`: see [`crate::dedupe`].
//! - `events`: event id (16 bytes, time-ordered) -> envelope JSON; recent events for lookup.
//! - `queue`: `{workspace}/{sink}\0` + event id -> envelope JSON; what each sink still owes.
//! - `attempts`: queue key -> the delivery state of a queued event (see [`crate::deliver`]).
//! - `dead`: queue key -> a dead letter: the envelope with every attempt's outcome.
//! - `delivered`: event id + `{workspace}/{sink}\0` -> the record of a completed delivery.
//!
//! The store keeps bytes; what a delivery record says is [`crate::deliver`]'s business.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional, Tree};
use tokio::sync::{mpsc, oneshot};

use crate::dedupe::{self, Claim, DedupeKey, FirstSeen};
use crate::envelope::EventId;
use crate::names::{SinkName, WorkspaceId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store in {}: {source}", path.display())]
    Open { path: PathBuf, source: sled::Error },
    #[error("the store cannot take writes: {0}")]
    Write(String),
    #[error("the store could not flush to disk: {0}")]
    Flush(String),
}

/// One sink's queue: the key prefix its entries share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkQueue {
    prefix: Vec<u8>,
}

impl SinkQueue {
    pub fn new(workspace: &WorkspaceId, sink: &SinkName) -> SinkQueue {
        // Names never contain '/' or NUL (config validates them), so prefixes cannot overlap.
        let prefix = format!("{workspace}/{sink}\0").into_bytes();
        SinkQueue { prefix }
    }

    fn key(&self, id: &EventId) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(&id.to_bytes());
        key
    }

    /// The event id a queue key names.
    pub fn event_id(&self, key: &[u8]) -> Option<EventId> {
        let id: [u8; 16] = key.get(self.prefix.len()..)?.try_into().ok()?;
        Some(EventId::from_bytes(id))
    }
}

/// A verified, new event to keep.
pub struct Accept<'a> {
    pub key: &'a DedupeKey,
    pub claim: Claim,
    pub envelope: &'a [u8],
    pub queues: &'a [SinkQueue],
    pub now: SystemTime,
}

type FlushWaiter = oneshot::Sender<Result<(), String>>;

pub struct Store {
    db: sled::Db,
    dedupe: Tree,
    dedupe_expiry: Tree,
    events: Tree,
    queue: Tree,
    attempts: Tree,
    dead: Tree,
    delivered: Tree,
    flusher: mpsc::UnboundedSender<FlushWaiter>,
    healthy: Arc<AtomicBool>,
}

impl Store {
    /// Opens (or creates) the store in `dir` and starts its flusher; needs a Tokio runtime.
    /// `flushes` counts group commits.
    pub fn open(dir: &Path, flushes: Counter) -> Result<Arc<Store>, StoreError> {
        let open_error = |source| StoreError::Open {
            path: dir.to_path_buf(),
            source,
        };
        // Acks are made durable by an explicit flush (commit) before the answer; sled's own
        // periodic flush only narrows what a crash can undo of work nobody waits for, such as
        // dequeues (each one undone is one more delivery).
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(500))
            .open()
            .map_err(open_error)?;
        let tree = |name: &str| db.open_tree(name).map_err(open_error);
        // sled's flush ends in sync_file_range, which neither empties the disk's write cache nor
        // syncs metadata; an fsync of its log file (through our own descriptor: fsync acts on
        // the file, not the descriptor) makes a commit survive a power loss too.
        let log = std::fs::File::open(dir.join("db")).map_err(|e| StoreError::Open {
            path: dir.to_path_buf(),
            source: sled::Error::Io(e),
        })?;
        let healthy = Arc::new(AtomicBool::new(true));
        Ok(Arc::new(Store {
            dedupe: tree("dedupe")?,
            dedupe_expiry: tree("dedupe_expiry")?,
            events: tree("events")?,
            queue: tree("queue")?,
            attempts: tree("attempts")?,
            dead: tree("dead")?,
            delivered: tree("delivered")?,
            flusher: spawn_flusher(db.clone(), log, healthy.clone(), flushes),
            db,
            healthy,
        }))
    }

    /// Atomically: claims the dedupe key if it is free (or expired), and if so keeps the event
    /// and enqueues it for every sink. Two concurrent copies of one event cannot both be new.
    /// Not durable until [`Store::commit`].
    pub fn accept(&self, a: Accept<'_>) -> Result<FirstSeen, StoreError> {
        let id = a.claim.event_id.clone();
        let result = (&self.dedupe, &self.dedupe_expiry, &self.events, &self.queue).transaction(
            |(dedupe, expiry, events, queue)| -> Result<FirstSeen, ConflictableTransactionError> {
                let existing = dedupe.get(a.key.as_bytes())?;
                if let FirstSeen::Duplicate(first) = Claim::decide(existing.as_deref(), a.now) {
                    return Ok(FirstSeen::Duplicate(first));
                }
                if let Some(old) = existing.as_deref().and_then(Claim::decode) {
                    expiry.remove(old.expiry_key(a.key))?;
                }
                dedupe.insert(a.key.as_bytes(), a.claim.encode())?;
                expiry.insert(a.claim.expiry_key(a.key), &[])?;
                events.insert(&id.to_bytes(), a.envelope)?;
                for q in a.queues {
                    queue.insert(q.key(&id), a.envelope)?;
                }
                Ok(FirstSeen::New)
            },
        );
        result.map_err(|e| match e {
            TransactionError::Abort(e) | TransactionError::Storage(e) => {
                self.healthy.store(false, Ordering::Relaxed);
                StoreError::Write(e.to_string())
            }
        })
    }

    /// Waits until everything written before this call is on disk. Concurrent callers share
    /// one flush (group commit).
    pub async fn commit(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.flusher
            .send(tx)
            .map_err(|_| StoreError::Flush("the flusher has stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Flush(e)),
            Err(_) => Err(StoreError::Flush("the flusher has stopped".into())),
        }
    }

    /// True while the last write and flush succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Up to `limit` of the oldest entries a sink still owes: (queue key, envelope).
    pub fn queue_peek(&self, q: &SinkQueue, limit: usize) -> Result<Vec<(IVec, IVec)>, StoreError> {
        self.queue
            .scan_prefix(&q.prefix)
            .take(limit)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Write(e.to_string()))
    }

    pub fn queue_depth(&self, q: &SinkQueue) -> usize {
        self.queue.scan_prefix(&q.prefix).count()
    }

    /// The delivery state recorded for a queued entry, if it has been tried.
    pub fn attempts(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        self.attempts.get(key).map_err(write_error)
    }

    /// Records a failed attempt's new delivery state, so retries resume after a restart.
    pub fn set_attempts(&self, key: &[u8], state: &[u8]) -> Result<(), StoreError> {
        self.attempts
            .insert(key, state)
            .map(drop)
            .map_err(write_error)
    }

    /// Deliveries finished: their entries leave the queue and their records are kept for
    /// lookup, all in one transaction.
    pub fn complete(&self, q: &SinkQueue, done: &[(IVec, Vec<u8>)]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        (&self.queue, &self.attempts, &self.delivered)
            .transaction(|(queue, attempts, delivered)| {
                for (key, record) in done {
                    let Some(id) = q.event_id(key) else { continue };
                    let mut delivered_key = id.to_bytes().to_vec();
                    delivered_key.extend_from_slice(&q.prefix);
                    queue.remove(key)?;
                    attempts.remove(key)?;
                    delivered.insert(delivered_key.as_slice(), record.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError>(())
            })
            .map_err(transaction_error)
    }

    /// A delivery gave up: the entry moves from the queue to the dead letters.
    pub fn bury(&self, key: &[u8], dead_letter: &[u8]) -> Result<(), StoreError> {
        (&self.queue, &self.attempts, &self.dead)
            .transaction(|(queue, attempts, dead)| {
                queue.remove(key)?;
                attempts.remove(key)?;
                dead.insert(key, dead_letter)?;
                Ok::<_, ConflictableTransactionError>(())
            })
            .map_err(transaction_error)
    }

    /// A sink's dead letters, oldest first: (key, dead letter).
    pub fn dead_letters(&self, q: &SinkQueue) -> Result<Vec<(IVec, IVec)>, StoreError> {
        self.dead
            .scan_prefix(&q.prefix)
            .collect::<Result<_, _>>()
            .map_err(write_error)
    }

    /// One dead letter of a sink, by event id.
    pub fn dead_letter(&self, q: &SinkQueue, id: &EventId) -> Result<Option<IVec>, StoreError> {
        self.dead.get(q.key(id)).map_err(write_error)
    }

    /// Puts a dead letter back on its sink's queue with a fresh delivery state. The dedupe
    /// index is not consulted: a replay is deliberate.
    pub fn requeue(
        &self,
        q: &SinkQueue,
        id: &EventId,
        envelope: &[u8],
    ) -> Result<bool, StoreError> {
        let key = q.key(id);
        (&self.queue, &self.dead)
            .transaction(|(queue, dead)| {
                if dead.remove(key.as_slice())?.is_none() {
                    return Ok(false);
                }
                queue.insert(key.as_slice(), envelope)?;
                Ok::<_, ConflictableTransactionError>(true)
            })
            .map_err(transaction_error)
    }

    /// Where one event stands with one sink: queued (with its state), dead, or delivered.
    pub fn delivery_of(&self, q: &SinkQueue, id: &EventId) -> Result<DeliveryOf, StoreError> {
        let key = q.key(id);
        if self.queue.contains_key(&key).map_err(write_error)? {
            return Ok(DeliveryOf::Queued(self.attempts(&key)?));
        }
        if let Some(dead) = self.dead.get(&key).map_err(write_error)? {
            return Ok(DeliveryOf::Dead(dead));
        }
        let mut delivered_key = id.to_bytes().to_vec();
        delivered_key.extend_from_slice(&q.prefix);
        Ok(
            match self.delivered.get(delivered_key).map_err(write_error)? {
                Some(record) => DeliveryOf::Delivered(record),
                None => DeliveryOf::Unknown,
            },
        )
    }

    /// A kept event's envelope.
    pub fn event(&self, id: &EventId) -> Result<Option<IVec>, StoreError> {
        self.events
            .get(id.to_bytes())
            .map_err(|e| StoreError::Write(e.to_string()))
    }

    /// Removes dedupe entries whose window ended before `now`; returns how many.
    pub fn sweep_dedupe(&self, now: SystemTime) -> Result<usize, StoreError> {
        let write = |e: sled::Error| StoreError::Write(e.to_string());
        let end = dedupe::millis(now).to_be_bytes();
        let mut removed = 0;
        for entry in self.dedupe_expiry.range(..end.as_slice()) {
            let (expiry_key, _) = entry.map_err(write)?;
            if let Some((at, key)) = dedupe::split_expiry_key(&expiry_key) {
                if let Some(current) = self.dedupe.get(key).map_err(write)? {
                    // Only the claim this expiry entry was written for; a reclaim has its own.
                    if Claim::decode(&current).is_some_and(|c| c.expires_at_ms == at) {
                        let _ = self
                            .dedupe
                            .compare_and_swap(key, Some(current), None::<&[u8]>)
                            .map_err(write)?;
                        removed += 1;
                    }
                }
            }
            self.dedupe_expiry.remove(&expiry_key).map_err(write)?;
        }
        Ok(removed)
    }

    /// Removes kept events and delivery records older than `retention`; both are keyed by the
    /// time-ordered event id first. Queued deliveries and dead letters hold their own copy.
    pub fn sweep_events(&self, retention: Duration, now: SystemTime) -> Result<usize, StoreError> {
        let cutoff_ms = dedupe::millis(now).saturating_sub(retention.as_millis() as u64);
        let end = ulid::Ulid::from_parts(cutoff_ms, 0).to_bytes();
        let mut removed = 0;
        for tree in [&self.events, &self.delivered] {
            for entry in tree.range(..end.as_slice()) {
                let (key, _) = entry.map_err(write_error)?;
                tree.remove(key).map_err(write_error)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Where one event stands with one sink; the bytes are [`crate::deliver`]'s records.
pub enum DeliveryOf {
    Queued(Option<IVec>),
    Dead(IVec),
    Delivered(IVec),
    /// Not routed to this sink, or its record is past retention.
    Unknown,
}

fn write_error(e: sled::Error) -> StoreError {
    StoreError::Write(e.to_string())
}

fn transaction_error(e: TransactionError) -> StoreError {
    match e {
        TransactionError::Abort(e) | TransactionError::Storage(e) => write_error(e),
    }
}

fn spawn_flusher(
    db: sled::Db,
    log: std::fs::File,
    healthy: Arc<AtomicBool>,
    flushes: Counter,
) -> mpsc::UnboundedSender<FlushWaiter> {
    let (tx, mut rx) = mpsc::unbounded_channel::<FlushWaiter>();
    let log = Arc::new(log);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Everyone already waiting wrote before this flush starts, so it covers them all;
            // later arrivals wait for the next one.
            let mut waiters = vec![first];
            while let Ok(w) = rx.try_recv() {
                waiters.push(w);
            }
            let result = match db.flush_async().await {
                Ok(_) => {
                    let log = log.clone();
                    match tokio::task::spawn_blocking(move || log.sync_data()).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("fsync failed: {e}")),
                        Err(e) => Err(format!("fsync task failed: {e}")),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            healthy.store(result.is_ok(), Ordering::Relaxed);
            flushes.inc();
            for w in waiters {
                let _ = w.send(result.clone());
            }
        }
    });
    tx
}
