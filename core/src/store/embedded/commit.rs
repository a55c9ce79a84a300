//! The one commit path. Requests hand their verified, mapped event to a single writer thread,
//! which takes everything waiting, decides each dedupe key against the index, the claims still
//! on their way into it and the rest of the batch, and appends the batch's new events to the
//! write-ahead log with one write and one sync. An applier thread then applies the batch to
//! sled and only then answers every waiter and wakes the sinks' workers, while the writer
//! already syncs the next batch. A checkpointer thread flushes sled behind them and moves the
//! log's checkpoint on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::record::{self, Body, Claim, LogSpan, StoredEvent};
use super::wal::{self, Position, Wal};
use super::{lock, sync_sled, Engine, StoreError, StoreMetrics, Trees};
use crate::base::id::EventId;
use crate::store::codec::{self, Reader, RecordError};
use crate::store::{Accept, Accepted};

/// A batch stops growing here, so one huge burst does not delay its first waiters for long.
const MAX_BATCH_EVENTS: usize = 4096;
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// How often sled is flushed and the log's checkpoint moved on while there is traffic.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

type Reply = oneshot::Sender<Result<Accepted, StoreError>>;

/// What the writer is handed: an event to keep, or deliveries a sink finished, logged so
/// that a crash does not undo them (each one undone is one more delivery).
enum Work {
    Accept(Accept, Reply),
    Completed(Completed),
    /// Write an empty frame: tells whether the log takes writes again with no traffic.
    Probe,
}

/// Events one sink queue no longer owes.
pub(super) struct Completed {
    pub prefix: Vec<u8>,
    pub ids: Vec<EventId>,
}

pub(super) struct Committer {
    sender: mpsc::UnboundedSender<Work>,
    checkpoint: std_mpsc::Sender<()>,
}

impl Committer {
    pub(super) fn start(
        engine: Arc<Engine>,
        wal_dir: &Path,
        segment_age: Duration,
        log_ok: Arc<AtomicBool>,
        metrics: StoreMetrics,
    ) -> std::io::Result<Committer> {
        let wal = Wal::open(wal_dir, segment_age)?;
        let applied = Arc::new(Mutex::new(None));
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let (sender, receiver) = mpsc::unbounded_channel();
        // Two batches in the pipeline at most: one being synced, one being applied.
        let (to_apply, logged) = std_mpsc::sync_channel(1);
        let writer = Writer {
            engine: engine.clone(),
            unreadable: metrics.unreadable.clone(),
            wal,
            log_ok,
            failed_len: 0,
            pending: pending.clone(),
            to_apply,
        };
        let applier = Applier {
            engine: engine.clone(),
            metrics,
            pending,
            applied: applied.clone(),
        };
        std::thread::Builder::new()
            .name("switchyard-commit".into())
            .spawn(move || writer.run(receiver))?;
        std::thread::Builder::new()
            .name("switchyard-apply".into())
            .spawn(move || applier.run(logged))?;
        let (checkpoint, requests) = std_mpsc::channel();
        let wal_dir = wal_dir.to_owned();
        std::thread::Builder::new()
            .name("switchyard-checkpoint".into())
            .spawn(move || checkpointer(engine, wal_dir, applied, requests))?;
        Ok(Committer { sender, checkpoint })
    }

