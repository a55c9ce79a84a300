//! The sled database behind the embedded store: its trees, how it is opened and checked, and
//! how it is healed in place after a disk error.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sled::Tree;

use super::claims::{Claims, NewClaim};
use super::record::{Claim, STORE_FORMAT};
use super::replay;
use crate::base::durable;
use crate::store::{lock, StoreError};

/// The sled database behind the store. A disk error (full, too large, I/O) poisons a sled
/// database for good, so the store reopens it in place once the cause is gone: the
/// write-ahead log holds everything accepted since the last checkpoint, and is replayed into
/// the reopened database.
pub(super) struct Engine {
    pub(super) dir: PathBuf,
    pub(super) cache_bytes: u64,
    /// `None` while it is being reopened.
    pub(super) trees: std::sync::RwLock<Option<Trees>>,
    /// A logged batch could not be applied: the checkpoint must not move past it until the
    /// log has been replayed.
    pub(super) stuck: AtomicBool,
    /// Held by a heal from start to end and by a checkpoint from its check to its write: a
    /// checkpoint must never cover a replay still running into reopened trees.
    pub(super) exclusive: Mutex<()>,
}

impl Engine {
    pub(super) fn new(dir: &Path, cache_bytes: u64, trees: Trees) -> Engine {
        Engine {
            dir: dir.to_owned(),
            cache_bytes,
            trees: std::sync::RwLock::new(Some(trees)),
            stuck: AtomicBool::new(false),
            exclusive: Mutex::new(()),
        }
    }

