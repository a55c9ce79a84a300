//! The one commit path. Requests hand their verified, mapped event to a single writer thread,
//! which takes everything waiting, decides each dedupe key against the index, the claims still
//! on their way into it and the rest of the batch, appends the batch's new events (and the
//! queue cursors that have waited their while, see [`super::gather`]) to the write-ahead log
//! with one write and one sync, and
//! answers at once: the log is the queue, so the sinks' workers read the events from it. An
//! applier thread brings the event index and sled's claims up to date behind it, and a checkpointer
//! thread flushes sled behind that and moves the log's checkpoint on.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::applier::{Applier, Logged, PendingClaims, Progress};
use super::checkpoint::checkpointer;
use super::decide::{answer, decide, Decision};
use super::engine::FreeRetired;
use super::frame::{self, Cursor};
use super::gather::{Gathered, Held, Touched, Work};
use super::index::EventIndex;
use super::lanes::Lanes;
use super::record;
use super::wal::Wal;
use super::{lock, Engine, StoreError, StoreMetrics};
use crate::store::{Accept, Accepted};

/// Batches the applier may fall behind the writer before the writer waits for it.
const APPLY_BACKLOG: usize = 64;

/// How long a clean shutdown waits for the writer to log and sync the cursors it holds.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

pub(super) struct Committer {
    sender: std_mpsc::Sender<Work>,
    checkpoint: std_mpsc::Sender<()>,
    /// How far the applier is behind the writer, for lookups that must see every event
    /// answered before them.
    pub(super) progress: Arc<Progress>,
}

