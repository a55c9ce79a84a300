//! What the commit writer is handed and how it gathers a batch: requests to accept, queue
//! cursors, probes and syncs; and the sink queues a batch's new events go to ([`Touched`]).
//! Cursors wait here a short while instead of riding every frame: each costs log bytes and a
//! sled insert, and while sinks keep pace every completion batch moves one. A frame of events
//! carries them once they have waited [`CARRY_CURSORS`]; with no events, they get a frame of
//! their own after [`HOLD_CURSORS`].

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::frame::{Cursor, MAX_BATCH_EVENTS};
use super::StoreError;
use crate::base::id::EventId;
use crate::store::{Accept, Accepted, SinkQueue};

/// A batch stops growing here, so one huge burst does not delay its first waiters for long.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// How long cursors wait for a frame of events to carry them. A crash (not a power cut: these
/// frames are not synced anyway) re-delivers at most this long's completions once more.
pub(super) const HOLD_CURSORS: Duration = Duration::from_millis(100);

/// How long cursors wait for a frame of events to carry them. Under load a frame is written
/// every fraction of a millisecond; carried by each, the cursors took about 90 bytes of log
/// per event (two sinks, `switchyard-bench growth`), more than the event's own fields.
pub(super) const CARRY_CURSORS: Duration = Duration::from_millis(10);

/// Where a request's answer goes.
pub(super) type Reply = oneshot::Sender<Result<Accepted, StoreError>>;

/// What the writer is handed.
pub(super) enum Work {
    Accept(Accept, Reply),
    /// A queue's cursor, logged with the next frame (the latest one per queue wins).
    Cursor(Vec<u8>, Cursor),
    /// Write an empty frame: tells whether the log takes writes again with no traffic.
    Probe,
    /// Log the cursors held back and sync every cursor written without a sync, so the
    /// segments they free can go; answered on the sender once done.
    Sync(std_mpsc::SyncSender<()>),
}

/// One batch as the writer gathered it.
#[derive(Default)]
pub(super) struct Gathered {
    pub batch: Vec<(Accept, Reply)>,
    pub cursors: HashMap<Vec<u8>, Cursor>,
    pub probe: bool,
    pub sync: bool,
    /// Who waits for the sync.
    pub synced: Vec<std_mpsc::SyncSender<()>>,
    pub bytes: usize,
}

impl Gathered {
    pub fn add(&mut self, work: Work) {
        match work {
            Work::Accept(accept, reply) => {
                self.bytes += accept.envelope.len();
                self.batch.push((accept, reply));
            }
            Work::Cursor(prefix, cursor) => {
                self.cursors.insert(prefix, cursor);
            }
            Work::Probe => self.probe = true,
            Work::Sync(done) => {
                self.sync = true;
                self.synced.push(done);
            }
        }
    }

    fn full(&self) -> bool {
        self.batch.len() >= MAX_BATCH_EVENTS || self.bytes >= MAX_BATCH_BYTES
    }

    pub fn take_waiting(&mut self, receiver: &std_mpsc::Receiver<Work>) {
        while !self.full() {
            match receiver.try_recv() {
                Ok(work) => self.add(work),
                Err(_) => return,
            }
        }
    }

    /// Only cursors: nothing that a frame must be written for now.
    fn cursors_only(&self) -> bool {
        self.batch.is_empty() && !self.probe && !self.sync
    }
}

/// Cursors held back for the next frame, and since when.
#[derive(Default)]
pub(super) struct Held {
    cursors: HashMap<Vec<u8>, Cursor>,
    since: Option<Instant>,
}

impl Held {
    /// When the cursors held must be written even with no events to carry them.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + HOLD_CURSORS)
    }

    /// Keeps a batch's cursors back while their time allows, and the batch too when it has
    /// nothing else; otherwise hands back the batch to write, carrying every cursor held (a
    /// newer cursor of a queue replaces the one held).
    pub fn hold_or_carry(&mut self, mut gathered: Gathered, now: Instant) -> Option<Gathered> {
        let waited = |after: Duration| self.since.is_some_and(|since| since + after <= now);
        let carry = match gathered.cursors_only() {
            true => waited(HOLD_CURSORS),
            false => gathered.sync || gathered.probe || waited(CARRY_CURSORS),
        };
        if !carry {
            if !gathered.cursors.is_empty() {
                self.since.get_or_insert(now);
                self.cursors.extend(gathered.cursors.drain());
            }
            return (!gathered.cursors_only()).then_some(gathered);
        }
        self.since = None;
        for (prefix, cursor) in self.cursors.drain() {
            gathered.cursors.entry(prefix).or_insert(cursor);
        }
        Some(gathered)
    }
}

/// A sink queue a frame's new events go to: how many, and the lowest id among them.
pub(super) struct Touched<'a> {
    pub queue: &'a SinkQueue,
    pub events: u64,
    pub lowest: &'a EventId,
}