    pub(super) fn trees(&self) -> Result<Trees, StoreError> {
        self.trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Write("the store is reopening after a disk error".into()))
    }

    pub(super) fn set_stuck(&self) {
        self.stuck.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_stuck(&self) -> bool {
        self.stuck.load(Ordering::Relaxed)
    }

    /// Brings the store back after a failure: reopens sled if a disk error poisoned it, then
    /// replays the log past the checkpoint (what failed to apply is in it). The queues are
    /// in the log and in memory: they carry on as they were.
    pub(super) fn heal(&self) -> Result<(), StoreError> {
        let _exclusive = lock(&self.exclusive);
        let poisoned = match self.trees() {
            Ok(trees) => trees.sync(&self.dir).is_err(),
            Err(_) => true,
        };
        if poisoned {
            // Every handle must be gone before sled's directory lock is free again.
            *self.trees.write().unwrap_or_else(|p| p.into_inner()) = None;
            let mut attempts = 0;
            let trees = loop {
                match open_trees(&self.dir, self.cache_bytes) {
                    Ok(trees) => break trees,
                    Err(error) if attempts < 100 => {
                        attempts += 1;
                        tracing::debug!(%error, "store not reopened yet");
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            *self.trees.write().unwrap_or_else(|p| p.into_inner()) = Some(trees);
            tracing::warn!(dir = %self.dir.display(), "store reopened after a disk error");
        }
        let trees = self.trees()?;
        replay::recover(&trees, &self.dir.join("wal"))
            .map_err(|e| StoreError::Write(format!("replaying the log: {e}")))?;
        // Healed only once what was replayed is on disk: sled's inserts land in memory
        // first, so without this a disk that is still full would pass for a healed one.
        trees
            .sync(&self.dir)
            .map_err(|e| StoreError::Sync(e.to_string()))?;
        self.stuck.store(false, Ordering::Relaxed);
        Ok(())
    }
}

/// Hands what sled retired on this thread to the shared collector when dropped. sled frees a
/// replaced page, or an IO buffer it has written (512 KiB each), through crossbeam-epoch,
/// which keeps them in a bag per thread until 64 have piled up: up to 32 MiB per thread that
/// writes to sled, let go in bulk, or when the thread ends. Held across each batch a thread
/// writes, so that memory is freed as soon as no reader can still see it.
pub(super) struct FreeRetired;

impl Drop for FreeRetired {
    fn drop(&mut self) {
        crossbeam_epoch::pin().flush();
    }
}

pub(super) fn open_trees(dir: &Path, cache_bytes: u64) -> Result<Trees, sled::Error> {
    // The write-ahead log is the durability point; sled's own periodic flush only keeps
    // the replay after a crash short. `cache_bytes` bounds sled's page caches (sled's own
    // default is 1 GiB): half for each of the (usually two) current claim generations, a
    // quarter for the rest, which is written only for events that fail and for cursors.
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes / 4)
        .flush_every_ms(Some(500))
        .open()?;
    Ok(Trees {
        claims: Arc::new(Claims::open(&dir.join("claims"), cache_bytes / 2)?),
        events: db.open_tree("events")?,
        cursors: db.open_tree("cursors")?,
        attempts: db.open_tree("attempts")?,
        dead: db.open_tree("dead")?,
        delivered: db.open_tree("delivered")?,
        db,
    })
}

#[derive(Clone)]
pub(super) struct Trees {
    pub(super) db: sled::Db,
    pub(super) claims: Arc<Claims>,
    pub(super) events: Tree,
    pub(super) cursors: Tree,
    pub(super) attempts: Tree,
    pub(super) dead: Tree,
    pub(super) delivered: Tree,
}

impl Trees {
    /// Makes everything in sled durable: the trees, then the claims' generations.
    pub(super) fn sync(&self, dir: &Path) -> std::io::Result<()> {
        sync_sled(&self.db, dir)?;
        self.claims.sync()
    }
}

/// sled's flush ends in sync_file_range, which neither empties the disk's write cache nor
/// syncs metadata; an fsync of its log file (fsync acts on the file, not the descriptor)
/// makes what it wrote survive a power loss too. sled never syncs its `conf` (written once)
/// nor its blob files (values too large for its log), and renames its snapshots in the
/// directory without syncing it: all synced here, the directory last, so every name a
/// checkpoint relies on is durable before the checkpoint is written.
pub(super) fn sync_sled(db: &sled::Db, dir: &Path) -> std::io::Result<()> {
    let _free = FreeRetired;
    db.flush().map_err(std::io::Error::other)?;
    File::open(dir.join("db"))?.sync_data()?;
    File::open(dir.join("conf"))?.sync_all()?;
    let blobs = dir.join("blobs");
    match std::fs::read_dir(&blobs) {
        Ok(entries) => {
            for entry in entries {
                File::open(entry?.path())?.sync_all()?;
            }
            durable::sync_dir(&blobs)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    durable::sync_dir(dir)
}

/// A store from before format versions held envelopes in its queues, and one of format 1
/// kept a queue entry per event in sled: refuse either rather than misread it.
pub(super) fn check_format(dir: &Path, db: &sled::Db, trees: &Trees) -> Result<(), StoreError> {
    let meta = db.open_tree("meta").map_err(|source| StoreError::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    match meta.get("format")? {
        Some(v) if v.as_ref() == [STORE_FORMAT] => Ok(()),
        // Version 2 kept the event index in sled's `events` tree. Its entries stay there and
        // are read as before until retention sweeps them; new events are indexed beside
        // the log. Versions 2 and 3 compressed envelopes without a dictionary: those are read
        // as they are; and kept claims in the `dedupe` tree, moved into a generation. Recorded
        // as 4 so that an older release, which could not read the new envelopes, refuses the
        // directory.
        Some(v) if v.as_ref() == [2] || v.as_ref() == [3] => {
            let moved = take_up_claims(dir, db, trees)?;
            if moved > 0 {
                tracing::info!(
                    claims = moved,
                    "dedupe claims moved into a claim generation"
                );
            }
            meta.insert("format", &[STORE_FORMAT])?;
            Ok(())
        }
        Some(v) => Err(StoreError::Version {
            path: dir.to_path_buf(),
            found: v.first().copied().unwrap_or(0),
        }),
        None if !trees.events.is_empty() => Err(StoreError::Unversioned {
            path: dir.to_path_buf(),
        }),
        None => {
            meta.insert("format", &[STORE_FORMAT])?;
            Ok(())
        }
    }
}

/// Moves the claims still live of the `dedupe` tree (store formats 2 and 3) into the claim
/// generations, makes them durable, then drops it and its `dedupe_expiry` entries; returns
/// how many. A crash part way leaves the old trees, and the next start moves them again.
fn take_up_claims(dir: &Path, db: &sled::Db, trees: &Trees) -> Result<usize, StoreError> {
    let names = db.tree_names();
    let has = |name: &[u8]| names.iter().any(|n| n.as_ref() == name);
    if !has(b"dedupe") {
        return Ok(0);
    }
    let now_ms = crate::base::id::millis(std::time::SystemTime::now());
    let old = db.open_tree("dedupe")?;
    let mut moved = 0;
    let mut batch: Vec<(sled::IVec, Claim)> = Vec::new();
    let mut entries = old.iter();
    loop {
        let entry = entries.next().transpose()?;
        if let Some((key, value)) = entry.as_ref() {
            match Claim::decode(value) {
                Ok(claim) if claim.expires_at_ms > now_ms => batch.push((key.clone(), claim)),
                // Ended, or unreadable: it would claim nothing any more.
                _ => {}
            }
        }
        if batch.len() >= 4096 || (entry.is_none() && !batch.is_empty()) {
            let claims: Vec<NewClaim<'_>> = (batch.iter())
                .map(|(key, claim)| NewClaim {
                    key,
                    accepted_ms: claim.event_id.timestamp_ms(),
                    claim: claim.clone(),
                })
                .collect();
            trees.claims.record(&claims, true)?;
            moved += claims.len();
            batch.clear();
        }
        if entry.is_none() {
            break;
        }
    }
    trees
        .sync(dir)
        .map_err(|e| StoreError::Sync(e.to_string()))?;
    db.drop_tree("dedupe")?;
    if has(b"dedupe_expiry") {
        db.drop_tree("dedupe_expiry")?;
    }
    Ok(moved)
}
