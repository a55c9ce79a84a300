//! The commit path's second stage, behind the answers: adds each logged frame's events to the
//! event index beside the log, applies the frame to sled (the dedupe claims, the queue
//! cursors), then lets the checkpoint cover it.
//! Nothing waits for it but the claims it carries, which the writer keeps deciding against
//! until they are in sled, and lookups by id or time ([`Progress`]), which must see every event
//! answered before they were asked.

use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::engine::FreeRetired;
use super::frame;
use super::index::EventIndex;
use super::replay::apply;
use super::wal::Position;
use super::{lock, Engine, StoreError, StoreMetrics};
use crate::base::id::EventId;

/// Claims logged but not yet applied to sled: the writer decides the next batches against
/// them while the applier is still on earlier ones.
pub(super) type PendingClaims = Arc<Mutex<HashMap<Vec<u8>, EventId>>>;

/// A frame on its way from the writer to the applier.
pub(super) struct Logged {
    pub(super) payload: Vec<u8>,
    /// Where the frame starts in the log, and where the log ends after it.
    pub(super) at: Position,
    pub(super) next: Position,
}

/// How far the applier is behind the writer, in frames: the writer counts each frame before
/// it answers its events, the applier once it is done with it (applied, or failed and left to
/// the heal). A lookup waits until the second count reaches what the first was when it was
/// asked: an event accepted before then is in the index by the time it reads.
#[derive(Default)]
pub(super) struct Progress {
    counts: Mutex<Counts>,
    moved: Condvar,
    /// Held by a test to keep the applier from the next frame.
    #[cfg(test)]
    pub(super) hold: Mutex<()>,
}

#[derive(Default)]
struct Counts {
    logged: u64,
    done: u64,
    /// Lookups in [`Progress::wait_applied`], so a test lets the applier go only once one is.
    #[cfg(test)]
    waiting: usize,
}

impl Progress {
    /// The writer, before it answers the events of a frame it hands to the applier.
    pub(super) fn logged(&self) {
        lock(&self.counts).logged += 1;
    }

    fn done(&self) {
        lock(&self.counts).done += 1;
        self.moved.notify_all();
    }

    /// Waits, at most `bound`, until the applier is done with every frame logged before the
    /// call; true when it is (at once when it is not behind).
    pub(super) fn wait_applied(&self, bound: Duration) -> bool {
        let counts = lock(&self.counts);
        let target = counts.logged;
        #[cfg(test)]
        let counts = {
            let mut counts = counts;
            counts.waiting += 1;
            counts
        };
        let (counts, _) = (self.moved)
            .wait_timeout_while(counts, bound, |c| c.done < target)
            .unwrap_or_else(|p| p.into_inner());
        #[cfg(test)]
        let counts = {
            let mut counts = counts;
            counts.waiting -= 1;
            counts
        };
        counts.done >= target
    }

    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        lock(&self.counts).waiting
    }
}

pub(super) struct Applier {
    pub(super) engine: Arc<Engine>,
    pub(super) index: Arc<EventIndex>,
    pub(super) metrics: StoreMetrics,
    pub(super) pending: PendingClaims,
    /// Where the log stands once everything in it is applied to sled.
    pub(super) applied: Arc<Mutex<Option<Position>>>,
    pub(super) progress: Arc<Progress>,
}

impl Applier {
    pub(super) fn run(self, logged: std_mpsc::Receiver<Logged>) {
        while let Ok(frame) = logged.recv() {
            #[cfg(test)]
            let _held = lock(&self.progress.hold);
            let started = Instant::now();
            let _free = FreeRetired;
            self.apply(frame);
            self.metrics
                .apply_busy
                .inc_by(started.elapsed().as_secs_f64());
        }
    }

    pub(super) fn apply(&self, logged: Logged) {
        let applied = frame::decode(&logged.payload)
            .map_err(StoreError::from)
            .and_then(|frame| {
                if let Err(error) = self.index.append(logged.at, &frame) {
                    tracing::error!(%error, segment = logged.at.segment, "the event index could not be written: lookups miss this segment's newer events until the next start indexes it again");
                }
                let trees = self.engine.trees()?;
                apply(&trees, &frame, false)?;
                Ok(frame
                    .events
                    .iter()
                    .map(|e| e.key.to_vec())
                    .collect::<Vec<_>>())
            });
        match applied {
            Ok(keys) => {
                // A frame that failed to apply is not in sled: the checkpoint must not pass
                // it until the store has healed (replayed the log).
                if !self.engine.is_stuck() {
                    *lock(&self.applied) = Some(logged.next);
                }
                let mut pending = lock(&self.pending);
                for key in keys {
                    pending.remove(&key);
                }
            }
            Err(error) => {
                // Logged but not in sled: the heal (or the next start) replays it. Its claims
                // stay pending, so repeats are still recognised until then.
                self.engine.set_stuck();
                tracing::error!(%error, "a logged batch could not be applied to the store; it is replayed once the store heals");
            }
        }
        self.progress.done();
    }
}
