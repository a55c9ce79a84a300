//! One sink's delivery loop: take due entries from its queue, hand them to the sink (several
//! in flight, or strictly one at a time when ordered), record what became of each, and keep
//! the sink's health and pace (see [`super::gate`]).
//!
//! The worker reads its queue forward from a position, so each pass costs what it delivers, not
//! the backlog; a commit that lands out of id order or a replayed dead letter moves the
//! position back (the store tells it the lowest id added). Events that failed wait in memory
//! until due; their state is in the store, so a restart finds them again.
//! A stopped worker hands its queue over (see [`handover`]).

mod handover;
mod settle;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::gate::Gate;
use super::health::State;
use super::policy::{gather_until, DeliveryPolicy};
use super::record::{decode, DeliveryState};
use super::trace;
use crate::base::id::{millis, EventId};
use crate::base::names::{SinkName, WorkspaceId};
use crate::metrics::Metrics;
use crate::sinks::{Delivery, Sink, SinkError};
use crate::store::{SinkQueue, Store, StoreError};
use crate::telemetry::AttemptTrace;

/// How long a worker waits before using its queue again after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Entries read from the queue per scan, beyond what the free slots need: fewer reads.
const SCAN_AHEAD: usize = 64;
/// A batch stops growing past this many envelope bytes, so large events do not pile up in
/// memory (a file sink's batch of 256 lines of 1 MiB bodies would be half a gigabyte).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

pub(super) struct Worker {
    pub workspace: WorkspaceId,
    pub sink_name: SinkName,
    pub queue: SinkQueue,
    pub sink: Arc<dyn Sink>,
    pub policy: DeliveryPolicy,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
}

/// Events handed to the sink in one call.
struct Batch {
    events: Vec<Pending>,
}

struct Pending {
    id: EventId,
    envelope: Vec<u8>,
    state: DeliveryState,
}

/// What the loop keeps between passes.
struct Run {
    health: Gate,
    /// Where the next forward read of the queue starts (inclusive); `None`: the beginning.
    from: Option<EventId>,
    /// The last read found the end of the queue; new entries wake the worker.
    at_end: bool,
    in_flight: HashSet<EventId>,
    /// Failed events by when they are due again (ms since the epoch).
    waiting: BTreeSet<(u64, EventId)>,
    waiting_ids: HashSet<EventId>,
    tasks: JoinSet<(Batch, Result<(), SinkError>)>,
    /// Completed deliveries not yet recorded (the store failed): recorded before anything
    /// else is delivered, so a store that cannot take writes does not make the sink receive
    /// the same events over and over.
    done: Vec<(EventId, Vec<u8>)>,
    /// The head of an ordered queue is not due until then.
    head_due: Option<Instant>,
    /// When the last batch was handed to the sink, and until when a small one waits for more
    /// (see [`gather_until`]).
    launched: Option<Instant>,
    gather: Option<Instant>,
    /// Seconds spent reading the queue and settling outcomes (`switchyard_busy_seconds_total`).
    busy: prometheus_client::metrics::counter::Counter<f64, std::sync::atomic::AtomicU64>,
}

