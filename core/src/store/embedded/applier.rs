//! The commit path's second stage: applies a batch the writer made durable in the log to sled,
//! then answers every waiter and wakes the sinks' workers.

use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use tokio::sync::oneshot;

use super::frame::decode_frame;
use super::replay::apply;
use super::wal::Position;
use super::{lock, Engine, StoreError, StoreMetrics};
use crate::base::id::EventId;
use crate::store::{Accept, Accepted};

/// Where a request's answer goes.
pub(super) type Reply = oneshot::Sender<Result<Accepted, StoreError>>;

/// Claims logged but not yet applied to sled: the writer decides the next batch against them
/// while the applier is still on the previous one.
pub(super) type PendingClaims = Arc<Mutex<HashMap<Vec<u8>, EventId>>>;

/// What the writer decided for one request of a batch.
pub(super) enum Decision {
    New,
    /// A copy of the batch's event at this index.
    RepeatInBatch(usize),
    /// Claimed by an earlier event.
    Seen(EventId),
    Failed(StoreError),
}

/// A batch on its way from the writer to the applier.
pub(super) struct Logged {
    pub(super) batch: Vec<(Accept, Reply)>,
    pub(super) decisions: Vec<Decision>,
    /// The log payload of its new events and completions (empty when it has neither), where
    /// it starts in the log and where the log ends after it.
    pub(super) payload: Vec<u8>,
    pub(super) logged_at: Option<(Position, Position)>,
    pub(super) replaced_expiry: Vec<Vec<u8>>,
    /// Set when the log write failed: every new event of the batch is refused.
    pub(super) failed: Option<String>,
}

/// Stage two: applies a logged batch to sled, then answers its waiters and wakes its sinks.
pub(super) struct Applier {
    pub(super) engine: Arc<Engine>,
    pub(super) metrics: StoreMetrics,
    pub(super) pending: PendingClaims,
    /// Where the log stands once everything in it is applied to sled.
    pub(super) applied: Arc<Mutex<Option<Position>>>,
}

impl Applier {
    pub(super) fn run(self, logged: std_mpsc::Receiver<Logged>) {
        while let Ok(batch) = logged.recv() {
            self.finish(batch);
        }
    }

    pub(super) fn finish(&self, logged: Logged) {
        let mut failed = logged.failed;
        if let (None, Some((start, end))) = (&failed, logged.logged_at) {
            // Completions are in sled already (the worker wrote them); the log keeps them
            // for a replay.
            let applied = decode_frame(&logged.payload)
                .map_err(StoreError::from)
                .and_then(|frame| {
                    let replaced: Vec<&[u8]> =
                        logged.replaced_expiry.iter().map(Vec::as_slice).collect();
                    let trees = self.engine.trees()?;
                    apply(&trees, start, &frame.events, &replaced, false)
                        .map(|()| frame.events.len())
                });
            match applied {
                Ok(events) => {
                    // A batch that failed to apply is not in sled: the checkpoint must not
                    // pass it until the store has healed (replayed the log).
                    if !self.engine.is_stuck() {
                        *lock(&self.applied) = Some(end);
                    }
                    self.metrics.commits.inc();
                    if let Some(h) = &self.metrics.batch_events {
                        h.observe(events as f64);
                    }
                    let mut pending = lock(&self.pending);
                    for ((accept, _), decision) in logged.batch.iter().zip(&logged.decisions) {
                        if matches!(decision, Decision::New) {
                            pending.remove(accept.key.as_bytes());
                        }
                    }
                }
                Err(error) => {
                    // Logged but not in sled: the next start replays it. Its claims stay
                    // pending, so repeats are still recognised until then.
                    self.engine.set_stuck();
                    tracing::error!(%error, "a logged batch could not be applied to the store; it is replayed once the store heals");
                    failed = Some(error.to_string());
                }
            }
        }
        let ids: Vec<EventId> = logged.batch.iter().map(|(a, _)| a.id.clone()).collect();
        for ((accept, reply), decision) in logged.batch.into_iter().zip(logged.decisions) {
            let answer = match (decision, &failed) {
                (Decision::Seen(first), _) => Ok(Accepted::Duplicate(first)),
                (Decision::Failed(error), _) => Err(error),
                (Decision::New | Decision::RepeatInBatch(_), Some(error)) => {
                    Err(StoreError::Write(error.clone()))
                }
                (Decision::RepeatInBatch(first), None) => {
                    Ok(Accepted::Duplicate(ids[first].clone()))
                }
                (Decision::New, None) => {
                    for queue in &accept.queues {
                        queue.added(&accept.id);
                    }
                    Ok(Accepted::New)
                }
            };
            // A waiter that went away (its client disconnected) is fine: its event is kept.
            let _ = reply.send(answer);
        }
    }
}