    pub(super) async fn accept(&self, mut accept: Accept) -> Result<Accepted, StoreError> {
        // Compressed here, on the request's own task, so the one writer thread does not.
        accept.envelope = record::compress(&accept.envelope);
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Write("the commit writer has stopped".into());
        self.sender
            .send(Work::Accept(accept, reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Logs finished deliveries with the next batch; does not wait for it.
    pub(super) fn completed(&self, completed: Completed) {
        let _ = self.sender.send(Work::Completed(completed));
    }

    /// Asks the writer to append an empty frame, so a log that failed is found writable
    /// again even when no request arrives.
    pub(super) fn probe(&self) {
        let _ = self.sender.send(Work::Probe);
    }

    pub(super) fn checkpoint_now(&self) {
        let _ = self.checkpoint.send(());
    }
}

/// Claims logged but not yet applied to sled: the writer decides the next batch against them
/// while the applier is still on the previous one.
type PendingClaims = Arc<Mutex<HashMap<Vec<u8>, EventId>>>;

/// What the writer decided for one request of a batch.
enum Decision {
    New,
    /// A copy of the batch's event at this index.
    RepeatInBatch(usize),
    /// Claimed by an earlier event.
    Seen(EventId),
    Failed(StoreError),
}

/// A batch on its way from the writer to the applier.
struct Logged {
    batch: Vec<(Accept, Reply)>,
    decisions: Vec<Decision>,
    /// The log payload of its new events and completions (empty when it has neither), where
    /// it starts in the log and where the log ends after it.
    payload: Vec<u8>,
    logged_at: Option<(Position, Position)>,
    replaced_expiry: Vec<Vec<u8>>,
    /// Set when the log write failed: every new event of the batch is refused.
    failed: Option<String>,
}

/// Stage one: decides dedupe for a batch and makes its new events durable in the log.
struct Writer {
    engine: Arc<Engine>,
    unreadable: prometheus_client::metrics::counter::Counter,
    wal: Wal,
    /// False from a failed append until an append or a probe at least as large succeeds;
    /// only the writer sets it.
    log_ok: Arc<AtomicBool>,
    /// The size of the append that failed, for the probes that follow.
    failed_len: usize,
    pending: PendingClaims,
    to_apply: std_mpsc::SyncSender<Logged>,
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Work>) {
        while let Some(first) = receiver.blocking_recv() {
            let mut batch = Vec::new();
            let mut completed = Vec::new();
            let mut probe = false;
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(work) = next.take() {
                match work {
                    Work::Accept(accept, reply) => {
                        bytes += accept.envelope.len();
                        batch.push((accept, reply));
                    }
                    Work::Completed(done) => completed.push(done),
                    Work::Probe => probe = true,
                }
                if batch.len() < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES {
                    next = receiver.try_recv().ok();
                }
            }
            let logged = self.log(batch, &completed, probe);
            if self.to_apply.send(logged).is_err() {
                return;
            }
        }
    }

    fn log(&mut self, batch: Vec<(Accept, Reply)>, completed: &[Completed], probe: bool) -> Logged {
        let mut decisions: Vec<Decision> = Vec::with_capacity(batch.len());
        let mut replaced_expiry = Vec::new();
        let mut payload = Vec::new();
        let mut fresh = 0u32;
        {
            let pending = lock(&self.pending);
            // Keys claimed earlier in this batch: a second copy is a duplicate of the first.
            let mut claimed: HashMap<&[u8], usize> = HashMap::new();
            for (index, (accept, _)) in batch.iter().enumerate() {
                let key = accept.key.as_bytes();
                if let Some(&first) = claimed.get(key) {
                    decisions.push(Decision::RepeatInBatch(first));
                    continue;
                }
                if let Some(first) = pending.get(key) {
                    decisions.push(Decision::Seen(first.clone()));
                    continue;
                }
                let existing = match self.engine.trees().and_then(|t| Ok(t.dedupe.get(key)?)) {
                    Ok(existing) => existing,
                    Err(e) => {
                        // sled fails reads once its own background flush has failed (a full
                        // disk): the store is not ready until the healer has reopened it.
                        self.engine.set_stuck();
                        decisions.push(Decision::Failed(e));
                        continue;
                    }
                };
                match existing.as_deref().map(Claim::decode) {
                    Some(Ok(claim)) if claim.expires_at_ms > accept.now_ms => {
                        decisions.push(Decision::Seen(claim.event_id));
                        continue;
                    }
                    Some(Ok(expired)) => replaced_expiry.push(expired.expiry_key(key)),
                    Some(Err(error)) => {
                        self.unreadable.inc();
                        tracing::error!(dedupe_key = %accept.key, %error, "dedupe entry unreadable; the key is claimed anew");
                    }
                    None => {}
                }
                claimed.insert(key, index);
                if fresh == 0 {
                    payload.extend_from_slice(&[0; 4]);
                }
                encode_event(&mut payload, accept);
                fresh += 1;
                decisions.push(Decision::New);
            }
        }
        let finished: usize = completed.iter().map(|c| c.ids.len()).sum();
        if fresh == 0 && finished > 0 {
            payload.extend_from_slice(&[0; 4]);
        }
        if fresh > 0 {
            payload[..4].copy_from_slice(&fresh.to_be_bytes());
        }
        if finished > 0 {
            encode_completed(&mut payload, completed);
        }
        let mut logged = Logged {
            batch,
            decisions,
            payload,
            logged_at: None,
            replaced_expiry,
            failed: None,
        };
        if logged.payload.is_empty() {
            if probe && !self.log_ok.load(Ordering::Relaxed) {
                self.probe();
            }
            return logged;
        }
        match self.wal.append(&logged.payload) {
            Ok(at) => {
                logged.logged_at = Some(at);
                // A small frame of completions can still fit where a batch of events did
                // not: only a write as large as the one that failed brings the log back.
                if logged.payload.len() >= self.failed_len
                    && !self.log_ok.swap(true, Ordering::Relaxed)
                {
                    tracing::info!("the write-ahead log takes writes again");
                }
                let mut pending = lock(&self.pending);
                for ((accept, _), decision) in logged.batch.iter().zip(&logged.decisions) {
                    if matches!(decision, Decision::New) {
                        pending.insert(accept.key.as_bytes().to_vec(), accept.id.clone());
                    }
                }
            }
            Err(error) => {
                self.log_ok.store(false, Ordering::Relaxed);
                self.failed_len = logged.payload.len();
                tracing::error!(%error, events = fresh, completions = finished, "the write-ahead log failed; the vendors will retry");
                logged.failed = Some(format!("the write-ahead log: {error}"));
            }
        }
        logged
    }

    /// Finds out whether a log that failed takes writes again, with no request waiting.
    fn probe(&mut self) {
        match self.wal.probe(self.failed_len) {
            Ok(()) => {
                self.log_ok.store(true, Ordering::Relaxed);
                tracing::info!("the write-ahead log takes writes again");
            }
            Err(error) => tracing::debug!(%error, "the write-ahead log still fails"),
        }
    }
}

/// Stage two: applies a logged batch to sled, then answers its waiters and wakes its sinks.
struct Applier {
    engine: Arc<Engine>,
    metrics: StoreMetrics,
    pending: PendingClaims,
    /// Where the log stands once everything in it is applied to sled.
    applied: Arc<Mutex<Option<Position>>>,
}

impl Applier {
    fn run(self, logged: std_mpsc::Receiver<Logged>) {
        while let Ok(batch) = logged.recv() {
            self.finish(batch);
        }
    }

    fn finish(&self, logged: Logged) {
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

/// One new event as the log holds it.
struct LoggedEvent<'a> {
    id: EventId,
    expires_at_ms: u64,
    key: &'a [u8],
    queues: Vec<&'a [u8]>,
    /// Where the (compressed) envelope starts in the batch's payload, and its length.
    envelope_at: usize,
    envelope_len: u32,
}

fn encode_event(out: &mut Vec<u8>, a: &Accept) {
    out.extend_from_slice(&a.id.to_bytes());
    out.extend_from_slice(&a.claim_expires_at_ms.to_be_bytes());
    codec::put_bytes32(out, a.key.as_bytes());
    out.push(u8::try_from(a.queues.len()).unwrap_or(u8::MAX));
    for q in a.queues.iter().take(usize::from(u8::MAX)) {
        codec::put_bytes16(out, q.prefix());
    }
    codec::put_bytes32(out, &a.envelope);
}

/// A logged frame: the batch's new events, then the deliveries sinks finished meanwhile.
struct Frame<'a> {
    events: Vec<LoggedEvent<'a>>,
    /// (queue prefix, event id)
    completed: Vec<(&'a [u8], EventId)>,
}

fn encode_completed(out: &mut Vec<u8>, completed: &[Completed]) {
    let count: usize = completed.iter().map(|c| c.ids.len()).sum();
    out.extend_from_slice(&(count as u32).to_be_bytes());
    for done in completed {
        for id in &done.ids {
            codec::put_bytes16(out, &done.prefix);
            out.extend_from_slice(&id.to_bytes());
        }
    }
}

fn decode_frame(payload: &[u8]) -> Result<Frame<'_>, RecordError> {
    let mut r = Reader(payload);
    let events = decode_events(payload, &mut r)?;
    let mut completed = Vec::new();
    if !r.is_empty() {
        for _ in 0..r.u32()? {
            let prefix = r.bytes16()?;
            let id: [u8; 16] = r.take(16)?.try_into().map_err(|_| RecordError::Damaged)?;
            completed.push((prefix, EventId::from_bytes(id)));
        }
    }
    if !r.is_empty() {
        return Err(RecordError::Damaged);
    }
    Ok(Frame { events, completed })
}

fn decode_events<'a>(
    payload: &'a [u8],
    r: &mut Reader<'a>,
) -> Result<Vec<LoggedEvent<'a>>, RecordError> {
    let count = r.u32()?;
    let mut events = Vec::with_capacity(count.min(MAX_BATCH_EVENTS as u32) as usize);
    for _ in 0..count {
        let id: [u8; 16] = r.take(16)?.try_into().map_err(|_| RecordError::Damaged)?;
        let expires_at_ms = r.u64()?;
        let key = r.bytes32()?;
        let queues = (0..r.u8()?)
            .map(|_| r.bytes16())
            .collect::<Result<Vec<_>, _>>()?;
        let envelope_len = r.u32()?;
        let envelope_at = payload.len() - r.0.len();
        r.take(envelope_len as usize)?;
        events.push(LoggedEvent {
            id: EventId::from_bytes(id),
            expires_at_ms,
            key,
            queues,
            envelope_at,
            envelope_len,
        });
    }
    Ok(events)
}

