//! The log is the queue. Each sink's queue (a lane) is a read position in the write-ahead log
//! plus a small window of events it has read and not settled (in flight, waiting for a retry,
//! or settled and not yet durably recorded). Accepting an event writes nothing per queue:
//! the writer only moves the lane's `tail` (the end of the last frame holding events for it).
//! Delivering reads frames forward from `read` into the window; completing takes events out
//! of it. What a crash must not undo is described by the lane's [`Cursor`]: its read position
//! and the events behind it still owed; cursors are logged in the writer's frames, in batches.
//!
//! An event that fails is recorded in sled with its envelope (attempts, later a dead letter),
//! so once that record is synced it no longer holds the cursor, and no segment is kept for it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::frame::{self, Cursor, EventAt};
use super::lock;
use super::wal::{LogReader, Position};
use crate::base::id::EventId;

/// Every lane of the store, and where the log ends.
#[derive(Default)]
pub(super) struct Lanes {
    map: RwLock<HashMap<Vec<u8>, Arc<Slot>>>,
    /// Where the log ends: after the last frame synced.
    end: Mutex<Position>,
    /// Sled records that settle an event (attempts, dead letters) are numbered as written;
    /// `synced` is the highest number a sled sync is known to cover.
    written: AtomicU64,
    synced: AtomicU64,
}

impl Lanes {
    pub(super) fn new(lanes: HashMap<Vec<u8>, Lane>) -> Lanes {
        Lanes {
            map: RwLock::new(
                (lanes.into_iter())
                    .map(|(prefix, lane)| (prefix, Arc::new(Slot::new(lane))))
                    .collect(),
            ),
            ..Lanes::default()
        }
    }

    pub(super) fn get(&self, prefix: &[u8]) -> Option<Arc<Slot>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(prefix)
            .cloned()
    }

    /// The lane of `prefix`, made at the log's end if it has none yet.
    pub(super) fn add(&self, prefix: &[u8]) -> Arc<Slot> {
        let end = self.end();
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        (map.entry(prefix.to_vec()))
            .or_insert_with(|| Arc::new(Slot::new(Lane::new(end))))
            .clone()
    }

    pub(super) fn all(&self) -> Vec<(Vec<u8>, Arc<Slot>)> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(p, l)| (p.clone(), l.clone())).collect()
    }

    pub(super) fn end(&self) -> Position {
        *lock(&self.end)
    }

    pub(super) fn set_end(&self, end: Position) {
        *lock(&self.end) = end;
    }

    /// The writer, once a frame is written (and synced, when it holds events): the lanes its
    /// events go to have more to read (a lane seen for the first time starts at this frame),
    /// and `cursors` (the writer passes only synced ones) are durable. The end moves last, so
    /// a lane found idle never skips a frame meant for it.
    pub(super) fn logged(
        &self,
        frame: Position,
        next: Position,
        queues: &[&[u8]],
        cursors: &[(Vec<u8>, Cursor)],
    ) {
        for prefix in queues {
            let slot = match self.get(prefix) {
                Some(slot) => slot,
                None => {
                    let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
                    (map.entry(prefix.to_vec()))
                        .or_insert_with(|| Arc::new(Slot::new(Lane::new(frame))))
                        .clone()
                }
            };
            *lock(&slot.tail) = next;
        }
        self.durable(cursors);
        self.set_end(next);
    }

    /// These cursors are logged and synced: the segments before them may go.
    pub(super) fn durable(&self, cursors: &[(Vec<u8>, Cursor)]) {
        for (prefix, cursor) in cursors {
            if let Some(slot) = self.get(prefix) {
                let mut durable = lock(&slot.durable);
                *durable = (*durable).max(cursor.low());
            }
        }
    }

    /// Whether the writer has seen this queue before.
    pub(super) fn contains(&self, prefix: &[u8]) -> bool {
        (self.map.read().unwrap_or_else(|p| p.into_inner())).contains_key(prefix)
    }

    /// Numbers a sled record that settles an event.
    pub(super) fn record(&self) -> u64 {
        self.written.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// A sled sync that started once `written` records were written has finished.
    pub(super) fn synced_up_to(&self, written: u64) {
        self.synced.fetch_max(written, Ordering::Relaxed);
    }

    pub(super) fn synced(&self) -> u64 {
        self.synced.load(Ordering::Relaxed)
    }

    /// The first log position any queue may still need, by what is durably logged.
    pub(super) fn low(&self) -> Position {
        let end = self.end();
        self.all()
            .iter()
            .map(|(_, slot)| *lock(&slot.durable))
            .min()
            .unwrap_or(end)
            .min(end)
    }
}

