//! The embedded store, the default: one process, nothing else to run. A write-ahead log
//! ([`wal`]) makes each accepted batch durable with one write and one sync, and is also every
//! sink's queue: each sink reads it forward from its cursor ([`lanes`]). Beside each log
//! segment, a file indexes its events for lookups and search ([`index`]), and goes with it.
//! sled holds the dedupe claims, in generations that are deleted whole ([`claims`]), and
//! per-event records only for events that failed.
//!
//! `claims/<start>/`: a sled database per claim generation, its `claims` tree dedupe key ->
//! claim (expiry, first event id), its `meta` tree the generation's window and latest end.
//! Stores of formats 2 and 3 kept claims in a `dedupe` tree, taken up at open.
//!
//! sled trees of the main database (every value starts with a format version, see
//! [`record`]):
//! - `events`: event id (16 bytes, time-ordered) -> the same entry as the index files (the
//!   queues it went to, where its envelope is, the fields search filters on), only for an
//!   event whose segment was retired while it was still retried or held dead, until
//!   retention (and entries a store of format 2 wrote for every event).
//! - `cursors`: `{workspace}/{sink}\0` -> the queue's cursor, as last logged.
//! - `attempts`: queue key (prefix + event id) -> the delivery state of an event that failed,
//!   with its envelope (see [`crate::deliver`]).
//! - `dead`: queue key -> a dead letter (why, every attempt) with its envelope.
//! - `delivered`: event id + `{workspace}/{sink}\0` -> the record of a delivery that took
//!   more than one attempt.
//! - `meta`: the store's format ([`record::STORE_FORMAT`]).

mod applier;
mod backup;
mod checkpoint;
mod claims;
mod commit;
mod decide;
mod dictionary;
mod engine;
mod frame;
mod gather;
mod index;
mod lanes;
mod queue;
pub mod record;
mod replay;
mod scan;
#[cfg(test)]
mod scenarios;
mod search;
mod sweep;
pub mod verify;
mod wal;
mod window;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;

use super::{
    lock, queue_prefix, Accept, Accepted, SinkQueue, StoreError, StoreMetrics, StoreOptions,
};
use crate::base::durable;
use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};

use self::engine::{check_format, open_trees, sync_sled, Engine, Trees};
use self::index::EventIndex;
use self::lanes::Lanes;
use self::record::{Kept, StoredEvent};
use super::codec::RecordError;

