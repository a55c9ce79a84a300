//! The one commit path. Requests hand their verified, mapped event to a single writer thread,
//! which takes everything waiting, decides each dedupe key against the index and the rest of
//! the batch, appends the batch's new events to the write-ahead log with one write and one
//! sync, applies them to sled, and only then answers every waiter and wakes the sinks'
//! workers. A checkpointer thread flushes sled behind it and moves the log's checkpoint on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::record::{self, Claim, Reader, RecordError, StoredEvent};
use super::wal::{self, Position, Wal};
use super::{lock, sync_sled, SinkQueue, StoreError, StoreMetrics, Trees};
use crate::dedupe::DedupeKey;
use crate::envelope::EventId;

/// A batch stops growing here, so one huge burst does not delay its first waiters for long.
const MAX_BATCH_EVENTS: usize = 4096;
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// How often sled is flushed and the log's checkpoint moved on while there is traffic.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A verified, mapped event to keep.
pub struct Accept {
    pub key: DedupeKey,
    /// The id it gets if it is new.
    pub id: EventId,
    /// When its dedupe claim ends (ms since the Unix epoch).
    pub claim_expires_at_ms: u64,
    /// Now, in ms since the Unix epoch: claims that ended before it are free again.
    pub now_ms: u64,
    pub envelope: Vec<u8>,
    /// The sinks it is routed to; empty keeps it for lookup only (unrouted).
    pub queues: Vec<SinkQueue>,
}

/// The first-seen decision, made durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    New,
    /// Seen inside the window; the first delivery's event id.
    Duplicate(EventId),
}

type Reply = oneshot::Sender<Result<Accepted, StoreError>>;

pub(super) struct Committer {
    sender: mpsc::UnboundedSender<(Accept, Reply)>,
    checkpoint: std_mpsc::Sender<()>,
}

impl Committer {
    pub(super) fn start(
        trees: Trees,
        wal_dir: &Path,
        healthy: Arc<AtomicBool>,
        metrics: StoreMetrics,
    ) -> std::io::Result<Committer> {
        let wal = Wal::open(wal_dir)?;
        let applied = Arc::new(Mutex::new(None));
        let (sender, receiver) = mpsc::unbounded_channel();
        let writer = Writer {
            trees: trees.clone(),
            wal,
            healthy,
            metrics,
            applied: applied.clone(),
        };
        std::thread::Builder::new()
            .name("switchyard-commit".into())
            .spawn(move || writer.run(receiver))?;
        let (checkpoint, requests) = std_mpsc::channel();
        let wal_dir = wal_dir.to_owned();
        std::thread::Builder::new()
            .name("switchyard-checkpoint".into())
            .spawn(move || checkpointer(trees, wal_dir, applied, requests))?;
        Ok(Committer { sender, checkpoint })
    }