/// A lane and what the writer moves without waiting for it: its tail and how far its logged
/// cursors reach. The writer never takes the lane itself, which a reader holds while it
/// reads the log.
pub(super) struct Slot {
    tail: Mutex<Position>,
    /// The low position of the last cursor logged and synced: segments before it may go.
    durable: Mutex<Position>,
    lane: Mutex<Lane>,
}

impl Slot {
    fn new(lane: Lane) -> Slot {
        Slot {
            tail: Mutex::new(lane.tail),
            durable: Mutex::new(lane.durable),
            lane: Mutex::new(lane),
        }
    }

    /// The lane, with its tail as the writer last left it.
    pub(super) fn lane(&self) -> std::sync::MutexGuard<'_, Lane> {
        let mut lane = lock(&self.lane);
        lane.tail = *lock(&self.tail);
        lane
    }
}

/// One sink's queue as the log holds it.
pub(super) struct Lane {
    /// Frames before it have been read into the window.
    pub read: Position,
    /// The end of the last frame holding events for this queue (a copy: [`Slot::lane`]).
    pub tail: Position,
    /// Events read and not settled, by id.
    pub window: BTreeMap<EventId, Owed>,
    /// Where its cursor stood when the store opened.
    pub durable: Position,
    /// The last cursor handed to the writer.
    pub sent: Option<Cursor>,
}

/// An event a queue still owes (or has settled, until the record saying so is synced).
pub(super) struct Owed {
    /// Where it is in the log; `None` for an event put back from sled (a replayed dead
    /// letter, or retries found at start-up), which the cursor does not need.
    pub at: Option<EventAt>,
    /// Compressed; `None` when its record could not be read (the worker dead-letters it).
    pub envelope: Option<Vec<u8>>,
    /// The delivery state its earlier attempts recorded.
    pub state: Option<Vec<u8>>,
    /// The number of the first sled record written for it (see [`Lanes::record`]).
    pub recorded: Option<u64>,
    /// Dead: kept only until its dead letter is synced.
    pub buried: bool,
}

impl Owed {
    pub(super) fn logged(at: EventAt, envelope: &[u8]) -> Owed {
        Owed {
            at: Some(at),
            envelope: Some(envelope.to_vec()),
            state: None,
            recorded: None,
            buried: false,
        }
    }

    /// Found at start-up behind a cursor logged before its dead letter was: settled, and
    /// kept only until the lane reads past it, so the lane does not read it in again.
    pub(super) fn buried_at(at: EventAt) -> Owed {
        Owed {
            at: Some(at),
            envelope: None,
            state: None,
            recorded: Some(0),
            buried: true,
        }
    }

    fn durable(&self, synced: u64) -> bool {
        self.recorded.is_some_and(|n| n <= synced)
    }
}

impl Lane {
    pub(super) fn new(at: Position) -> Lane {
        Lane {
            read: at,
            tail: at,
            window: BTreeMap::new(),
            durable: at,
            sent: None,
        }
    }

    /// Events ready to hand out from `from` on, up to `want`.
    fn ahead(&self, from: Option<&EventId>, want: usize) -> usize {
        let range = match from {
            Some(from) => self.window.range(from.clone()..),
            None => self.window.range(..),
        };
        range.filter(|(_, o)| !o.buried).take(want).count()
    }

