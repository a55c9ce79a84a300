//! The event index, beside the log: for each log segment, one file mapping every event id in
//! it to its entry (the queues it went to, where its envelope is, the fields search filters
//! on). The applier appends a frame's entries as it applies the frame; when the log moves to
//! another segment the file is sealed with a sorted table ([`file`]); it is deleted with its
//! segment. So the index costs sled nothing per event, and what retention frees is given
//! back to the disk with the segment.
//!
//! The files are derived from the log: at start-up a segment whose file is missing, not
//! sealed or damaged is indexed again from its frames. An event that failed and is still held
//! (attempts, a dead letter) when its segment goes has its entry carried into sled's `events`
//! tree, which lookups and scans read as well ([`merge`]).

mod file;
mod merge;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::frame::{self, Frame};
use super::record::{LogSpan, StoredEvent};
use super::search;
use super::wal::{self, Position, FRAME_HEADER};
use crate::store::StoreError;
pub use file::{path, Id};
use file::{Sealed, Writing};
pub use merge::Scan;

pub struct EventIndex {
    wal_dir: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    sealed: BTreeMap<u64, Arc<Sealed>>,
    writing: Option<Writing>,
}

impl EventIndex {
    /// The index of every segment in `wal_dir`, each segment without a sealed file indexed
    /// again from its frames (the log's writer starts a new segment at every open, so every
    /// existing one is complete). Files of segments that are gone are deleted.
    pub fn open(wal_dir: &Path) -> io::Result<EventIndex> {
        let segments = wal::segments(wal_dir)?;
        for stray in wal::numbered(wal_dir, file::SUFFIX)? {
            if segments.binary_search(&stray).is_err() {
                file::remove(wal_dir, stray)?;
            }
        }
        let mut sealed = BTreeMap::new();
        let mut indexed = 0;
        for segment in segments {
            let found = match Sealed::open(wal_dir, segment)? {
                Some(found) => Some(found),
                None => {
                    indexed += 1;
                    index_segment(wal_dir, segment)?
                }
            };
            if let Some(found) = found {
                sealed.insert(segment, Arc::new(found));
            }
        }
        if indexed > 0 {
            tracing::info!(segments = indexed, "log segments indexed again");
        }
        Ok(EventIndex {
            wal_dir: wal_dir.to_owned(),
            inner: Arc::new(Mutex::new(Inner {
                sealed,
                writing: None,
            })),
        })
    }

    /// Adds the entries of the frame logged at `at`, sealing the previous segment's file first
    /// when the log has moved on.
    pub fn append(&self, at: Position, frame: &Frame<'_>) -> io::Result<()> {
        if frame.events.is_empty() {
            return Ok(());
        }
        let entries = entries(at, frame);
        let mut inner = super::lock(&self.inner);
        if inner.sealed.contains_key(&at.segment) {
            // Sealed at a shutdown that did not wait for this frame: the file goes, so the
            // next start indexes the whole segment again.
            inner.sealed.remove(&at.segment);
            return file::remove(&self.wal_dir, at.segment);
        }
        if inner
            .writing
            .as_ref()
            .is_none_or(|w| w.segment != at.segment)
        {
            inner.seal()?;
            inner.writing = Some(Writing::create(&self.wal_dir, at.segment)?);
        }
        match inner.writing.as_mut() {
            Some(writing) => writing.append(&entries),
            None => Ok(()),
        }
    }

    /// Seals the file of the segment being written: at a clean shutdown, since the next start
    /// writes to a new segment.
    pub fn seal(&self) -> io::Result<()> {
        super::lock(&self.inner).seal()
    }

