//! Delivery: one worker per sink of each workspace, so a slow or dead sink only ever delays
//! itself. A worker hands due events to its sink (several requests in flight for http, batches
//! of lines for file and stdout, strictly one at a time when the sink is `ordered`), and drops
//! an event from the queue only once the sink has it (at least once).
//!
//! Failures are judged by [`health`]: when the sink fails as a whole it backs off as a whole and
//! probes with one delivery, and once a probe succeeds the backlog flows at full speed; an event
//! that fails alone while others succeed (a "poison" event) backs off alone on the sink's
//! `retry` schedule. An event becomes a dead letter on a permanent refusal (a 4xx other than
//! 408/429), when its own schedule runs out, or when it has kept failing past the sink's
//! `max_age`. Every attempt is recorded; an operator can replay dead letters.

mod health;
mod policy;
mod record;
mod trace;
mod worker;

use std::sync::Arc;

use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};
use crate::metrics::Metrics;
use crate::sinks::Sink;
use crate::store::{DeliveryOf, SinkQueue, Store, StoreError};

pub use policy::{DeliveryPolicy, Next};
pub use record::{decode, Attempt, DeadLetter, Delivered, DeliveryState};

/// A running sink's handles; dropping it stops the worker (a reload that removes or changes
/// the sink). What it had in flight stays queued and is delivered again: at least once.
pub struct SinkWorker {
    pub workspace: WorkspaceId,
    pub sink: SinkName,
    pub queue: SinkQueue,
    handle: Arc<dyn Sink>,
    task: tokio::task::AbortHandle,
}

impl Drop for SinkWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SinkWorker {
    /// Starts the worker for one sink; it first delivers whatever a previous run left queued.
    pub fn spawn(
        workspace: WorkspaceId,
        sink_name: SinkName,
        sink: Arc<dyn Sink>,
        policy: DeliveryPolicy,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> SinkWorker {
        let queue = store.queue(&workspace, &sink_name);
        let consumer = store.consume(&queue, policy.ordered);
        let worker = worker::Worker {
            workspace: workspace.clone(),
            sink_name: sink_name.clone(),
            queue: queue.clone(),
            sink: sink.clone(),
            policy,
            store,
            metrics,
            _consumer: consumer,
        };
        let task = tokio::spawn(worker.run()).abort_handle();
        SinkWorker {
            workspace,
            sink: sink_name,
            queue,
            handle: sink,
            task,
        }
    }

    /// Reopens what the sink writes to (SIGHUP).
    pub fn reopen(&self) {
        self.handle.reopen();
    }
}

/// Puts dead letters of one sink back on its queue: one by id, or all. Returns how many.
pub async fn replay(
    store: &Store,
    queue: &SinkQueue,
    only: Option<&EventId>,
) -> Result<usize, StoreError> {
    let mut replayed = 0;
    match only {
        Some(id) => {
            if let Some(letter) = store.dead_letter(queue, id).await? {
                let state = replay_state(&letter);
                replayed += usize::from(store.requeue(queue, id, &state).await?);
            }
        }
        None => {
            let mut after = None;
            loop {
                let page = store.dead_letters(queue, after.as_ref(), 1000).await?;
                for (id, letter) in &page.letters {
                    let state = replay_state(letter);
                    replayed += usize::from(store.requeue(queue, id, &state).await?);
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    if replayed > 0 {
        tracing::info!(workspace = %queue.workspace(), sink = %queue.sink(), replayed, "dead letters replayed");
    }
    Ok(replayed)
}

/// What [`redeliver`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Back on the sink's queue, its earlier attempts kept.
    Queued,
    /// Still queued: it will be delivered anyway.
    AlreadyQueued,
    /// Never routed to the sink, or its record is past retention.
    Unknown,
}

/// Puts one event back on one sink's queue, whatever became of it there: the operator's
/// "deliver again". A delivered event passes through the dead letters on its way back (the
/// store requeues only from there), with its attempts so far.
pub async fn redeliver(
    store: &Store,
    queue: &SinkQueue,
    id: &EventId,
) -> Result<Redelivery, StoreError> {
    let attempts = match store.delivery_of(queue, id).await? {
        DeliveryOf::Queued(_) => return Ok(Redelivery::AlreadyQueued),
        DeliveryOf::Unknown => return Ok(Redelivery::Unknown),
        DeliveryOf::Dead(_) => None,
        DeliveryOf::Delivered(record) => Some(
            (record::decode::<Delivered>(&record))
                .map(|done| done.attempts())
                .unwrap_or_default(),
        ),
    };
    if let Some(attempts) = attempts {
        let reason = "delivered again by the operator".to_owned();
        let letter = DeadLetter::new(queue.workspace(), queue.sink(), id, reason, attempts);
        store.bury(queue, id, &record::encode(&letter)).await?;
    }
    Ok(match replay(store, queue, Some(id)).await? {
        0 => Redelivery::Unknown,
        _ => Redelivery::Queued,
    })
}

/// A replayed dead letter's delivery state: its attempts so far, which new ones follow, due at
/// once and with its retry schedule started again.
fn replay_state(letter: &[u8]) -> Vec<u8> {
    let attempts = (record::decode::<DeadLetter>(letter))
        .map(|dead| dead.attempts)
        .unwrap_or_default();
    record::encode(&DeliveryState {
        attempts,
        ..DeliveryState::default()
    })
}