    pub(super) async fn accept(&self, accept: Accept) -> Result<Accepted, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Write("the commit writer has stopped".into());
        self.sender.send((accept, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(super) fn checkpoint_now(&self) {
        let _ = self.checkpoint.send(());
    }
}

struct Writer {
    trees: Trees,
    wal: Wal,
    healthy: Arc<AtomicBool>,
    metrics: StoreMetrics,
    /// Where the log stands once everything in it is applied to sled.
    applied: Arc<Mutex<Option<Position>>>,
}

/// What the writer decided for one request of a batch.
enum Decision {
    New,
    /// A copy of the batch's event at this index.
    RepeatInBatch(usize),
    /// Claimed by an earlier, already durable event.
    Seen(EventId),
    Failed(StoreError),
}

/// A new event of the batch being committed, and the claim it replaces (expired) if any.
struct Fresh {
    index: usize,
    replaced_expiry: Option<Vec<u8>>,
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::UnboundedReceiver<(Accept, Reply)>) {
        while let Some(first) = receiver.blocking_recv() {
            let mut bytes = first.0.envelope.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES {
                match receiver.try_recv() {
                    Ok(next) => {
                        bytes += next.0.envelope.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<(Accept, Reply)>) {
        let mut decisions: Vec<Decision> = Vec::with_capacity(batch.len());
        let mut fresh: Vec<Fresh> = Vec::new();
        // Keys claimed earlier in this batch: a second copy is a duplicate of the first.
        let mut claimed: HashMap<&[u8], usize> = HashMap::new();
        for (index, (accept, _)) in batch.iter().enumerate() {
            let key = accept.key.as_bytes();
            if let Some(&first) = claimed.get(key) {
                decisions.push(Decision::RepeatInBatch(first));
                continue;
            }
            let existing = match self.trees.dedupe.get(key) {
                Ok(existing) => existing,
                Err(e) => {
                    decisions.push(Decision::Failed(e.into()));
                    continue;
                }
            };
            let replaced_expiry = match existing.as_deref().map(Claim::decode) {
                Some(Ok(claim)) if claim.expires_at_ms > accept.now_ms => {
                    decisions.push(Decision::Seen(claim.event_id));
                    continue;
                }
                Some(Ok(expired)) => Some(expired.expiry_key(key)),
                Some(Err(error)) => {
                    tracing::error!(dedupe_key = %accept.key, %error, "dedupe entry unreadable; the key is claimed anew");
                    None
                }
                None => None,
            };
            claimed.insert(key, index);
            fresh.push(Fresh {
                index,
                replaced_expiry,
            });
            decisions.push(Decision::New);
        }
        let written = if fresh.is_empty() {
            Ok(())
        } else {
            self.write(&batch, &fresh)
        };
        match &written {
            Ok(()) if !fresh.is_empty() => {
                self.healthy.store(true, Ordering::Relaxed);
                self.metrics.commits.inc();
                if let Some(h) = &self.metrics.batch_events {
                    h.observe(fresh.len() as f64);
                }
            }
            Ok(()) => {}
            Err(error) => {
                self.healthy.store(false, Ordering::Relaxed);
                tracing::error!(%error, events = fresh.len(), "commit failed; the vendors will retry");
            }
        }
        let ids: Vec<EventId> = batch.iter().map(|(a, _)| a.id.clone()).collect();
        for ((accept, reply), decision) in batch.into_iter().zip(decisions) {
            let answer = match (decision, &written) {
                (Decision::Seen(first), _) => Ok(Accepted::Duplicate(first)),
                (Decision::Failed(error), _) => Err(error),
                (Decision::New | Decision::RepeatInBatch(_), Err(error)) => {
                    Err(StoreError::Write(error.to_string()))
                }
                (Decision::RepeatInBatch(first), Ok(())) => {
                    Ok(Accepted::Duplicate(ids[first].clone()))
                }
                (Decision::New, Ok(())) => {
                    for queue in &accept.queues {
                        queue.0.depth.fetch_add(1, Ordering::Relaxed);
                        queue.wake();
                    }
                    Ok(Accepted::New)
                }
            };
            // A waiter that went away (its client disconnected) is fine: its event is kept.
            let _ = reply.send(answer);
        }
    }

    /// Logs the new events (one write, one sync), then applies them to sled.
    fn write(&mut self, batch: &[(Accept, Reply)], fresh: &[Fresh]) -> Result<(), StoreError> {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(fresh.len() as u32).to_be_bytes());
        for f in fresh {
            encode_event(&mut payload, &batch[f.index].0);
        }
        let end = self
            .wal
            .append(&payload)
            .map_err(|e| StoreError::Write(format!("the write-ahead log: {e}")))?;
        let events = decode_batch(&payload)?;
        let replaced: Vec<&[u8]> = fresh
            .iter()
            .filter_map(|f| f.replaced_expiry.as_deref())
            .collect();
        apply(&self.trees, &events, &replaced, false)?;
        *lock(&self.applied) = Some(end);
        Ok(())
    }
}

/// One new event as the log holds it.
struct LoggedEvent<'a> {
    id: EventId,
    expires_at_ms: u64,
    key: &'a [u8],
    queues: Vec<&'a [u8]>,
    envelope: &'a [u8],
}

fn encode_event(out: &mut Vec<u8>, a: &Accept) {
    out.extend_from_slice(&a.id.to_bytes());
    out.extend_from_slice(&a.claim_expires_at_ms.to_be_bytes());
    record::put_bytes32(out, a.key.as_bytes());
    out.push(u8::try_from(a.queues.len()).unwrap_or(u8::MAX));
    for q in a.queues.iter().take(usize::from(u8::MAX)) {
        record::put_bytes16(out, q.prefix());
    }
    record::put_bytes32(out, &a.envelope);
}

fn decode_batch(payload: &[u8]) -> Result<Vec<LoggedEvent<'_>>, RecordError> {
    let mut r = Reader(payload);
    let count = r.u32()?;
    let mut events = Vec::with_capacity(count.min(MAX_BATCH_EVENTS as u32) as usize);
    for _ in 0..count {
        let id: [u8; 16] = r.take(16)?.try_into().map_err(|_| RecordError::Damaged)?;
        let expires_at_ms = r.u64()?;
        let key = r.bytes32()?;
        let queues = (0..r.u8()?)
            .map(|_| r.bytes16())
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = r.bytes32()?;
        events.push(LoggedEvent {
            id: EventId::from_bytes(id),
            expires_at_ms,
            key,
            queues,
            envelope,
        });
    }
    if !r.is_empty() {
        return Err(RecordError::Damaged);
    }
    Ok(events)
}

/// Brings sled up to date with logged events. A replay (after a crash) may meet events sled
/// already has: it keeps newer claims and does not queue again what a sink already finished.
fn apply(
    trees: &Trees,
    events: &[LoggedEvent<'_>],
    replaced_expiry: &[&[u8]],
    replay: bool,
) -> Result<(), StoreError> {
    let mut dedupe = sled::Batch::default();
    let mut expiry = sled::Batch::default();
    let mut kept = sled::Batch::default();
    let mut queued = sled::Batch::default();
    for old in replaced_expiry {
        expiry.remove(*old);
    }
    for e in events {
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
            dedupe.insert(e.key, claim.encode());
            expiry.insert(claim.expiry_key(e.key), &[]);
        }
        let id = e.id.to_bytes();
        kept.insert(&id, StoredEvent::encode(&e.queues, e.envelope));
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
            queued.insert(key, &[record::VERSION]);
        }
    }
    // The event before its queue entries: a worker that sees an entry finds its envelope.
    trees.events.apply_batch(kept)?;
    trees.queue.apply_batch(queued)?;
    trees.dedupe.apply_batch(dedupe)?;
    trees.dedupe_expiry.apply_batch(expiry)?;
    Ok(())
}

/// Replays the log past its checkpoint into sled and makes that durable; returns how many
/// batches it replayed.
pub(super) fn recover(trees: &Trees, wal_dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(wal_dir)?;
    let from = wal::read_checkpoint(wal_dir)?;
    let invalid = |e: StoreError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let batches = wal::replay(wal_dir, from, |payload| {
        let events = decode_batch(payload).map_err(|e| invalid(e.into()))?;
        apply(trees, &events, &[], true).map_err(invalid)
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
    trees: Trees,
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
        // Read before the flush: the flush then covers everything applied up to here.
        let at = *lock(&applied);
        if at.is_some() && at != done {
            let result = sync_sled(&trees.db, &sled_dir).and_then(|()| match at {
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
