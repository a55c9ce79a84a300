//! A consistent copy of a running store: the log (every segment, which is the queues, and its
//! event index), then sled's trees copied into a new database, and each claim generation into
//! one of its own (see [`super::claims`]). sled is copied second so that
//! it holds at least what the log copy's checkpoint covers and every attempt or dead letter
//! written while the log was copied; a start on the copy replays the log over the trees and
//! holds every event accepted before the backup began (a delivery finished meanwhile may be
//! made once more: at least once). Every file of the copy, its directories and the directory
//! holding it are synced before it counts as made.

use std::fs;
use std::path::Path;

use super::{index, lock, sync_sled, wal, EmbeddedStore, StoreError};
use crate::base::durable;

impl EmbeddedStore {
    /// Writes the copy into `to`, which must not exist yet. Returns the events it holds.
    pub fn backup(&self, to: &Path) -> Result<usize, StoreError> {
        // The copy's own failures: the store itself is fine.
        let fail = |what: &str, e: &dyn std::fmt::Display| StoreError::Backup {
            path: to.to_path_buf(),
            reason: format!("{what}: {e}"),
        };
        if to.exists() {
            return Err(StoreError::BackupExists {
                path: to.to_path_buf(),
            });
        }
        // No log segment may be retired while it is copied.
        let _retiring = lock(&self.retiring);
        let wal_dir = self.dir.join("wal");
        let from = wal::read_checkpoint(&wal_dir).map_err(|e| fail("the checkpoint", &e))?;
        // Its parent synced too: a backup that a power cut can take back was never made.
        durable::create_dirs(&to.join("wal")).map_err(|e| fail("creating it", &e))?;

        // Frames appended while this runs are whole or cut at a frame boundary, which a
        // replay recognises as a torn tail.
        let copy_into_wal = |from: &Path| {
            let target = to.join("wal").join(from.file_name().unwrap_or_default());
            fs::copy(from, &target).and_then(|_| fs::File::open(&target)?.sync_all())
        };
        for segment in wal::segments(&wal_dir).map_err(|e| fail("listing the log", &e))? {
            copy_into_wal(&wal::segment_path(&wal_dir, segment))
                .map_err(|e| fail("copying the log", &e))?;
            // Its index too, if there is one: derived from the segment, and written again
            // by the copy's first start when it is not whole, but long to make for a big log.
            let index = index::path(&wal_dir, segment);
            if index.exists() {
                copy_into_wal(&index).map_err(|e| fail("copying the event index", &e))?;
            }
        }

        let trees = self.trees()?;
        let copy = sled::Config::new()
            .path(to)
            .open()
            .map_err(|e| fail("creating its store", &e))?;
        let mut events = self.index.len() as usize;
        for name in trees.db.tree_names() {
            let source = trees.db.open_tree(&name)?;
            let target = copy
                .open_tree(&name)
                .map_err(|e| fail("creating a tree", &e))?;
            for entry in source.iter() {
                let (key, value) = entry?;
                target.insert(key, value).map_err(|e| fail("writing", &e))?;
            }
            if name.as_ref() == b"events" {
                events += source.len();
            }
        }
        sync_sled(&copy, to).map_err(|e| fail("syncing", &e))?;
        drop(copy);
        (trees.claims.copy_into(&to.join("claims")))
            .map_err(|e| fail("copying the dedupe claims", &e))?;

        // Syncs `wal/` as well.
        wal::write_checkpoint(&to.join("wal"), from).map_err(|e| fail("the checkpoint", &e))?;
        durable::sync_dir(to)
            .and_then(|()| durable::sync_dir(durable::parent(to)))
            .map_err(|e| fail("syncing", &e))?;
        tracing::info!(to = %to.display(), events, "store backed up");
        Ok(events)
    }
}
