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
        let queue = store.queue(&workspace, &sink_name);
        let worker = Worker {
            workspace: workspace.clone(),
            sink_name: sink_name.clone(),
            queue: queue.clone(),
            sink,
            policy,
            store,
            metrics,
            unrecorded: std::sync::Mutex::default(),
        };
        tokio::spawn(worker.run());
        SinkWorker {
            workspace,
            sink: sink_name,
            queue,
        }
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
    /// Deliveries the store failed to record: recorded before anything is delivered again, so
    /// a store that cannot take writes does not make the sink receive the same events over and
    /// over.
    unrecorded: std::sync::Mutex<Vec<(EventId, Vec<u8>)>>,
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
    /// Delivered: the event and the delivery record to keep.
    Delivered(EventId, Vec<u8>),
    /// Failed; its record is already written.
    Failed,
}

/// One queued event being tried.
struct Due {
    id: EventId,
    envelope: Vec<u8>,
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
                        () = worker.queue.changed() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Ok(AfterPass::Idle) => worker.queue.changed().await,
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
            .peek(&self.queue, BATCH.max(self.policy.concurrency))?;
        let now = millis(SystemTime::now());
        let mut due = Vec::new();
        for queued in head {
            let state: DeliveryState = queued
                .state
                .and_then(|bytes| decode(&bytes))
                .unwrap_or_default();
            let Some(envelope) = queued.envelope else {
                self.bury(
                    queued.id,
                    state,
                    "the event's stored record is missing or unreadable".into(),
                )?;
                continue;
            };
            if state.next_attempt_at_ms > now {
                if due.is_empty() {
                    let wait = Duration::from_millis(state.next_attempt_at_ms - now);
                    return Ok(AfterPass::Sleep(wait));
                }
                break;
            }
            due.push(Due {
                id: queued.id,
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
                    Ok(Ok(Settled::Delivered(id, record))) => completed.push((id, record)),
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
            self.store.sync().await?;
        }
        Ok(AfterPass::Again)
    }

    async fn attempt(&self, entry: Due) -> Result<Settled, StoreError> {
        let event_id = entry.id.to_string();
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
                let record = Delivered::new(rfc3339(now), entry.state.attempts);
                tracing::debug!(%workspace, %sink, event_id, "event delivered");
                self.metrics
                    .sink_attempt(workspace.as_str(), sink.as_str(), "delivered");
                return Ok(Settled::Delivered(entry.id, record::encode(&record)));
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
                    .set_attempts(&self.queue, &entry.id, &record::encode(&entry.state))
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
                self.bury(entry.id, entry.state, reason)
                    .map(|()| Settled::Failed)
            }
        }
    }

    /// Moves an event to the sink's dead letters, with why and every attempt.
    fn bury(&self, id: EventId, state: DeliveryState, reason: String) -> Result<(), StoreError> {
        let (workspace, sink) = (&self.workspace, &self.sink_name);
        tracing::error!(%workspace, %sink, event_id = %id, %reason, "event moved to the dead letters");
        let dead = DeadLetter {
            event_id: id.to_string(),
            workspace: workspace.to_string(),
            sink: sink.to_string(),
            reason,
            dead_at: rfc3339(SystemTime::now()),
            attempts: state.attempts,
        };
        self.store.bury(&self.queue, &id, &record::encode(&dead))
    }
}

/// Puts dead letters of one sink back on its queue: one by id, or all. Returns how many.
pub fn replay(
    store: &Store,
    queue: &SinkQueue,
    only: Option<&EventId>,
) -> Result<usize, StoreError> {
    let mut replayed = 0;
    match only {
        Some(id) => replayed += usize::from(store.requeue(queue, id)?),
        None => {
            let mut after = None;
            loop {
                let page = store.dead_letters(queue, after.as_ref(), 1000)?;
                for (id, _) in &page.letters {
                    replayed += usize::from(store.requeue(queue, id)?);
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
