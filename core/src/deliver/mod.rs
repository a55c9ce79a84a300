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
mod worker;

use std::sync::Arc;

use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};
use crate::metrics::Metrics;
use crate::sinks::Sink;
use crate::store::{SinkQueue, Store, StoreError};

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
        Some(id) => replayed += usize::from(store.requeue(queue, id).await?),
        None => {
            let mut after = None;
            loop {
                let page = store.dead_letters(queue, after.as_ref(), 1000).await?;
                for (id, _) in &page.letters {
                    replayed += usize::from(store.requeue(queue, id).await?);
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
