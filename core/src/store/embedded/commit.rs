//! The one commit path. Requests hand their verified, mapped event to a single writer thread,
//! which takes everything waiting, decides each dedupe key against the index, the claims still
//! on their way into it and the rest of the batch, and appends the batch's new events to the
//! write-ahead log with one write and one sync. An applier thread then applies the batch to
//! sled and only then answers every waiter and wakes the sinks' workers, while the writer
//! already syncs the next batch. A checkpointer thread flushes sled behind them and moves the
//! log's checkpoint on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::applier::{Applier, Decision, Logged, PendingClaims, Reply};
use super::checkpoint::checkpointer;
use super::frame::{encode_completed, encode_event, Completed, MAX_BATCH_EVENTS};
use super::record::{self, Claim};
use super::wal::Wal;
use super::{lock, Engine, StoreError, StoreMetrics};
use crate::store::{Accept, Accepted};

/// A batch stops growing here, so one huge burst does not delay its first waiters for long.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What the writer is handed: an event to keep, or deliveries a sink finished, logged so
/// that a crash does not undo them (each one undone is one more delivery).
enum Work {
    Accept(Accept, Reply),
    Completed(Completed),
    /// Write an empty frame: tells whether the log takes writes again with no traffic.
    Probe,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::EventId;
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
