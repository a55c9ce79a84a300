//! The dedupe claims, in sled databases of their own, one per generation (`claims/<start>/`).
//! A generation takes the claims of events accepted from its start until as long after it as
//! the longest dedupe window among them (so at most two are current for any claim still
//! live), and is deleted whole, directory and all, once the last of its claims has ended.
//! sled never gives back the file space it once used, so claims kept in one database held the
//! size of the busiest window for good; a generation gives it back a window after the burst.
//! Ending a claim writes nothing: a lookup reads a claim's end, and the generation goes later.
//!
//! Each generation's `meta` tree records its window and the latest end among its claims,
//! written before the claims they cover: sled recovers a prefix of its writes, so a claim that
//! survives a crash is always covered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sled::Tree;

use super::record::Claim;
use super::sync_sled;
use crate::base::durable;
use crate::store::StoreError;

/// A generation's directory while it is deleted: a crash part way leaves this name, which the
/// next open deletes, never a half-deleted database under a generation's name.
const GONE: &str = ".gone";

pub(super) struct Claims {
    dir: PathBuf,
    cache_bytes: u64,
    generations: RwLock<BTreeMap<u64, Arc<Generation>>>,
}

struct Generation {
    db: sled::Db,
    claims: Tree,
    meta: Tree,
    /// The longest window (claim end minus acceptance) among its claims: it takes claims of
    /// events accepted before `start + window`.
    window: AtomicU64,
    /// The latest end among its claims: it goes once that has passed.
    ends: AtomicU64,
}

/// One claim to record: its dedupe key, when its event was accepted, and the claim.
pub(super) struct NewClaim<'a> {
    pub key: &'a [u8],
    pub accepted_ms: u64,
    pub claim: Claim,
}