    /// Reads frames forward until `want` events wait from `from` on, or the lane has read
    /// everything meant for it. Returns the lowest event read whose id is below `from` (a
    /// commit that landed out of id order: the worker reads again from there) and how many
    /// frames could not be read (damage: counted and logged by the caller, never skipped
    /// silently).
    pub(super) fn fill(
        &mut self,
        prefix: &[u8],
        log: &LogReader,
        from: Option<&EventId>,
        want: usize,
    ) -> io::Result<(Option<EventId>, usize)> {
        let mut lower: Option<EventId> = None;
        let mut damaged = 0;
        while self.read < self.tail && self.ahead(from, want) < want {
            let frame = match log.frame(self.read) {
                Ok(frame) => frame,
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            let Some((payload, next)) = frame else {
                // The segment ends here; its successor holds the rest.
                if self.tail.segment > self.read.segment {
                    let segment = log.next_segment(self.read.segment)?;
                    self.read = Position {
                        segment: segment.unwrap_or(self.tail.segment),
                        offset: 0,
                    };
                } else {
                    damaged += 1;
                    self.read = self.tail;
                }
                continue;
            };
            match frame::decode(&payload) {
                Ok(frame) => {
                    if let Some(index) = frame.queue_index(prefix) {
                        for (i, event) in frame.events.iter().enumerate() {
                            if !event.queues.contains(&index) || self.window.contains_key(&event.id)
                            {
                                continue;
                            }
                            if from.is_some_and(|from| event.id < *from)
                                && lower.as_ref().is_none_or(|low| event.id < *low)
                            {
                                lower = Some(event.id.clone());
                            }
                            let at = EventAt {
                                frame: self.read,
                                index: i as u32,
                            };
                            (self.window)
                                .insert(event.id.clone(), Owed::logged(at, event.envelope));
                        }
                    }
                }
                Err(_) => damaged += 1,
            }
            self.read = next;
        }
        Ok((lower, damaged))
    }

    /// What a crash must not undo of this queue, as of now. Drops what is settled and
    /// durably recorded; a lane with nothing left to read and nothing owed moves to `end`
    /// (read before the lane was taken: see [`Lanes::logged`]), so an idle queue holds no
    /// segment.
    pub(super) fn cursor(&mut self, synced: u64, end: Position) -> Cursor {
        let read = self.read;
        // A buried event the lane has not read past yet stays, so reading does not owe it again.
        self.window.retain(|_, owed| {
            !(owed.buried && owed.durable(synced) && owed.at.is_none_or(|at| at.frame < read))
        });
        if self.window.is_empty() && self.read >= self.tail {
            self.read = self.read.max(end);
        }
        let mut owed: Vec<EventAt> = (self.window.values())
            .filter(|owed| !owed.durable(synced))
            .filter_map(|owed| owed.at)
            .collect();
        owed.sort_unstable();
        Cursor {
            read: self.read,
            owed,
        }
    }

    /// The oldest event still owed in the window.
    pub(super) fn oldest(&self) -> Option<&EventId> {
        (self.window.iter())
            .find(|(_, owed)| !owed.buried)
            .map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn a_cursor_is_held_by_owed_events_until_their_records_are_synced_and_idle_lanes_move_on() {
        let mut lane = Lane::new(at(1, 0));
        lane.read = at(1, 500);
        lane.tail = at(1, 500);
        let owed = |frame, recorded| Owed {
            at: Some(EventAt {
                frame: at(1, frame),
                index: 0,
            }),
            envelope: None,
            state: None,
            recorded,
            buried: false,
        };
        let (first, second) = (EventId::generate(), EventId::generate());
        lane.window.insert(first.clone(), owed(100, Some(3)));
        lane.window.insert(second.clone(), owed(200, None));
        // Record 3 not synced yet: both hold the cursor.
        let cursor = lane.cursor(2, at(2, 0));
        assert_eq!(cursor.low(), at(1, 100));
        assert_eq!(cursor.owed.len(), 2);
        // Synced: the failed one is in sled, only the other is owed from the log.
        assert_eq!(lane.cursor(3, at(2, 0)).low(), at(1, 200));
        // Buried and synced: it leaves the window.
        lane.window.get_mut(&second).unwrap().buried = true;
        lane.window.get_mut(&second).unwrap().recorded = Some(4);
        assert_eq!(lane.cursor(4, at(2, 0)).owed, []);
        assert!(!lane.window.contains_key(&second));
        // Nothing left owed nor to read: the lane moves to the log's end.
        lane.window.clear();
        assert_eq!(lane.cursor(4, at(2, 0)).low(), at(2, 0));
        // Frames still to read keep it where it is.
        lane.tail = at(2, 900);
        assert_eq!(lane.cursor(4, at(3, 0)).low(), at(2, 0));
        assert_eq!(lane.oldest(), None);
    }
}