impl Committer {
    pub(super) fn start(
        engine: Arc<Engine>,
        lanes: Arc<Lanes>,
        wal_dir: &Path,
        segment_age: Duration,
        log_ok: Arc<AtomicBool>,
        index: Arc<EventIndex>,
        metrics: StoreMetrics,
    ) -> std::io::Result<Committer> {
        let progress = Arc::new(Progress::default());
        let mut wal = Wal::open(wal_dir, segment_age)?;
        lanes.set_end(wal.prepare()?);
        let applied = Arc::new(Mutex::new(None));
        let pending: PendingClaims = Arc::default();
        // A std channel: the writer needs a receive with a timeout, for the cursors it holds.
        let (sender, receiver) = std_mpsc::channel();
        let (to_apply, logged) = std_mpsc::sync_channel(APPLY_BACKLOG);
        let writer = Writer {
            engine: engine.clone(),
            lanes: lanes.clone(),
            wal,
            log_ok,
            failed_len: 0,
            unsynced: Vec::new(),
            pending: pending.clone(),
            to_apply,
            progress: progress.clone(),
            metrics: metrics.clone(),
        };
        let applier = Applier {
            engine: engine.clone(),
            index,
            metrics,
            pending,
            applied: applied.clone(),
            progress: progress.clone(),
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
            .spawn(move || checkpointer(engine, lanes, wal_dir, applied, requests))?;
        Ok(Committer {
            sender,
            checkpoint,
            progress,
        })
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

    /// Logs a queue's cursor with the next frame; does not wait for it.
    pub(super) fn cursor(&self, prefix: Vec<u8>, cursor: Cursor) {
        let _ = self.sender.send(Work::Cursor(prefix, cursor));
    }

    /// Asks the writer to append an empty frame, so a log that failed is found writable
    /// again even when no request arrives.
    pub(super) fn probe(&self) {
        let _ = self.sender.send(Work::Probe);
    }

    /// Has the writer log the cursors it holds and sync those logged without a sync, and waits
    /// for it (bounded): a clean shutdown then re-delivers nothing on the next start, and a
    /// sweep weighs segments against every cursor so far.
    pub(super) fn flush(&self) {
        let (done, flushed) = std_mpsc::sync_channel(1);
        if self.sender.send(Work::Sync(done)).is_ok() {
            let _ = flushed.recv_timeout(FLUSH_WAIT);
        }
    }

    pub(super) fn checkpoint_now(&self) {
        let _ = self.checkpoint.send(());
    }
}

/// Decides dedupe for a batch, makes it durable in the log and answers.
struct Writer {
    engine: Arc<Engine>,
    lanes: Arc<Lanes>,
    wal: Wal,
    /// False from a failed append until an append or a probe at least as large succeeds;
    /// only the writer sets it.
    log_ok: Arc<AtomicBool>,
    /// The size of the append that failed, for the probes that follow.
    failed_len: usize,
    /// Cursors in frames written without a sync: durable with the next sync.
    unsynced: Vec<(Vec<u8>, Cursor)>,
    pending: PendingClaims,
    to_apply: std_mpsc::SyncSender<Logged>,
    progress: Arc<Progress>,
    metrics: StoreMetrics,
}

impl Writer {
    fn run(mut self, receiver: std_mpsc::Receiver<Work>) {
        let mut held = Held::default();
        loop {
            let first = match held.deadline() {
                Some(deadline) => {
                    receiver.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
                None => receiver
                    .recv()
                    .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
            };
            let mut gathered = Gathered::default();
            let stop = match first {
                Ok(work) => {
                    gathered.add(work);
                    gathered.take_waiting(&receiver);
                    false
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => false,
                // The store is gone: what is held is logged and synced on the way out.
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    gathered.sync = true;
                    true
                }
            };
            let Some(mut gathered) = held.hold_or_carry(gathered, Instant::now()) else {
                continue;
            };
            let started = Instant::now();
            let free = FreeRetired;
            let synced = std::mem::take(&mut gathered.synced);
            let logged = self.commit(gathered);
            drop(free);
            self.metrics
                .accept_busy
                .inc_by(started.elapsed().as_secs_f64());
            for done in synced {
                let _ = done.send(());
            }
            if let Some(logged) = logged {
                if self.to_apply.send(logged).is_err() {
                    return;
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Decides, logs and answers one batch; returns what the applier is to apply.
    fn commit(&mut self, gathered: Gathered) -> Option<Logged> {
        let Gathered {
            batch,
            mut cursors,
            probe,
            sync,
            ..
        } = gathered;
        let decisions = decide(&self.engine, &self.pending, &self.metrics, &batch);
        let fresh: Vec<&Accept> = (batch.iter().zip(&decisions))
            .filter(|(_, d)| matches!(d, Decision::New))
            .map(|((accept, _), _)| accept)
            .collect();
        if fresh.is_empty() && cursors.is_empty() {
            if sync {
                self.sync_cursors();
            }
            if probe && !self.log_ok.load(Ordering::Relaxed) {
                self.probe();
            }
            answer(batch, decisions, None);
            return None;
        }
        // Cursors alone are not worth a sync each: a crash that loses them repeats some
        // deliveries. The next frame with events (or the sweeper's sync) makes them durable.
        let synced = !fresh.is_empty();
        let written = self.wal.prepare().and_then(|start| {
            // A queue's first frame carries its first cursor, so a restart knows where it
            // starts reading.
            for q in fresh.iter().flat_map(|a| &a.queues) {
                if !self.lanes.contains(q.prefix()) {
                    (cursors.entry(q.prefix().to_vec())).or_insert_with(|| Cursor {
                        read: start,
                        owed: Vec::new(),
                    });
                }
            }
            let cursors: Vec<(Vec<u8>, Cursor)> = cursors.into_iter().collect();
            let payload = frame::encode(&fresh, &cursors);
            let (at, next) = self.wal.append(&payload, synced)?;
            Ok((payload, cursors, at, next))
        });
        let (payload, cursors, at, next) = match written {
            Ok(written) => written,
            Err(error) => {
                self.log_ok.store(false, Ordering::Relaxed);
                tracing::error!(%error, events = fresh.len(), "the write-ahead log failed; the vendors will retry");
                let failed = format!("the write-ahead log: {error}");
                answer(batch, decisions, Some(failed));
                return None;
            }
        };
        // A small frame of cursors can still fit where a batch of events did not: only a
        // write as large as the one that failed brings the log back.
        if payload.len() >= self.failed_len && !self.log_ok.swap(true, Ordering::Relaxed) {
            tracing::info!("the write-ahead log takes writes again");
        }
        let touched = Touched::of(&fresh);
        let queues: Vec<&[u8]> = touched.iter().map(|t| t.queue.prefix()).collect();
        for t in &touched {
            t.queue.counted(t.events);
        }
        if self.wal.take_lost() {
            self.unsynced.clear();
        }
        if synced {
            self.unsynced.extend(cursors.iter().cloned());
            let cursors = std::mem::take(&mut self.unsynced);
            self.lanes.logged(at, next, &queues, &cursors);
        } else {
            self.lanes.logged(at, next, &queues, &[]);
            self.unsynced.extend(cursors.iter().cloned());
            if sync {
                self.sync_cursors();
            }
        }
        {
            let mut pending = lock(&self.pending);
            for accept in &fresh {
                pending.insert(accept.key.as_bytes().to_vec(), accept.id.clone());
            }
        }
        if !fresh.is_empty() {
            self.metrics.commits.inc();
            if let Some(h) = &self.metrics.batch_events {
                h.observe(fresh.len() as f64);
            }
        }
        // Each sink's worker is woken once per frame, from its lowest new id: a wake crosses
        // to the delivery runtime's thread, so one per event cost a wake-up each.
        for t in &touched {
            t.queue.read_again_from(t.lowest);
        }
        drop(touched);
        drop(fresh);
        // Counted before the answers, so a lookup the vendor's answer leads to waits for it.
        self.progress.logged();
        answer(batch, decisions, None);
        Some(Logged { payload, at, next })
    }

    /// Makes the cursors written without a sync durable.
    fn sync_cursors(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        match self.wal.sync() {
            Ok(()) if !self.wal.take_lost() => self.lanes.durable(&self.unsynced),
            Ok(()) => {}
            Err(error) => tracing::warn!(%error, "syncing the log failed"),
        }
        self.unsynced.clear();
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
    use super::super::gather::Reply;
    use super::*;
    use crate::base::id::EventId;
    use crate::base::names::{VendorName, WorkspaceId};
    use crate::event::dedupe::{DedupeKey, Identity};

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
        let engine = Arc::new(Engine::new(
            dir.path(),
            8 << 20,
            super::super::open_trees(dir.path(), 8 << 20).unwrap(),
        ));
        let (to_apply, logged) = std_mpsc::sync_channel(APPLY_BACKLOG);
        let pending: PendingClaims = Arc::default();
        let mut writer = Writer {
            engine: engine.clone(),
            lanes: Arc::default(),
            wal: Wal::open(&dir.path().join("wal"), Duration::from_secs(60)).unwrap(),
            log_ok: Arc::new(AtomicBool::new(true)),
            failed_len: 0,
            unsynced: Vec::new(),
            pending: pending.clone(),
            to_apply,
            progress: Arc::default(),
            metrics: StoreMetrics::default(),
        };
        let applier = Applier {
            engine,
            index: Arc::new(EventIndex::open(&dir.path().join("wal")).unwrap()),
            metrics: StoreMetrics::default(),
            pending,
            applied: Arc::default(),
            progress: Arc::default(),
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
        let batch = Gathered {
            batch: vec![(a, ra), (b, rb), (c, rc)],
            ..Gathered::default()
        };
        // Answered once logged, before sled has it.
        let logged_batch = writer.commit(batch).unwrap();
        let answer = |rx: oneshot::Receiver<Result<Accepted, StoreError>>| {
            rx.blocking_recv().unwrap().unwrap()
        };
        assert_eq!(answer(first), Accepted::New);
        assert_eq!(answer(second), Accepted::Duplicate(first_id.clone()));
        assert_eq!(answer(third), Accepted::New);

        // The next batch, while the first is still on its way into sled: a claim in flight.
        let (d, rd, fourth) = accept(&same);
        let next = Gathered {
            batch: vec![(d, rd)],
            ..Gathered::default()
        };
        assert!(writer.commit(next).is_none());
        assert_eq!(answer(fourth), Accepted::Duplicate(first_id.clone()));

        // And once it is applied, against what sled holds.
        applier.apply(logged_batch);
        let (e, re, fifth) = accept(&same);
        let last = Gathered {
            batch: vec![(e, re)],
            ..Gathered::default()
        };
        assert!(writer.commit(last).is_none());
        assert_eq!(answer(fifth), Accepted::Duplicate(first_id));
        drop(logged);
    }
}