impl Claims {
    /// Opens every generation in `dir` (created when missing), deleting any left half deleted.
    pub(super) fn open(dir: &Path, cache_bytes: u64) -> Result<Claims, sled::Error> {
        durable::create_dirs(dir)?;
        let mut generations = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(GONE) {
                std::fs::remove_dir_all(&path)?;
                continue;
            }
            let Ok(start) = u64::from_str_radix(name, 16) else {
                continue;
            };
            generations.insert(start, Arc::new(Generation::open(&path, cache_bytes)?));
        }
        Ok(Claims {
            dir: dir.to_owned(),
            cache_bytes,
            generations: RwLock::new(generations),
        })
    }

    /// The newest claim on `key` among the generations that may still hold a live one.
    pub(super) fn get(&self, key: &[u8], now_ms: u64) -> Result<Option<sled::IVec>, StoreError> {
        for generation in self.read().values().rev() {
            if generation.ends.load(Ordering::Relaxed) <= now_ms {
                continue;
            }
            if let Some(found) = generation.claims.get(key)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Records a frame's claims. `replay`: a claim the generation holds with a later or equal
    /// end is kept (a replay after a crash may meet claims already recorded).
    pub(super) fn record(&self, claims: &[NewClaim<'_>], replay: bool) -> Result<(), StoreError> {
        let Some(first) = claims.iter().map(|c| c.accepted_ms).min() else {
            return Ok(());
        };
        let generation = self.current(first)?;
        let window = (claims.iter())
            .map(|c| c.claim.expires_at_ms.saturating_sub(c.accepted_ms))
            .max()
            .unwrap_or(0);
        let ends = (claims.iter())
            .map(|c| c.claim.expires_at_ms)
            .max()
            .unwrap_or(0);
        generation.widen(window, ends)?;
        for new in claims {
            let newer = replay
                && (generation.claims.get(new.key)?)
                    .and_then(|v| Claim::decode(&v).ok())
                    .is_some_and(|c| c.expires_at_ms >= new.claim.expires_at_ms);
            if !newer {
                generation.claims.insert(new.key, new.claim.encode())?;
            }
        }
        Ok(())
    }

    /// The generation that takes claims of events accepted at `accepted_ms`: the newest, unless
    /// its span has passed, when a new one starts.
    fn current(&self, accepted_ms: u64) -> Result<Arc<Generation>, StoreError> {
        if let Some((start, newest)) = self.read().last_key_value() {
            if accepted_ms < start.saturating_add(newest.window.load(Ordering::Relaxed)) {
                return Ok(newest.clone());
            }
        }
        let mut generations = self.generations.write().unwrap_or_else(|p| p.into_inner());
        // Another thread may have started one meanwhile.
        if let Some((start, newest)) = generations.last_key_value() {
            if accepted_ms < start.saturating_add(newest.window.load(Ordering::Relaxed))
                || accepted_ms <= *start
            {
                return Ok(newest.clone());
            }
        }
        let path = self.dir.join(format!("{accepted_ms:016x}"));
        let made = |e: std::io::Error| StoreError::Write(format!("a claim generation: {e}"));
        durable::create_dirs(&path).map_err(made)?;
        let generation = Arc::new(Generation::open(&path, self.cache_bytes)?);
        // sled writes its `conf` once, at creation: synced at once, so that a power cut
        // cannot leave a generation sled refuses to open.
        sync_sled(&generation.db, &path).map_err(made)?;
        generations.insert(accepted_ms, generation.clone());
        Ok(generation)
    }

    /// Deletes every generation whose claims have all ended by `now_ms`; returns how many.
    pub(super) fn sweep(&self, now_ms: u64) -> std::io::Result<usize> {
        let ended = |g: &Generation| g.ends.load(Ordering::Relaxed) <= now_ms;
        let candidates: Vec<u64> = (self.read().iter())
            .filter(|(_, g)| ended(g))
            .map(|(start, _)| *start)
            .collect();
        let mut deleted = 0;
        for start in candidates {
            let removed = {
                let mut generations = self.generations.write().unwrap_or_else(|p| p.into_inner());
                // Checked again under the lock: a claim recorded meanwhile keeps it.
                match generations.get(&start) {
                    Some(g) if ended(g) => generations.remove(&start),
                    _ => None,
                }
            };
            let Some(removed) = removed else { continue };
            // sled flushes and stops its threads once its last handle goes.
            drop(removed);
            let path = self.dir.join(format!("{start:016x}"));
            let gone = self.dir.join(format!("{start:016x}{GONE}"));
            std::fs::rename(&path, &gone)?;
            durable::sync_dir(&self.dir)?;
            std::fs::remove_dir_all(&gone)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Makes every generation durable, and their names in `claims/`.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        for (start, generation) in self.list() {
            sync_sled(&generation.db, &self.dir.join(format!("{start:016x}")))?;
        }
        durable::sync_dir(&self.dir)
    }

    /// Copies every generation into `to` (a `claims/` directory to be), each synced.
    pub(super) fn copy_into(&self, to: &Path) -> Result<(), StoreError> {
        durable::create_dirs(to).map_err(|e| StoreError::Write(format!("{e}")))?;
        for (start, generation) in self.list() {
            let path = to.join(format!("{start:016x}"));
            let copy = sled::Config::new().path(&path).open()?;
            for name in [&b"claims"[..], b"meta"] {
                let (source, target) = (generation.db.open_tree(name)?, copy.open_tree(name)?);
                for entry in source.iter() {
                    let (key, value) = entry?;
                    target.insert(key, value)?;
                }
            }
            sync_sled(&copy, &path).map_err(|e| StoreError::Sync(e.to_string()))?;
        }
        durable::sync_dir(to).map_err(|e| StoreError::Sync(e.to_string()))
    }

    /// Bytes the generations occupy on disk.
    pub(super) fn size_on_disk(&self) -> u64 {
        (self.list().iter())
            .map(|(_, g)| g.db.size_on_disk().unwrap_or(0))
            .sum()
    }

    /// How many generations there are, and the claims they hold.
    #[cfg(test)]
    pub(super) fn count(&self) -> (usize, usize) {
        let generations = self.read();
        let claims = generations.values().map(|g| g.claims.len()).sum();
        (generations.len(), claims)
    }

    /// The generations as they are now, without holding the lock: for work that takes long
    /// (syncs, copies), which must not keep a new generation from starting.
    fn list(&self) -> Vec<(u64, Arc<Generation>)> {
        (self.read().iter()).map(|(s, g)| (*s, g.clone())).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Arc<Generation>>> {
        self.generations.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Generation {
    fn open(path: &Path, cache_bytes: u64) -> Result<Generation, sled::Error> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(500))
            .open()?;
        let (claims, meta) = (db.open_tree("claims")?, db.open_tree("meta")?);
        let number = |key: &str| -> Result<u64, sled::Error> {
            Ok((meta.get(key)?)
                .and_then(|v| v.as_ref().try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0))
        };
        let (window, ends) = (number("window")?, number("ends")?);
        // A generation whose meta did not survive holds no claim either (written first).
        Ok(Generation {
            window: AtomicU64::new(window),
            ends: AtomicU64::new(ends),
            db,
            claims,
            meta,
        })
    }

    /// Raises the generation's window and end to cover claims about to be recorded.
    fn widen(&self, window: u64, ends: u64) -> Result<(), sled::Error> {
        if self.window.fetch_max(window, Ordering::Relaxed) < window {
            self.meta.insert("window", &window.to_be_bytes())?;
        }
        if self.ends.fetch_max(ends, Ordering::Relaxed) < ends {
            self.meta.insert("ends", &ends.to_be_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::EventId;

    fn claim(key: &str, accepted_ms: u64, expires_at_ms: u64) -> NewClaim<'_> {
        NewClaim {
            key: key.as_bytes(),
            accepted_ms,
            claim: Claim {
                expires_at_ms,
                event_id: EventId::generate(),
            },
        }
    }

    #[test]
    fn claims_of_events_accepted_after_a_generations_window_start_the_next_and_each_goes_whole() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::open(dir.path(), 1 << 20).unwrap();
        claims.record(&[claim("a", 1_000, 1_100)], false).unwrap();
        claims.record(&[claim("b", 1_050, 1_150)], false).unwrap();
        claims.record(&[claim("c", 1_100, 1_200)], false).unwrap();
        assert_eq!(claims.count(), (2, 3));
        assert!(claims.size_on_disk() > 0);
        // Each found until its end, whichever generation holds it.
        assert!(claims.get(b"a", 1_099).unwrap().is_some());
        assert!(claims.get(b"c", 1_199).unwrap().is_some());
        assert!(claims.get(b"a", 1_150).unwrap().is_none());
        assert!(claims.get(b"z", 1_000).unwrap().is_none());

        // Both claims of the first generation ended: it goes, the second stays.
        assert_eq!(claims.sweep(1_150).unwrap(), 1);
        assert_eq!(claims.count(), (1, 1));
        claims.sync().unwrap();
        drop(claims);

        // Reopened: the generation left, its window and end as recorded; and a deletion a
        // crash cut short is finished.
        std::fs::create_dir(dir.path().join(format!("{:016x}{GONE}", 7))).unwrap();
        let claims = Claims::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(claims.count(), (1, 1));
        assert!(!dir.path().join(format!("{:016x}{GONE}", 7)).exists());
        claims.record(&[claim("d", 1_150, 1_250)], false).unwrap();
        assert_eq!(claims.count(), (1, 2));
        assert_eq!(claims.sweep(1_200).unwrap(), 0);
        assert_eq!(claims.sweep(1_250).unwrap(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(claims.size_on_disk(), 0);
    }

    #[test]
    fn a_replay_keeps_the_claim_with_the_later_end() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::open(dir.path(), 1 << 20).unwrap();
        let later = claim("a", 1_000, 5_000);
        let kept = later.claim.event_id.clone();
        claims.record(&[later], false).unwrap();
        claims.record(&[claim("a", 1_000, 2_000)], true).unwrap();
        let found = Claim::decode(&claims.get(b"a", 1_000).unwrap().unwrap()).unwrap();
        assert_eq!((found.expires_at_ms, found.event_id), (5_000, kept));
    }
}