/// Each event of a logged batch: its id and where its envelope is in the payload.
pub(super) fn envelopes(payload: &[u8]) -> Result<Vec<(EventId, usize, usize)>, RecordError> {
    Ok(decode_frame(payload)?
        .events
        .into_iter()
        .map(|e| (e.id, e.envelope_at, e.envelope_len as usize))
        .collect())
}

/// Brings sled up to date with logged events, whose batch payload starts at `payload_at` in the
/// log. A replay (after a crash) may meet events sled already has: it keeps newer claims and
/// does not queue again what a sink already finished.
fn apply(
    trees: &Trees,
    payload_at: Position,
    events: &[LoggedEvent<'_>],
    replaced_expiry: &[&[u8]],
    replay: bool,
) -> Result<(), StoreError> {
    // Plain inserts, not `apply_batch`: sled 0.34 runs a batch as a transaction, with a
    // process-wide lock and a log reservation per call (measured at ~40 us a call); atomicity
    // across them is the log's job (a crash replays the batch).
    for old in replaced_expiry {
        trees.dedupe_expiry.remove(*old)?;
    }
    for e in events {
        let id = e.id.to_bytes();
        let span = LogSpan {
            segment: payload_at.segment,
            offset: payload_at.offset + e.envelope_at as u64,
            len: e.envelope_len,
        };
        // The event before its queue entries: a worker that sees an entry finds its envelope.
        trees
            .events
            .insert(id, StoredEvent::encode(&e.queues, Body::Logged(span)))?;
        for prefix in &e.queues {
            let mut key = prefix.to_vec();
            key.extend_from_slice(&id);
            if replay {
                let mut done = id.to_vec();
                done.extend_from_slice(prefix);
                if trees.delivered.contains_key(&done)? || trees.dead.contains_key(&key)? {
                    continue;
                }
            }
            trees.queue.insert(key, &[codec::VERSION])?;
        }
        let claim = Claim {
            expires_at_ms: e.expires_at_ms,
            event_id: e.id.clone(),
        };
        let newer = replay
            && trees
                .dedupe
                .get(e.key)?
                .and_then(|v| Claim::decode(&v).ok())
                .is_some_and(|c| c.expires_at_ms >= e.expires_at_ms);
        if !newer {
            trees.dedupe.insert(e.key, claim.encode())?;
            trees.dedupe_expiry.insert(claim.expiry_key(e.key), &[])?;
        }
    }
    Ok(())
}

/// Replays the log past its checkpoint into sled and makes that durable; returns how many
/// batches it replayed.
pub(super) fn recover(trees: &Trees, wal_dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(wal_dir)?;
    let from = wal::read_checkpoint(wal_dir)?;
    let invalid = |e: StoreError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let batches = wal::replay(wal_dir, from, |at, payload| {
        let frame = decode_frame(payload).map_err(|e| invalid(e.into()))?;
        apply(trees, at, &frame.events, &[], true).map_err(invalid)?;
        for (prefix, id) in &frame.completed {
            let mut key = prefix.to_vec();
            key.extend_from_slice(&id.to_bytes());
            trees.queue.remove(&key).map_err(|e| invalid(e.into()))?;
            trees.attempts.remove(&key).map_err(|e| invalid(e.into()))?;
        }
        Ok(())
    })?;
    if batches > 0 {
        let sled_dir = wal_dir.parent().unwrap_or(wal_dir);
        sync_sled(&trees.db, sled_dir)?;
    }
    Ok(batches)
}

/// Every [`CHECKPOINT_EVERY`] (or when asked): if the writer applied anything since the last
/// checkpoint, flush sled and record the log position it covers. Ends when the store does.
fn checkpointer(
    engine: Arc<Engine>,
    wal_dir: PathBuf,
    applied: Arc<Mutex<Option<Position>>>,
    requests: std_mpsc::Receiver<()>,
) {
    let sled_dir = wal_dir.parent().unwrap_or(&wal_dir).to_owned();
    let mut done: Option<Position> = None;
    loop {
        let stop = matches!(
            requests.recv_timeout(CHECKPOINT_EVERY),
            Err(std_mpsc::RecvTimeoutError::Disconnected)
        );
        let _exclusive = lock(&engine.exclusive);
        // Read before the flush: the flush then covers everything applied up to here.
        let at = *lock(&applied);
        if at.is_some() && at != done && !engine.is_stuck() {
            let result = engine
                .trees()
                .map_err(std::io::Error::other)
                .and_then(|trees| sync_sled(&trees.db, &sled_dir))
                .and_then(|()| match at {
                    Some(at) => wal::write_checkpoint(&wal_dir, at),
                    None => Ok(()),
                });
            match result {
                Ok(()) => done = at,
                Err(error) => {
                    tracing::warn!(%error, "checkpoint failed; the log keeps everything since the last one")
                }
            }
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::names::{VendorName, WorkspaceId};
    use crate::event::dedupe::DedupeKey;
    use crate::event::dedupe::Identity;

    fn accept(
        key: &DedupeKey,
    ) -> (
        Accept,
        Reply,
        oneshot::Receiver<Result<Accepted, StoreError>>,
    ) {
        let (reply, answer) = oneshot::channel();
        let accept = Accept {
            key: key.clone(),
            id: EventId::generate(),
            claim_expires_at_ms: u64::MAX,
            now_ms: 0,
            envelope: record::compress(b"{}"),
            queues: Vec::new(),
        };
        (accept, reply, answer)
    }

    #[test]
    fn identical_deliveries_in_one_batch_get_one_accept_and_a_duplicate_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine {
            dir: dir.path().to_owned(),
            cache_bytes: 8 << 20,
            trees: std::sync::RwLock::new(Some(
                super::super::open_trees(dir.path(), 8 << 20).unwrap(),
            )),
            stuck: AtomicBool::new(false),
            exclusive: Mutex::new(()),
        });
        let (to_apply, logged) = std_mpsc::sync_channel(1);
        let pending: PendingClaims = Arc::default();
        let mut writer = Writer {
            engine: engine.clone(),
            unreadable: Default::default(),
            wal: Wal::open(&dir.path().join("wal"), Duration::from_secs(60)).unwrap(),
            log_ok: Arc::new(AtomicBool::new(true)),
            failed_len: 0,
            pending: pending.clone(),
            to_apply,
        };
        let applier = Applier {
            engine,
            metrics: StoreMetrics::default(),
            pending,
            applied: Arc::default(),
        };
        let identity = |value: &str| {
            Identity::implied(
                Some(value),
                None,
                &serde_json::value::RawValue::NULL.to_owned(),
            )
        };
        let (ws, vendor) = (WorkspaceId::new("acme"), VendorName::new("watsi"));
        let (same, other) = (
            DedupeKey::derive(&ws, &vendor, &identity("evt_1")).0,
            DedupeKey::derive(&ws, &vendor, &identity("evt_2")).0,
        );
        let (a, ra, first) = accept(&same);
        let (b, rb, second) = accept(&same);
        let (c, rc, third) = accept(&other);
        let first_id = a.id.clone();
        let batch = writer.log(vec![(a, ra), (b, rb), (c, rc)], &[], false);
        applier.finish(batch);
        let answer = |rx: oneshot::Receiver<Result<Accepted, StoreError>>| {
            rx.blocking_recv().unwrap().unwrap()
        };
        assert_eq!(answer(first), Accepted::New);
        assert_eq!(answer(second), Accepted::Duplicate(first_id.clone()));
        assert_eq!(answer(third), Accepted::New);
        drop(logged);

        // And in the next batch, against what the first one stored.
        let (d, rd, fourth) = accept(&same);
        let batch = writer.log(vec![(d, rd)], &[], false);
        applier.finish(batch);
        assert_eq!(answer(fourth), Accepted::Duplicate(first_id));
    }
}
