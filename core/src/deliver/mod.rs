//! Delivery: one worker per sink of each workspace, so a slow or dead sink only ever delays
//! itself. Workers and their sinks' requests run on delivery's own threads ([`threads`]), so
//! intake under sustained load cannot starve them: a sink faster than intake keeps pace. A
//! worker hands due events to its sink (several requests in flight for http, batches
//! of lines for file and stdout, strictly one at a time when the sink is `ordered`), and drops
//! an event from the queue only once the sink has it (at least once).
//!
//! Failures are judged by [`health`]: when the sink fails as a whole it backs off as a whole and
//! probes with one delivery, and once a probe succeeds the backlog flows at full speed; an event
//! that fails alone while others succeed (a "poison" event) backs off alone on the sink's
//! `retry` schedule. An event becomes a dead letter on a permanent refusal (a 4xx other than
//! 408/429), when its own schedule runs out, or when it has kept failing past the sink's
//! `max_age`. Every attempt is recorded; an operator can replay dead letters.
//!
//! A sink with a `rate` is paced ([`pace`]): what is over the rate waits in the queue. One with
//! `disable_after` that keeps failing that long is disabled until an operator enables it; its
//! state ([`status`]) is what the operator surfaces show, and each change of it is logged and
//! posted to `server.alerts` ([`alert`]). [`gate`] holds both for the worker.

mod alert;
mod gate;
mod health;
mod pace;
mod policy;
mod record;
mod status;
mod threads;
mod trace;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};
use crate::metrics::Metrics;
use crate::sinks::Sink;
use crate::store::{DeliveryOf, Replayed, SinkQueue, Store, StoreError, Window};

pub use alert::{Alert, Alerter};
pub use pace::Pacing;
pub use policy::{DeliveryPolicy, Next};
pub use record::{decode, Attempt, DeadLetter, Delivered, DeliveryState};
pub use status::{SinkState, SinkStatus};
pub use threads::{runtime, Workers};

/// How long a stopped worker's batches in flight may take to finish before they are handed
/// back to the queue unsettled (the next worker then delivers them again).
const HANDOVER_LIMIT: Duration = Duration::from_secs(30);

/// A running sink's handles. Stopping it ([`SinkWorker::stop`], or dropping it) hands the
/// queue over: the worker starts nothing new, finishes and records its batches in flight, and
/// only then does the queue's next worker (a reload's) start reading, so a reload neither
/// repeats an event nor breaks `ordered`.
pub struct SinkWorker {
    pub workspace: WorkspaceId,
    pub sink: SinkName,
    pub queue: SinkQueue,
    /// Its state, and the operator's way to enable it.
    pub status: Arc<SinkStatus>,
    handle: Arc<dyn Sink>,
    stop: watch::Sender<bool>,
}

impl Drop for SinkWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SinkWorker {
    /// Starts the worker for one sink on the workers' runtime once the queue's previous worker
    /// has handed it over; it first delivers whatever a previous run left queued. Its state
    /// changes go to the workers' alerts, if set.
    pub fn spawn(
        workspace: WorkspaceId,
        sink_name: SinkName,
        sink: Arc<dyn Sink>,
        policy: DeliveryPolicy,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        workers: &Workers,
    ) -> SinkWorker {
        let queue = store.queue(&workspace, &sink_name);
        let status = Arc::new(SinkStatus::default());
        let gate = gate::Gate::new(
            &policy,
            status.clone(),
            workers.alerts.clone(),
            workspace.clone(),
            sink_name.clone(),
        );
        let (stop, stopped) = watch::channel(false);
        let worker = worker::Worker {
            workspace: workspace.clone(),
            sink_name: sink_name.clone(),
            queue: queue.clone(),
            sink: sink.clone(),
            policy,
            store,
            metrics,
        };
        workers.runtime.spawn(in_turn(worker, gate, stopped));
        SinkWorker {
            workspace,
            sink: sink_name,
            queue,
            status,
            handle: sink,
            stop,
        }
    }

    /// Stops the worker, which hands its queue over to the next one.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Reopens what the sink writes to (SIGHUP).
    pub fn reopen(&self) {
        self.handle.reopen();
    }
}

/// A worker's life: it waits for its turn at the queue (a previous worker still handing it
/// over), takes its share of it (cluster mode), runs until stopped and hands it over.
async fn in_turn(worker: worker::Worker, gate: gate::Gate, mut stopped: watch::Receiver<bool>) {
    let queue = worker.queue.clone();
    let _turn = tokio::select! {
        turn = queue.take_turn() => turn,
        // Stopped before it began (a reload refused after it was built): nothing to hand over.
        _ = stopped.wait_for(|stop| *stop) => return,
    };
    let _consumer = worker.store.consume(&queue, worker.policy.ordered);
    let (workspace, sink) = (worker.workspace.clone(), worker.sink_name.clone());
    let mut overdue = stopped.clone();
    tokio::select! {
        () = worker.run(gate, stopped) => {}
        () = async {
            let _ = overdue.wait_for(|stop| *stop).await;
            tokio::time::sleep(HANDOVER_LIMIT).await;
        } => {
            tracing::warn!(%workspace, %sink, limit_s = HANDOVER_LIMIT.as_secs(), "a stopped worker's deliveries in flight did not finish in time; they stay queued for the next worker, which delivers them again");
        }
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

/// Delivers again every event accepted in `window` that went to `queue`, delivered or not:
/// each starts afresh (no attempts, due at once, its retry schedule from the start). Durable
/// once the caller syncs the store.
pub async fn replay_window(
    store: &Arc<Store>,
    queue: &SinkQueue,
    window: Window,
) -> Result<Replayed, StoreError> {
    let fresh = record::encode(&DeliveryState::default());
    let (store, q) = (store.clone(), queue.clone());
    let replayed = tokio::task::spawn_blocking(move || store.replay_window(&q, &window, &fresh))
        .await
        .map_err(|e| StoreError::Write(format!("the replay task failed: {e}")))??;
    tracing::info!(
        workspace = %queue.workspace(),
        sink = %queue.sink(),
        queued = replayed.queued,
        gone = replayed.gone,
        "window replayed"
    );
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
/// "deliver again", its attempts so far kept and its retry schedule started again.
pub async fn redeliver(
    store: &Store,
    queue: &SinkQueue,
    id: &EventId,
) -> Result<Redelivery, StoreError> {
    let attempts = match store.delivery_of(queue, id).await? {
        DeliveryOf::Queued(_) => return Ok(Redelivery::AlreadyQueued),
        DeliveryOf::Unknown => return Ok(Redelivery::Unknown),
        DeliveryOf::Dead(letter) => (record::decode::<DeadLetter>(&letter))
            .map(|dead| dead.attempts)
            .unwrap_or_default(),
        DeliveryOf::Delivered(record) => (record.as_deref())
            .and_then(record::decode::<Delivered>)
            .map(|done| done.attempts())
            .unwrap_or_default(),
    };
    let state = record::encode(&DeliveryState {
        attempts,
        ..DeliveryState::default()
    });
    Ok(match store.put_back(queue, id, &state).await? {
        true => Redelivery::Queued,
        false => Redelivery::Unknown,
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