pub struct EmbeddedStore {
    dir: PathBuf,
    engine: Arc<Engine>,
    log: wal::LogReader,
    lanes: Arc<Lanes>,
    committer: commit::Committer,
    /// Whether the last write-ahead log append succeeded (see [`EmbeddedStore::is_healthy`]).
    log_ok: Arc<AtomicBool>,
    queues: Mutex<HashMap<Vec<u8>, SinkQueue>>,
    /// Queue and dead-letter counts found at start-up, for queues not yet asked for.
    found: Mutex<HashMap<Vec<u8>, (u64, u64)>>,
    unreadable: Counter,
    /// Held while log segments are retired, and while a backup copies them.
    retiring: Mutex<()>,
    /// Every event's entry, beside the log.
    index: Arc<EventIndex>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`: replays the write-ahead log past the last
    /// checkpoint into sled, finds every queue in the log from its cursor, and starts the
    /// commit writer.
    pub fn open(
        dir: &Path,
        options: &StoreOptions,
        metrics: StoreMetrics,
    ) -> Result<Arc<EmbeddedStore>, StoreError> {
        let open_error = |source: std::io::Error| StoreError::Open {
            path: dir.to_path_buf(),
            source: source.into(),
        };
        // sled would create the directory without syncing its parent: a power cut could then
        // take the whole store with it.
        durable::create_dirs(dir).map_err(open_error)?;
        let trees = open_trees(dir, options.cache_bytes).map_err(|source| StoreError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        let db = trees.db.clone();
        check_format(dir, &db, &trees)?;
        let wal_dir = dir.join("wal");
        let log_error = |source| StoreError::Log {
            path: wal_dir.clone(),
            source,
        };
        let replayed = replay::recover(&trees, &wal_dir).map_err(log_error)?;
        // The names sled created (`db`, `conf`, `blobs`), `wal/` and the format record: until
        // this sync a power cut can leave an empty directory behind, and a fresh store on it.
        trees.sync(dir).map_err(open_error)?;
        if replayed > 0 {
            tracing::info!(
                batches = replayed,
                "write-ahead log replayed into the store"
            );
        }
        let (lanes, found) = replay::rebuild(&trees, &wal_dir)?;
        let index = Arc::new(EventIndex::open(&wal_dir).map_err(log_error)?);
        // Queues that owe nothing and hold no dead letter are listed only while configured.
        let found: HashMap<Vec<u8>, (u64, u64)> = (found.into_iter())
            .filter(|(_, (depth, dead))| *depth > 0 || *dead > 0)
            .collect();
        let lanes = Arc::new(Lanes::new(lanes));
        drop(db);
        let log_ok = Arc::new(AtomicBool::new(true));
        let engine = Arc::new(Engine::new(dir, options.cache_bytes, trees));
        let segment_age = (options.retention / 4).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(3600),
        );
        let unreadable = metrics.unreadable.clone();
        let committer = commit::Committer::start(
            engine.clone(),
            lanes.clone(),
            &wal_dir,
            segment_age,
            log_ok.clone(),
            index.clone(),
            metrics,
        )
        .map_err(log_error)?;
        let store = Arc::new(EmbeddedStore {
            dir: dir.to_owned(),
            log: wal::LogReader::new(&wal_dir),
            lanes,
            engine,
            committer,
            log_ok,
            queues: Mutex::default(),
            found: Mutex::new(found),
            unreadable,
            retiring: Mutex::new(()),
            index,
        });
        let weak = Arc::downgrade(&store);
        std::thread::Builder::new()
            .name("switchyard-heal".into())
            .spawn(move || healer(weak))
            .map_err(log_error)?;
        Ok(store)
    }

    /// The queue of one sink, with its counters.
    pub fn queue(&self, workspace: &WorkspaceId, sink: &SinkName) -> SinkQueue {
        let prefix = queue_prefix(workspace, sink);
        let mut queues = lock(&self.queues);
        queues
            .entry(prefix.clone())
            .or_insert_with(|| {
                let (depth, dead) = lock(&self.found).remove(&prefix).unwrap_or_default();
                SinkQueue::new(workspace, sink, depth, dead)
            })
            .clone()
    }

    /// Every queue the store knows: those of running sinks, and those left on disk by sinks
    /// the configuration no longer has (orphans, kept until a sink of that name returns).
    pub fn known_queues(&self) -> Vec<SinkQueue> {
        let found: Vec<Vec<u8>> = lock(&self.found).keys().cloned().collect();
        for prefix in found {
            let names = std::str::from_utf8(&prefix)
                .ok()
                .and_then(|p| p.strip_suffix('\0'))
                .and_then(|p| p.split_once('/'));
            if let Some((workspace, sink)) = names {
                self.queue(&WorkspaceId::new(workspace), &SinkName::new(sink));
            }
        }
        let mut queues: Vec<SinkQueue> = lock(&self.queues).values().cloned().collect();
        queues.sort_by(|a, b| a.prefix().cmp(b.prefix()));
        queues
    }

    pub fn forget_queue(&self, q: &SinkQueue) {
        lock(&self.queues).remove(q.prefix());
    }

    /// Counts and logs a stored record that could not be read.
    pub fn unreadable(&self, what: &str, error: &dyn std::fmt::Display) {
        self.unreadable.inc();
        tracing::error!(%error, "{what} unreadable");
    }

    /// Keeps a verified event for its sinks, unless its dedupe key is already claimed.
    /// Answers once the batch holding it is durable; wakes its sinks' workers itself, so the
    /// event is announced whether or not its client is still there.
    pub async fn accept(&self, accept: Accept) -> Result<Accepted, StoreError> {
        self.committer.accept(accept).await
    }

    /// True while the store takes writes: the last log append succeeded and every logged
    /// batch is applied to sled. Each flag is cleared by the stage that failed and set again
    /// only by that stage succeeding, so readiness cannot flap back on an unrelated success.
    pub fn is_healthy(&self) -> bool {
        self.log_ok.load(Ordering::Relaxed) && !self.engine.is_stuck()
    }

    fn trees(&self) -> Result<Trees, StoreError> {
        self.engine.trees()
    }

    /// Makes every write so far durable (sled's flush, an fsync of its files and directory):
    /// for records that do not go through the write-ahead log, such as a failed attempt's
    /// retry time. The queues' cursors may then pass the events those records settle.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let trees = self.trees()?;
        let dir = self.dir.clone();
        let written = self.lanes.written();
        tokio::task::spawn_blocking(move || trees.sync(&dir))
            .await
            .map_err(|e| StoreError::Sync(format!("the sync task failed: {e}")))?
            .map_err(|e| StoreError::Sync(e.to_string()))?;
        self.lanes.synced_up_to(written);
        for (prefix, _) in self.lanes.all() {
            self.advance(&prefix);
        }
        Ok(())
    }

    /// Waits (at most [`APPLY_WAIT`]) until the index holds every event accepted before the
    /// call: the answer to the vendor waits only for the log, the index is written behind it.
    /// Blocking, and at once unless the applier is behind.
    fn settle(&self) {
        if !self.committer.progress.wait_applied(APPLY_WAIT) {
            tracing::warn!(
                waited_ms = APPLY_WAIT.as_millis() as u64,
                "the event index is behind the log; a lookup may miss an event just accepted"
            );
        }
    }

    /// An event's index entry; a miss waits for the applier first (see
    /// [`EmbeddedStore::settle`]), so an event accepted before the call is found.
    fn indexed(&self, trees: &Trees, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(found) = self.entry(trees, id)? {
            return Ok(Some(found));
        }
        self.settle();
        self.entry(trees, id)
    }

    /// An event's index entry as it stands: beside the log, or carried into sled.
    fn entry(&self, trees: &Trees, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.to_bytes();
        match self.index.get(&id)? {
            Some(found) => Ok(Some(found)),
            None => Ok(trees.events.get(id)?.map(|v| v.to_vec())),
        }
    }

    /// The index entries with ids in `low..high`, newest or oldest first, from the files
    /// beside the log and sled's `events` tree.
    fn entries(
        &self,
        trees: &Trees,
        low: [u8; 16],
        high: Option<[u8; 16]>,
        newest_first: bool,
    ) -> index::Scan {
        let scan = self.index.scan(&low, high.as_ref(), newest_first);
        let rows = match high {
            Some(high) => trees.events.range(low..high),
            None => trees.events.range(low..),
        };
        scan.tree(match newest_first {
            true => Box::new(rows.rev()),
            false => Box::new(rows),
        })
    }

    /// A kept event's envelope: from the log, or, once its segment is retired, from the
    /// attempts or dead letter that still hold it. Any event accepted before the call is
    /// found; blocking (a miss may wait for the index).
    pub fn event(&self, id: &EventId) -> Result<Option<Vec<u8>>, StoreError> {
        let trees = self.trees()?;
        let Some(bytes) = self.indexed(&trees, id)? else {
            return Ok(None);
        };
        let event = StoredEvent::decode(&bytes)?;
        let compressed = match self.log.read(event.span) {
            Ok(compressed) => compressed,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut kept = None;
                for prefix in &event.queues {
                    let mut key = prefix.to_vec();
                    key.extend_from_slice(&id.to_bytes());
                    kept = match trees.dead.get(&key)? {
                        Some(found) => Some(found),
                        None => trees.attempts.get(&key)?,
                    };
                    if kept.is_some() {
                        break;
                    }
                }
                match kept {
                    Some(kept) => Kept::decode(&kept)?.envelope.to_vec(),
                    // Its segment went with retention, between the index sweeps.
                    None => return Ok(None),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(StoreError::Record(RecordError::Damaged))
            }
            Err(e) => {
                return Err(StoreError::Write(format!(
                    "reading an envelope from the log: {e}"
                )))
            }
        };
        Ok(Some(record::decompress(&compressed)?))
    }

    /// Bytes the store occupies on disk (sled, its claim generations and the log).
    pub fn size_on_disk(&self) -> u64 {
        let wal: u64 = std::fs::read_dir(self.dir.join("wal"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        let sled = self.trees().map_or(0, |t| {
            t.db.size_on_disk().unwrap_or(0) + t.claims.size_on_disk()
        });
        sled + wal
    }

    /// Records sled's state as checkpointed, so the next start replays nothing, and seals the
    /// index of the segment being written, so it is not indexed again; called on a clean
    /// shutdown.
    pub fn close(&self) {
        self.committer.flush();
        self.committer.checkpoint_now();
        // Sealed only once the applier has written every frame logged.
        self.settle();
        if let Err(error) = self.index.seal() {
            tracing::warn!(%error, "the event index could not be sealed; the next start indexes the last segment again");
        }
    }
}

/// While the store is failing, tries every [`HEAL_EVERY`] to bring it back (see
/// [`Engine::heal`]); ends with the store.
fn healer(store: std::sync::Weak<EmbeddedStore>) {
    loop {
        std::thread::sleep(HEAL_EVERY);
        let Some(store) = store.upgrade() else { return };
        if !store.log_ok.load(Ordering::Relaxed) {
            store.committer.probe();
        }
        if !store.engine.is_stuck() {
            continue;
        }
        match store.engine.heal() {
            Ok(()) => tracing::info!("the store takes writes again"),
            Err(error) => tracing::warn!(%error, "the store is still failing; trying again"),
        }
    }
}

/// The longest a lookup waits for the index to catch up with the log (see
/// [`EmbeddedStore::settle`]): the applier is at most a few batches behind unless it fails.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often a failing store is tried again.
const HEAL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests;
