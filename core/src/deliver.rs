//! Delivery workers: one per sink of each workspace, so a slow sink only ever delays itself.
//! A worker takes the oldest entries of its queue in order, hands each to its sink, and drops an
//! entry only once the sink has it (at least once). A refusal is retried, after an exponential
//! backoff with full jitter, before anything newer goes out, keeping the sink's order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::names::{SinkName, WorkspaceId};
use crate::sinks::{Delivery, Sink};
use crate::store::{SinkQueue, Store};

/// Entries read from the queue per pass.
const BATCH: usize = 64;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(300);

/// A running sink's handles.
pub struct SinkWorker {
    pub workspace: WorkspaceId,
    pub sink: SinkName,
    pub queue: SinkQueue,
    wake: Arc<Notify>,
}

impl SinkWorker {
    /// Starts the worker for one sink; it first drains whatever a previous run left queued.
    pub fn spawn(
        workspace: WorkspaceId,
        sink_name: SinkName,
        sink: Arc<dyn Sink>,
        store: Arc<Store>,
    ) -> SinkWorker {
        let queue = SinkQueue::new(&workspace, &sink_name);
        let wake = Arc::new(Notify::new());
        let worker = SinkWorker {
            workspace,
            sink: sink_name,
            queue,
            wake,
        };
        tokio::spawn(run(
            worker.workspace.clone(),
            worker.sink.clone(),
            worker.queue.clone(),
            sink,
            store,
            worker.wake.clone(),
        ));
        worker
    }

    /// Tells the worker its queue has new entries.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn run(
    workspace: WorkspaceId,
    sink_name: SinkName,
    queue: SinkQueue,
    sink: Arc<dyn Sink>,
    store: Arc<Store>,
    wake: Arc<Notify>,
) {
    let mut failures: u32 = 0;
    loop {
        let batch = match store.queue_peek(&queue, BATCH) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%workspace, sink = %sink_name, %error, "sink queue unreadable");
                failures = failures.saturating_add(1);
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        if batch.is_empty() {
            wake.notified().await;
            continue;
        }
        for (key, envelope) in batch {
            let event_id = queue
                .event_id(&key)
                .map(|id| id.to_string())
                .unwrap_or_default();
            let delivery = Delivery {
                event_id: &event_id,
                envelope: &envelope,
            };
            match sink.deliver(delivery).await {
                Ok(()) => {
                    failures = 0;
                    tracing::debug!(%workspace, sink = %sink_name, event_id, "event delivered");
                    if let Err(error) = store.queue_remove(&key) {
                        tracing::error!(%workspace, sink = %sink_name, event_id, %error, "delivered event could not be dequeued; it will be delivered again");
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let delay = backoff(failures);
                    tracing::warn!(%workspace, sink = %sink_name, event_id, %error, attempt = failures, retry_in_ms = delay.as_millis() as u64, "sink refused event; retrying");
                    tokio::time::sleep(delay).await;
                    break;
                }
            }
        }
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(cap, first * 2^(n-1))].
fn backoff(failures: u32) -> Duration {
    let ceiling = FIRST_RETRY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
        .min(LONGEST_RETRY);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for n in 1..40 {
            let ceiling = FIRST_RETRY
                .saturating_mul(1u32 << (n - 1).min(20))
                .min(LONGEST_RETRY);
            for _ in 0..20 {
                assert!(backoff(n) <= ceiling);
            }
        }
        assert!(backoff(100) <= LONGEST_RETRY);
    }
}
