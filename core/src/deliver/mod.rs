//! Delivery workers: one per sink of each workspace, so a slow or dead sink only ever delays
//! itself. A worker takes the oldest entries of its queue, hands them to its sink, and drops an
//! entry only once the sink has it (at least once). A failure is recorded in the store with when
//! to try again, so pending retries survive restarts; with the default concurrency of 1, nothing
//! newer goes out before it, keeping the sink's order. After the last retry, or a permanent
//! refusal, the event moves to the sink's dead letters, from where an operator can replay it.

mod record;
mod retry;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sled::IVec;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::dedupe::millis;
use crate::envelope::{rfc3339, EventId};
use crate::metrics::Metrics;
use crate::names::{SinkName, WorkspaceId};
use crate::sinks::{Delivery, Sink, SinkError};
use crate::store::{SinkQueue, Store, StoreError};

pub use record::{decode, Attempt, DeadLetter, Delivered, DeliveryState};
pub use retry::{DeliveryPolicy, Next};

/// Queue entries a worker takes per pass.
const BATCH: usize = 64;
/// How long a worker waits before reading its queue again after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(1);

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
        policy: DeliveryPolicy,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> SinkWorker {
        let queue = SinkQueue::new(&workspace, &sink_name);
        let wake = Arc::new(Notify::new());
        let worker = Worker {
            workspace: workspace.clone(),
            sink_name: sink_name.clone(),
            queue: queue.clone(),
            sink,
            policy,
            store,
            metrics,
            wake: wake.clone(),
            unrecorded: std::sync::Mutex::default(),
        };
        tokio::spawn(worker.run());
        SinkWorker {
            workspace,
            sink: sink_name,
            queue,
            wake,
        }
    }

    /// Tells the worker its queue has new entries.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

struct Worker {
    workspace: WorkspaceId,
    sink_name: SinkName,
    queue: SinkQueue,
    sink: Arc<dyn Sink>,
    policy: DeliveryPolicy,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    /// Deliveries the store failed to record: recorded before anything is delivered again, so
    /// a store that cannot take writes does not make the sink receive the same events over and
    /// over.
    unrecorded: std::sync::Mutex<Vec<(IVec, Vec<u8>)>>,
}

/// What a worker does after a pass.
enum AfterPass {
    /// It delivered something: look again at once.
    Again,
    /// The head of the queue is waiting for its retry time (new events wake it too).
    Sleep(Duration),
    /// The queue is empty: wait to be woken.
    Idle,
}

/// What became of one attempt.
enum Settled {
    /// Delivered: the queue key and the delivery record to keep.
    Delivered(IVec, Vec<u8>),
    /// Failed; its record is already written.
    Failed,
}

/// One queued event being tried.
struct Due {
    key: IVec,
    envelope: IVec,
    state: DeliveryState,
}

