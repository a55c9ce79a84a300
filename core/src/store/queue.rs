//! One sink's queue as the delivery worker and the operator see it: its names, its counters
//! (kept in memory, so status pages cost nothing) and the signal that wakes its worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::lock;
use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};

/// One sink's queue: its names, its counters (kept in memory) and the signal that wakes its
/// delivery worker.
#[derive(Clone)]
pub struct SinkQueue(pub(super) Arc<QueueState>);

pub(super) struct QueueState {
    pub(super) workspace: WorkspaceId,
    pub(super) sink: SinkName,
    pub(super) prefix: Vec<u8>,
    pub(super) depth: AtomicU64,
    pub(super) dead: AtomicU64,
    pub(super) in_flight: AtomicU64,
    /// When the oldest event still owed was accepted (ms since the epoch; 0: none), where the
    /// store keeps it rather than reads it (cluster mode).
    pub(super) oldest_ms: AtomicU64,
    pub(super) wake: Notify,
    /// The lowest id added since the worker last looked: commits can land out of id order,
    /// and a replay puts back an old id, so the worker rescans from here.
    pub(super) added_min: Mutex<Option<EventId>>,
    /// Held by the delivery worker reading the queue, so that one reads it at a time.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl SinkQueue {
    pub(super) fn new(
        workspace: &WorkspaceId,
        sink: &SinkName,
        depth: u64,
        dead: u64,
    ) -> SinkQueue {
        SinkQueue(Arc::new(QueueState {
            workspace: workspace.clone(),
            sink: sink.clone(),
            prefix: queue_prefix(workspace, sink),
            depth: AtomicU64::new(depth),
            dead: AtomicU64::new(dead),
            in_flight: AtomicU64::new(0),
            oldest_ms: AtomicU64::new(0),
            wake: Notify::new(),
            added_min: Mutex::new(None),
            turn: Arc::default(),
        }))
    }

    pub fn workspace(&self) -> &WorkspaceId {
        &self.0.workspace
    }

    pub fn sink(&self) -> &SinkName {
        &self.0.sink
    }

    /// Events the sink still owes (in flight included).
    pub fn depth(&self) -> u64 {
        self.0.depth.load(Ordering::Relaxed)
    }

    pub fn dead(&self) -> u64 {
        self.0.dead.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u64 {
        self.0.in_flight.load(Ordering::Relaxed)
    }

    /// The delivery worker counts what it has handed to the sink and not yet settled.
    pub fn set_in_flight(&self, n: u64) {
        self.0.in_flight.store(n, Ordering::Relaxed);
    }

    /// Waits until no other delivery worker reads this queue, and holds it for the caller
    /// until the guard drops: a reload's new worker starts where the old one finished.
    pub async fn take_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.0.turn.clone().lock_owned().await
    }

    /// Resolves once the queue has new entries (or already had them since the last wait).
    pub async fn changed(&self) {
        self.0.wake.notified().await;
    }

    /// Takes the lowest id added to the queue since the last call.
    pub fn take_added_min(&self) -> Option<EventId> {
        lock(&self.0.added_min).take()
    }

    /// Records an added entry and wakes the worker.
    pub(super) fn added(&self, id: &EventId) {
        {
            let mut min = lock(&self.0.added_min);
            if min.as_ref().is_none_or(|m| id < m) {
                *min = Some(id.clone());
            }
        }
        self.0.depth.fetch_add(1, Ordering::Relaxed);
        self.0.wake.notify_one();
    }

    /// Counts entries the worker can see from now on; counted before they can be delivered,
    /// so a fast delivery never settles an entry not yet counted.
    pub(super) fn counted(&self, entries: u64) {
        self.0.depth.fetch_add(entries, Ordering::Relaxed);
    }

    /// Makes the worker read its queue again from `id` (a new entry, or one found behind
    /// where it reads: a commit that landed out of id order), and wakes it.
    pub(super) fn read_again_from(&self, id: &EventId) {
        {
            let mut min = lock(&self.0.added_min);
            if min.as_ref().is_none_or(|m| id < m) {
                *min = Some(id.clone());
            }
        }
        self.0.wake.notify_one();
    }

    pub(super) fn key(&self, id: &EventId) -> Vec<u8> {
        let mut key = self.0.prefix.clone();
        key.extend_from_slice(&id.to_bytes());
        key
    }

    pub(super) fn prefix(&self) -> &[u8] {
        &self.0.prefix
    }

    pub(super) fn event_id(&self, key: &[u8]) -> Option<EventId> {
        let id: [u8; 16] = key.get(self.0.prefix.len()..)?.try_into().ok()?;
        Some(EventId::from_bytes(id))
    }
}

/// Names never contain '/' or NUL (config validates them), so prefixes cannot overlap.
pub(super) fn queue_prefix(workspace: &WorkspaceId, sink: &SinkName) -> Vec<u8> {
    format!("{workspace}/{sink}\0").into_bytes()
}