    /// An event's entry, wherever its segment's index is.
    pub fn get(&self, id: &Id) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed: Vec<Arc<Sealed>> = {
            let inner = super::lock(&self.inner);
            let writing = inner.writing.as_ref().map(|w| w.get(id));
            if let Some(found) = writing.transpose().map_err(unreadable)?.flatten() {
                return Ok(Some(found));
            }
            (inner.sealed.values().rev())
                .filter(|s| s.min <= *id && *id <= s.max)
                .cloned()
                .collect()
        };
        for index in sealed {
            if let Some(found) = index.get(id).map_err(unreadable)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The entries with ids in `low..high` (no upper bound with `None`), merged with sled's
    /// rows of the same range added by [`Scan::tree`]. Each segment is read only once the
    /// walk reaches its ids, a chunk of rows at a time.
    pub fn scan(&self, low: &Id, high: Option<&Id>, newest_first: bool) -> Scan {
        let high = high.copied().unwrap_or([0xff; 16]);
        let inner = super::lock(&self.inner);
        let sealed = (inner.sealed.iter()).map(|(segment, s)| (*segment, (s.min, s.max)));
        let writing = (inner.writing.as_ref()).and_then(|w| Some((w.segment, w.bounds()?)));
        let segments = sealed
            .chain(writing)
            .filter(|(_, (min, max))| max >= low && min < &high)
            .collect();
        Scan::new(self.inner.clone(), segments, (*low, high), newest_first)
    }

    /// The entry of each of `ids` that the segment's index holds.
    pub fn find_in(&self, segment: u64, ids: &[Id]) -> Result<Vec<(Id, Vec<u8>)>, StoreError> {
        let Some(sealed) = super::lock(&self.inner).sealed.get(&segment).cloned() else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for id in ids {
            if let Some(value) = sealed.get(id).map_err(unreadable)? {
                found.push((*id, value));
            }
        }
        Ok(found)
    }

    /// Deletes a retired segment's index.
    pub fn retire(&self, segment: u64) -> io::Result<()> {
        let mut inner = super::lock(&self.inner);
        inner.sealed.remove(&segment);
        // The log moved on with frames that carried no event: nothing more comes here.
        if inner.writing.as_ref().is_some_and(|w| w.segment == segment) {
            inner.writing = None;
        }
        drop(inner);
        file::remove(&self.wal_dir, segment)
    }

    /// Entries in every segment's index.
    pub fn len(&self) -> u64 {
        let inner = super::lock(&self.inner);
        let sealed: u64 = inner.sealed.values().map(|s| s.count).sum();
        sealed + inner.writing.as_ref().map_or(0, Writing::len)
    }
}

impl Inner {
    fn seal(&mut self) -> io::Result<()> {
        if let Some(done) = self.writing.take() {
            let segment = done.segment;
            if let Some(sealed) = done.seal()? {
                self.sealed.insert(segment, Arc::new(sealed));
            }
        }
        Ok(())
    }
}

/// Every entry of a segment's sealed index, and the file deleted (for a salvaged segment,
/// which the next start indexes again); none when it has no sealed index.
pub fn take(wal_dir: &Path, segment: u64) -> io::Result<Vec<(Id, Vec<u8>)>> {
    let mut entries = Vec::new();
    if let Some(sealed) = Sealed::open(wal_dir, segment)? {
        for (id, offset) in sealed.rows(0, sealed.count)? {
            entries.push((id, file::read_entry(sealed.file(), offset)?));
        }
    }
    file::remove(wal_dir, segment)?;
    Ok(entries)
}

/// A failed read of the index files, as the store reports it.
fn unreadable(error: io::Error) -> StoreError {
    StoreError::Read(format!("the event index (wal/*.idx): {error}"))
}

/// Rows of a segment's index (id, where its entry is) and the file the entries are in.
type Chunk = (Arc<std::fs::File>, Vec<(Id, u64)>);

/// At most `limit` rows of a segment's index with ids in `low..high`, from the newest or the
/// oldest end, and the file their entries are in; none once the segment is retired. A sealed
/// file is read outside the lock, so the applier is not held up.
fn chunk(
    inner: &Mutex<Inner>,
    segment: u64,
    (low, high): (&Id, &Id),
    newest_first: bool,
    limit: usize,
) -> io::Result<Option<Chunk>> {
    let sealed = {
        let inner = super::lock(inner);
        if let Some(w) = inner.writing.as_ref().filter(|w| w.segment == segment) {
            let rows = w.chunk(low, high, newest_first, limit);
            return Ok(Some((w.file().clone(), rows)));
        }
        inner.sealed.get(&segment).cloned()
    };
    match sealed {
        Some(s) => {
            let rows = s.chunk(low, high, newest_first, limit as u64)?;
            Ok(Some((s.file().clone(), rows)))
        }
        None => Ok(None),
    }
}

/// A frame's index entries: each event's id and its [`StoredEvent`].
fn entries(at: Position, frame: &Frame<'_>) -> Vec<(Id, Vec<u8>)> {
    (frame.events.iter())
        .map(|e| {
            let span = LogSpan {
                segment: at.segment,
                offset: at.offset + (FRAME_HEADER + e.envelope_at) as u64,
                len: e.envelope.len() as u32,
            };
            let queues: Vec<&[u8]> = (e.queues.iter())
                .filter_map(|i| frame.queues.get(usize::from(*i)).copied())
                .collect();
            let fields = search::index_fields(e.envelope);
            (e.id.to_bytes(), StoredEvent::encode(&queues, span, &fields))
        })
        .collect()
}

/// Indexes a segment from its frames and seals the file. Frames stop at the first that does
/// not read (a torn tail; damage before readable frames is recovery's to refuse).
fn index_segment(wal_dir: &Path, segment: u64) -> io::Result<Option<Sealed>> {
    let log = wal::LogReader::new(wal_dir);
    let mut writing = Writing::create(wal_dir, segment)?;
    let mut at = Position { segment, offset: 0 };
    while let Some((payload, next)) = log.frame(at)? {
        if let Ok(frame) = frame::decode(&payload) {
            writing.append(&entries(at, &frame))?;
        }
        at = next;
    }
    writing.seal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Id {
        n.to_be_bytes()
    }

    /// Segment 1 sealed with ids 0..1500 and 1600 (a late one), segment 2 sealed with the rest
    /// up to 3000, and 2999 again in segment 3, being written, with 3000..3100.
    fn index(dir: &Path) -> EventIndex {
        let entries = |ids: &mut dyn Iterator<Item = u128>| -> Vec<(Id, Vec<u8>)> {
            ids.map(|n| (id(n), n.to_string().into_bytes())).collect()
        };
        let mut inner = Inner::default();
        for (segment, ids) in [
            (1, entries(&mut (0..1500).chain([1600]).rev())),
            (2, entries(&mut (1500..3000).filter(|n| *n != 1600))),
        ] {
            let mut writing = Writing::create(dir, segment).unwrap();
            writing.append(&ids).unwrap();
            let sealed = writing.seal().unwrap().unwrap();
            inner.sealed.insert(segment, Arc::new(sealed));
        }
        let mut writing = Writing::create(dir, 3).unwrap();
        writing.append(&entries(&mut (2999..3100))).unwrap();
        inner.writing = Some(writing);
        EventIndex {
            wal_dir: dir.to_owned(),
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn walk(scan: Scan) -> Vec<u128> {
        scan.map(|row| {
            let (found, value) = row.unwrap();
            let n = u128::from_be_bytes(found);
            assert_eq!(value, n.to_string().into_bytes());
            n
        })
        .collect()
    }

    #[test]
    fn a_scan_merges_overlapping_segments_in_id_order_each_id_once() {
        let dir = tempfile::tempdir().unwrap();
        let index = index(dir.path());
        let newest: Vec<u128> = (0..3100).rev().collect();
        assert_eq!(walk(index.scan(&id(0), None, true)), newest);
        let window: Vec<u128> = (100..2000).collect();
        assert_eq!(walk(index.scan(&id(100), Some(&id(2000)), false)), window);
        // The newest: the older segments are not opened yet.
        let mut scan = index.scan(&id(0), None, true);
        assert_eq!(scan.next().unwrap().unwrap().0, id(3099));
        assert_eq!(scan.unopened(), 2);
        for n in [0, 1600, 2999, 3050] {
            assert!(index.get(&id(n)).unwrap().is_some(), "{n}");
        }
        assert_eq!(index.get(&id(3100)).unwrap(), None);
        assert_eq!(index.len(), 3000 + 101);
    }
}