impl Worker {
    pub(super) async fn run(self, gate: Gate, mut stop: watch::Receiver<bool>) {
        let worker = Arc::new(self);
        let mut run = Run {
            health: gate,
            from: None,
            at_end: false,
            in_flight: HashSet::new(),
            waiting: BTreeSet::new(),
            waiting_ids: HashSet::new(),
            tasks: JoinSet::new(),
            done: Vec::new(),
            head_due: None,
            launched: None,
            gather: None,
            busy: (worker.metrics)
                .deliver_busy(worker.workspace.as_str(), worker.sink_name.as_str()),
        };
        loop {
            if *stop.borrow() {
                return worker.finish(run).await;
            }
            let started = Instant::now();
            let passed = worker.pass(&mut run).await;
            run.busy.inc_by(started.elapsed().as_secs_f64());
            if let Err(error) = passed {
                tracing::error!(workspace = %worker.workspace, sink = %worker.sink_name, %error, "delivery queue unavailable");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
            worker.queue.set_in_flight(run.in_flight.len() as u64);
            let wake_at = worker.wake_at(&mut run);
            // With every slot taken, or a small batch gathering, a new entry is not handed out
            // now: it is read once a batch settles or the gathering ends (the store keeps the
            // lowest id added), so intake's commits do not each wake this thread for nothing.
            let room = run.tasks.len() < worker.policy.concurrency && run.gather.is_none();
            tokio::select! {
                Some(joined) = run.tasks.join_next(), if !run.tasks.is_empty() => {
                    let started = Instant::now();
                    worker.settle_joined(&mut run, joined).await;
                    while let Some(joined) = run.tasks.try_join_next() {
                        worker.settle_joined(&mut run, joined).await;
                    }
                    run.busy.inc_by(started.elapsed().as_secs_f64());
                }
                () = worker.queue.changed(), if room => run.at_end = false,
                () = run.health.woken() => {}
                () = sleep_until(wake_at), if wake_at.is_some() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Records completions, moves the read position back if needed, and hands out work.
    async fn pass(&self, run: &mut Run) -> Result<(), StoreError> {
        if !run.done.is_empty() {
            self.store.complete(&self.queue, &run.done).await?;
            run.done.clear();
        }
        if let Some(low) = self.queue.take_added_min() {
            if run.from.as_ref().is_some_and(|from| low < *from) {
                run.from = Some(low);
            }
            run.at_end = false;
        }
        let now = Instant::now();
        let slots = match run.health.state(now) {
            State::Down { .. } | State::Disabled => 0,
            State::Probing => usize::from(run.tasks.is_empty()),
            State::Flowing => self.policy.concurrency.saturating_sub(run.tasks.len()),
        };
        let probing = matches!(run.health.state(now), State::Probing);
        let per_batch = if probing { 1 } else { self.sink.max_batch() };
        // An ordered sink hands out its head alone: it has no batch to gather.
        let takes = if self.policy.ordered { 1 } else { per_batch };
        let ready = (self.queue.depth()).saturating_sub(run.in_flight.len() as u64);
        run.gather = (slots > 0)
            .then(|| gather_until(now, run.launched, ready, takes))
            .flatten();
        if run.gather.is_some() {
            return Ok(());
        }
        for _ in 0..slots {
            let limit = run.health.room(now, per_batch);
            if limit == 0 {
                break;
            }
            let batch = if self.policy.ordered {
                self.head(run, now).await?
            } else {
                self.take(run, limit).await?
            };
            if batch.is_empty() {
                break;
            }
            run.health.spend(now, batch.len());
            self.launch(run, batch);
        }
        Ok(())
    }

    /// Ordered: the oldest entry, alone, once it is due.
    async fn head(&self, run: &mut Run, now: Instant) -> Result<Vec<Pending>, StoreError> {
        run.head_due = None;
        if !run.tasks.is_empty() {
            return Ok(Vec::new());
        }
        let Some(queued) = self.store.peek_from(&self.queue, None, 1)?.pop() else {
            return Ok(Vec::new());
        };
        let state: DeliveryState = queued.state.and_then(|s| decode(&s)).unwrap_or_default();
        let wait = state
            .next_attempt_at_ms
            .saturating_sub(millis(SystemTime::now()));
        if wait > 0 {
            run.head_due = Some(now + Duration::from_millis(wait));
            return Ok(Vec::new());
        }
        Ok(self.pending(queued.id, state).await?.into_iter().collect())
    }

    /// Unordered: due retries first, then what is new, up to `limit` events.
    async fn take(&self, run: &mut Run, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let now_ms = millis(SystemTime::now());
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < limit && bytes < MAX_BATCH_BYTES {
            let Some((due, id)) = run.waiting.first().cloned() else {
                break;
            };
            if due > now_ms {
                break;
            }
            run.waiting.pop_first();
            run.waiting_ids.remove(&id);
            if let Some(queued) = self.store.queued(&self.queue, &id)? {
                let state = queued.state.and_then(|s| decode(&s)).unwrap_or_default();
                if let Some(pending) = self.pending(queued.id, state).await? {
                    bytes += pending.envelope.len();
                    batch.push(pending);
                }
            }
        }
        while batch.len() < limit && bytes < MAX_BATCH_BYTES && !run.at_end {
            let want = limit - batch.len() + SCAN_AHEAD;
            let read = self.store.peek_from(&self.queue, run.from.as_ref(), want)?;
            run.at_end = read.len() < want;
            for queued in read {
                run.from = queued.id.successor();
                if run.in_flight.contains(&queued.id) || run.waiting_ids.contains(&queued.id) {
                    continue;
                }
                let state: DeliveryState =
                    queued.state.and_then(|s| decode(&s)).unwrap_or_default();
                let full = batch.len() >= limit || bytes >= MAX_BATCH_BYTES;
                if state.next_attempt_at_ms > now_ms || full {
                    // Not due, or no room in this batch: it waits in memory, not re-read.
                    let due = state.next_attempt_at_ms.max(now_ms);
                    run.waiting.insert((due, queued.id.clone()));
                    run.waiting_ids.insert(queued.id);
                    continue;
                }
                if let Some(pending) = self.pending(queued.id, state).await? {
                    bytes += pending.envelope.len();
                    batch.push(pending);
                }
            }
        }
        Ok(batch)
    }

    /// An entry ready to go, its envelope read now; one whose envelope is missing (damage)
    /// goes to the dead letters.
    async fn pending(
        &self,
        id: EventId,
        state: DeliveryState,
    ) -> Result<Option<Pending>, StoreError> {
        match self.store.envelope_of(&self.queue, &id)? {
            Some(envelope) => Ok(Some(Pending {
                id,
                envelope,
                state,
            })),
            None => {
                let reason = "the event's stored record is missing or unreadable".to_owned();
                self.bury(&id, state, reason, None).await?;
                Ok(None)
            }
        }
    }

    fn launch(&self, run: &mut Run, events: Vec<Pending>) {
        run.launched = Some(Instant::now());
        for event in &events {
            run.in_flight.insert(event.id.clone());
        }
        let sink = self.sink.clone();
        let each = events.iter().map(|e| (&e.id, e.envelope.as_slice()));
        let attempts = trace::start(&self.workspace, &self.sink_name, each);
        run.tasks.spawn(async move {
            let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
            let deliveries: Vec<Delivery<'_>> = events
                .iter()
                .zip(&ids)
                .enumerate()
                .map(|(i, (e, id))| Delivery {
                    event_id: id,
                    envelope: &e.envelope,
                    traceparent: attempts
                        .get(i)
                        .and_then(Option::as_ref)
                        .map(AttemptTrace::traceparent),
                })
                .collect();
            let result = sink.deliver(&deliveries).await;
            drop(deliveries);
            trace::finish(attempts, &result);
            (Batch { events }, result)
        });
    }

    /// When the loop must look again without being woken: a probe, a retry or an ordered
    /// head coming due.
    fn wake_at(&self, run: &mut Run) -> Option<Instant> {
        let now = Instant::now();
        if let State::Down { until } = run.health.state(now) {
            return Some(until);
        }
        let retry = run.waiting.first().map(|(due, _)| {
            now + Duration::from_millis(due.saturating_sub(millis(SystemTime::now())))
        });
        let due = [retry, run.head_due, run.gather]
            .into_iter()
            .flatten()
            .min();
        run.health.wake(now, due)
    }

    async fn settle_joined(
        &self,
        run: &mut Run,
        joined: Result<(Batch, Result<(), SinkError>), tokio::task::JoinError>,
    ) {
        let (batch, result) = match joined {
            Ok(settled) => settled,
            Err(error) => {
                // The sink's future panicked: its events are still queued; read them again.
                tracing::error!(workspace = %self.workspace, sink = %self.sink_name, %error, "delivery task failed; its events stay queued");
                run.in_flight.clear();
                run.from = None;
                run.at_end = false;
                return;
            }
        };
        for event in &batch.events {
            run.in_flight.remove(&event.id);
        }
        if let Err(error) = self.settle(run, batch, result).await {
            tracing::error!(workspace = %self.workspace, sink = %self.sink_name, %error, "could not record a delivery's outcome; it stays queued");
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