impl Worker {
    async fn run(self) {
        let worker = Arc::new(self);
        loop {
            match worker.pass().await {
                Ok(AfterPass::Again) => {}
                Ok(AfterPass::Sleep(wait)) => {
                    tokio::select! {
                        () = worker.wake.notified() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Ok(AfterPass::Idle) => worker.wake.notified().await,
                Err(error) => {
                    tracing::error!(workspace = %worker.workspace, sink = %worker.sink_name, %error, "delivery queue unavailable");
                    tokio::time::sleep(STORE_RETRY).await;
                }
            }
        }
    }

    /// Delivers the leading run of due entries (up to [`BATCH`]) in order, `concurrency` at a
    /// time, stopping after the first group with a failure so that a retry still goes before
    /// anything newer.
    async fn pass(self: &Arc<Self>) -> Result<AfterPass, StoreError> {
        {
            let mut unrecorded = self
                .unrecorded
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.store.complete(&self.queue, &unrecorded)?;
            unrecorded.clear();
        }
        let head = self
            .store
            .queue_peek(&self.queue, BATCH.max(self.policy.concurrency))?;
        let now = millis(SystemTime::now());
        let mut due = Vec::new();
        for (key, envelope) in head {
            let state: DeliveryState = self
                .store
                .attempts(&key)?
                .and_then(|bytes| decode(&bytes))
                .unwrap_or_default();
            if state.next_attempt_at_ms > now {
                if due.is_empty() {
                    let wait = Duration::from_millis(state.next_attempt_at_ms - now);
                    return Ok(AfterPass::Sleep(wait));
                }
                break;
            }
            due.push(Due {
                key,
                envelope,
                state,
            });
        }
        if due.is_empty() {
            return Ok(AfterPass::Idle);
        }
        let mut completed = Vec::new();
        let mut failed = false;
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() && !failed {
            let mut attempts = JoinSet::new();
            for entry in due.by_ref().take(self.policy.concurrency) {
                let worker = self.clone();
                attempts.spawn(async move { worker.attempt(entry).await });
            }
            while let Some(settled) = attempts.join_next().await {
                match settled {
                    Ok(Ok(Settled::Delivered(key, record))) => completed.push((key, record)),
                    Ok(Ok(Settled::Failed)) => failed = true,
                    Ok(Err(error)) => return Err(error),
                    Err(error) => {
                        tracing::error!(workspace = %self.workspace, sink = %self.sink_name, %error, "delivery task failed; the event stays queued");
                        failed = true;
                    }
                }
            }
        }
        // One transaction for the whole run's completions: a sled transaction is a synchronous
        // log write, and completions need not wait for each other.
        if let Err(error) = self.store.complete(&self.queue, &completed) {
            *self
                .unrecorded
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = completed;
            return Err(error);
        }
        // A failure's record (attempts, next due time, dead letter) must survive a crash; a lost
        // completion only means one more delivery, which at-least-once allows.
        if failed {
            self.store.commit().await?;
        }
        Ok(AfterPass::Again)
    }

    async fn attempt(&self, entry: Due) -> Result<Settled, StoreError> {
        let event_id = self
            .queue
            .event_id(&entry.key)
            .map(|id| id.to_string())
            .unwrap_or_default();
        let result = self
            .sink
            .deliver(Delivery {
                event_id: &event_id,
                envelope: &entry.envelope,
            })
            .await;
        self.settle(entry, &event_id, result)
    }

    /// Records a failed attempt's outcome (to retry later, or dead); a delivery's record is
    /// returned for [`Store::complete`] to batch.
    fn settle(
        &self,
        mut entry: Due,
        event_id: &str,
        result: Result<(), SinkError>,
    ) -> Result<Settled, StoreError> {
        let now = SystemTime::now();
        let (workspace, sink) = (&self.workspace, &self.sink_name);
        let error = match result {
            Ok(()) => {
                entry.state.attempts.push(Attempt {
                    at: rfc3339(now),
                    outcome: "delivered".into(),
                });
                let record = Delivered {
                    delivered_at: rfc3339(now),
                    attempts: entry.state.attempts,
                };
                tracing::debug!(%workspace, %sink, event_id, "event delivered");
                self.metrics
                    .sink_attempt(workspace.as_str(), sink.as_str(), "delivered");
                return Ok(Settled::Delivered(entry.key, record::encode(&record)));
            }
            Err(error) => error,
        };
        entry.state.attempts.push(Attempt {
            at: rfc3339(now),
            outcome: error.to_string(),
        });
        let failures = entry.state.attempts.len();
        let next = if error.is_permanent() {
            Next::GiveUp
        } else {
            self.policy.after_failure(failures, error.retry_after())
        };
        match next {
            Next::RetryIn(wait) => {
                self.metrics
                    .sink_attempt(workspace.as_str(), sink.as_str(), "failed");
                tracing::warn!(%workspace, %sink, event_id, %error, attempt = failures, retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
                entry.state.next_attempt_at_ms = millis(now) + wait.as_millis() as u64;
                self.store
                    .set_attempts(&entry.key, &record::encode(&entry.state))
                    .map(|()| Settled::Failed)
            }
            Next::GiveUp => {
                self.metrics
                    .sink_attempt(workspace.as_str(), sink.as_str(), "dead");
                let reason = if error.is_permanent() {
                    format!("refused for good: {error}")
                } else {
                    format!("gave up after {failures} attempts; last: {error}")
                };
                tracing::error!(%workspace, %sink, event_id, %reason, "event moved to the dead letters");
                let envelope =
                    serde_json::from_slice::<Box<serde_json::value::RawValue>>(&entry.envelope)
                        .map_err(|e| {
                            StoreError::Write(format!("queued envelope is not JSON: {e}"))
                        })?;
                let dead = DeadLetter {
                    event_id: event_id.to_owned(),
                    workspace: workspace.to_string(),
                    sink: sink.to_string(),
                    reason,
                    dead_at: rfc3339(now),
                    attempts: entry.state.attempts,
                    envelope,
                };
                self.store
                    .bury(&entry.key, &record::encode(&dead))
                    .map(|()| Settled::Failed)
            }
        }
    }
}

/// Puts dead letters of one sink back on its queue: one by id, or all. Returns how many.
pub fn replay(
    store: &Store,
    worker: &SinkWorker,
    only: Option<&EventId>,
) -> Result<usize, StoreError> {
    let letters = match only {
        Some(id) => store
            .dead_letter(&worker.queue, id)?
            .map(|bytes| (id.clone(), bytes))
            .into_iter()
            .collect(),
        None => store
            .dead_letters(&worker.queue)?
            .into_iter()
            .filter_map(|(key, bytes)| Some((worker.queue.event_id(&key)?, bytes)))
            .collect::<Vec<_>>(),
    };
    let mut replayed = 0;
    for (id, bytes) in letters {
        let Some(dead) = decode::<DeadLetter>(&bytes) else {
            tracing::error!(workspace = %worker.workspace, sink = %worker.sink, event_id = %id, "dead letter unreadable; left in place");
            continue;
        };
        if store.requeue(&worker.queue, &id, dead.envelope.get().as_bytes())? {
            replayed += 1;
        }
    }
    if replayed > 0 {
        tracing::info!(workspace = %worker.workspace, sink = %worker.sink, replayed, "dead letters replayed");
        worker.wake();
    }
    Ok(replayed)
}