impl<'a> Touched<'a> {
    /// Each queue of `fresh` once, in prefix order.
    pub fn of(fresh: &[&'a Accept]) -> Vec<Touched<'a>> {
        let mut touched: Vec<Touched<'a>> = Vec::new();
        for accept in fresh {
            for queue in &accept.queues {
                // A handful of sinks per workspace: a scan beats a map here.
                match touched
                    .iter_mut()
                    .find(|t| t.queue.prefix() == queue.prefix())
                {
                    Some(t) => {
                        t.events += 1;
                        t.lowest = t.lowest.min(&accept.id);
                    }
                    None => touched.push(Touched {
                        queue,
                        events: 1,
                        lowest: &accept.id,
                    }),
                }
            }
        }
        touched.sort_unstable_by(|a, b| a.queue.prefix().cmp(b.queue.prefix()));
        touched
    }
}

#[cfg(test)]
mod tests {
    use super::super::wal::Position;
    use super::*;
    use crate::base::names::{VendorName, WorkspaceId};
    use crate::event::dedupe::{DedupeKey, Identity};
    use serde_json::value::RawValue;

    fn cursor(offset: u64) -> Cursor {
        Cursor {
            read: Position { segment: 1, offset },
            owed: Vec::new(),
        }
    }

    fn cursors(list: &[(&str, u64)]) -> Gathered {
        let mut gathered = Gathered::default();
        for (prefix, offset) in list {
            gathered.add(Work::Cursor(prefix.as_bytes().to_vec(), cursor(*offset)));
        }
        gathered
    }

    #[test]
    fn cursors_alone_wait_until_due_or_a_frame_carries_them_and_the_newest_wins() {
        let mut held = Held::default();
        let start = Instant::now();
        assert!(held.deadline().is_none());
        assert!(held
            .hold_or_carry(cursors(&[("a", 1), ("b", 1)]), start)
            .is_none());
        assert!(held.hold_or_carry(cursors(&[("a", 2)]), start).is_none());
        assert_eq!(held.deadline(), Some(start + HOLD_CURSORS));

        // A sync carries them, with the newer cursor of a queue handed in over the held one.
        let mut sync = cursors(&[("b", 5)]);
        let (done, _synced) = std_mpsc::sync_channel(1);
        sync.add(Work::Sync(done));
        let carried = held.hold_or_carry(sync, start).unwrap();
        assert_eq!(carried.cursors[b"a".as_slice()], cursor(2));
        assert_eq!(carried.cursors[b"b".as_slice()], cursor(5));
        assert!(held.deadline().is_none());

        // Once due, cursors alone are written too.
        assert!(held.hold_or_carry(cursors(&[("a", 3)]), start).is_none());
        let due = start + HOLD_CURSORS;
        let carried = held.hold_or_carry(Gathered::default(), due).unwrap();
        assert_eq!(carried.cursors[b"a".as_slice()], cursor(3));
        assert!(held.deadline().is_none());
        assert!(held.hold_or_carry(Gathered::default(), due).is_none());
    }

    fn events(list: &[(&str, u64)]) -> Gathered {
        let mut gathered = cursors(list);
        let (reply, _) = oneshot::channel();
        let identity = Identity::implied(Some("evt_1"), None, &RawValue::NULL.to_owned());
        let (ws, vendor) = (WorkspaceId::new("acme"), VendorName::new("watsi"));
        let accept = Accept {
            key: DedupeKey::derive(&ws, &vendor, &identity).0,
            id: EventId::generate(),
            claim_expires_at_ms: u64::MAX,
            now_ms: 0,
            envelope: b"{}".to_vec(),
            queues: Vec::new(),
        };
        gathered.batch.push((accept, reply));
        gathered
    }

    #[test]
    fn a_frame_of_events_carries_the_cursors_only_once_they_have_waited() {
        let mut held = Held::default();
        let start = Instant::now();
        // Too soon: the events go alone, their cursors are held.
        let first = held.hold_or_carry(events(&[("a", 1)]), start).unwrap();
        assert_eq!(first.batch.len(), 1);
        assert!(first.cursors.is_empty());
        let soon = start + CARRY_CURSORS / 2;
        let second = held.hold_or_carry(events(&[("b", 2)]), soon).unwrap();
        assert!(second.cursors.is_empty());

        // Waited long enough: the next frame of events carries every one, the newest of each.
        let later = start + CARRY_CURSORS;
        let third = held.hold_or_carry(events(&[("a", 3)]), later).unwrap();
        assert_eq!(third.cursors.len(), 2);
        assert_eq!(third.cursors[b"a".as_slice()], cursor(3));
        assert_eq!(third.cursors[b"b".as_slice()], cursor(2));
        assert!(held.deadline().is_none());
    }
}
