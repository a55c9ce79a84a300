//! Walking the index by id: the sealed segments, the one being written and sled's `events`
//! tree each hold their ids sorted, and their ranges overlap a little (an id is taken when a
//! request arrives, its place in the log when its batch is written), so [`Scan`] merges them.
//! A segment is opened only once the walk could reach its ids (a page of the newest events
//! reads the newest segment or two), then read a chunk of rows at a time. An id found in two
//! sources (an entry carried to sled, then its segment indexed again from the log) comes out
//! once. A value is read only for the rows that come out.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Arc, Mutex};

use super::file::{read_entry, Id};
use super::{unreadable, Inner};
use crate::store::StoreError;

/// Rows read at a time from one segment's index.
const CHUNK: usize = 1024;

/// sled's entries in the range, in the scan's direction.
pub type TreeRows = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + Send>;

enum Value {
    At(Arc<File>, u64),
    Bytes(Vec<u8>),
}

enum Source {
    /// One segment's index: the ids in `low..high` not yet read into `rows`.
    Segment {
        segment: u64,
        low: Id,
        high: Id,
        rows: VecDeque<(Id, u64)>,
        file: Option<Arc<File>>,
    },
    Tree(TreeRows),
}

impl Source {
    fn next(
        &mut self,
        inner: &Mutex<Inner>,
        newest_first: bool,
    ) -> Result<Option<(Id, Value)>, StoreError> {
        match self {
            Source::Segment {
                segment,
                low,
                high,
                rows,
                file,
            } => {
                if rows.is_empty() && low < high {
                    let bounds = (&*low, &*high);
                    match super::chunk(inner, *segment, bounds, newest_first, CHUNK)
                        .map_err(unreadable)?
                    {
                        Some((from, chunk)) if !chunk.is_empty() => {
                            // The next chunk starts past this one.
                            match newest_first {
                                true => *high = chunk[0].0,
                                false => *low = after(&chunk[chunk.len() - 1].0),
                            }
                            *file = Some(from);
                            rows.extend(chunk);
                        }
                        // Read to its end, or retired meanwhile.
                        _ => *low = *high,
                    }
                }
                let row = match newest_first {
                    true => rows.pop_back(),
                    false => rows.pop_front(),
                };
                Ok(row
                    .zip(file.clone())
                    .map(|((id, at), file)| (id, Value::At(file, at))))
            }
            Source::Tree(rows) => loop {
                let Some(row) = rows.next() else {
                    return Ok(None);
                };
                let (key, value) = row?;
                // A key that is not an id is not an index entry: skipped, as before.
                if let Ok(id) = <Id>::try_from(key.as_ref()) {
                    return Ok(Some((id, Value::Bytes(value.to_vec()))));
                }
            },
        }
    }
}

/// The id right after `id`.
fn after(id: &Id) -> Id {
    u128::from_be_bytes(*id).saturating_add(1).to_be_bytes()
}

/// Index entries with ids in a range, newest or oldest first; each is `(id, value)`, the
/// value a [`super::super::record::StoredEvent`].
pub struct Scan {
    inner: Arc<Mutex<Inner>>,
    /// Segments not opened yet, with their smallest and largest ids: the one the walk
    /// reaches first is last.
    waiting: Vec<(u64, (Id, Id))>,
    range: (Id, Id),
    sources: Vec<(Source, Option<(Id, Value)>)>,
    newest_first: bool,
    started: bool,
    last: Option<Id>,
}

impl Scan {
    pub(super) fn new(
        inner: Arc<Mutex<Inner>>,
        mut waiting: Vec<(u64, (Id, Id))>,
        range: (Id, Id),
        newest_first: bool,
    ) -> Scan {
        match newest_first {
            true => waiting.sort_unstable_by_key(|(_, (_, max))| *max),
            false => waiting.sort_unstable_by_key(|(_, (min, _))| std::cmp::Reverse(*min)),
        }
        Scan {
            inner,
            waiting,
            range,
            sources: Vec::new(),
            newest_first,
            started: false,
            last: None,
        }
    }

    #[cfg(test)]
    pub(super) fn unopened(&self) -> usize {
        self.waiting.len()
    }

    /// sled's entries in the same range, in the scan's direction.
    pub fn tree(mut self, rows: TreeRows) -> Scan {
        self.sources.push((Source::Tree(rows), None));
        self
    }

    /// The head that comes out next among the open sources.
    fn best(&self) -> Option<(usize, Id)> {
        (self.sources.iter().enumerate())
            .filter_map(|(i, (_, head))| head.as_ref().map(|(id, _)| (i, *id)))
            .reduce(|a, b| match (b.1 > a.1) == self.newest_first {
                true => b,
                false => a,
            })
    }

    /// Opens every waiting segment that may hold an id coming out before the best head (or
    /// at it, so that a copy of it comes out next to it and is dropped).
    fn open_reachable(&mut self) -> Result<(), StoreError> {
        while let Some((segment, (min, max))) = self.waiting.last().copied() {
            let reachable = self.best().is_none_or(|(_, best)| match self.newest_first {
                true => max >= best,
                false => min <= best,
            });
            if !reachable {
                return Ok(());
            }
            self.waiting.pop();
            let mut source = Source::Segment {
                segment,
                low: self.range.0,
                high: self.range.1,
                rows: VecDeque::new(),
                file: None,
            };
            let head = source.next(&self.inner, self.newest_first)?;
            self.sources.push((source, head));
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Option<(Id, Vec<u8>)>, StoreError> {
        if !self.started {
            self.started = true;
            for (source, head) in &mut self.sources {
                *head = source.next(&self.inner, self.newest_first)?;
            }
        }
        loop {
            self.open_reachable()?;
            let Some((i, id)) = self.best() else {
                return Ok(None);
            };
            let (source, head) = &mut self.sources[i];
            let taken = std::mem::replace(head, source.next(&self.inner, self.newest_first)?);
            if self.last == Some(id) {
                continue;
            }
            self.last = Some(id);
            let value = match taken {
                Some((_, Value::At(file, offset))) => {
                    read_entry(&file, offset).map_err(unreadable)?
                }
                Some((_, Value::Bytes(bytes))) => bytes,
                None => continue,
            };
            return Ok(Some((id, value)));
        }
    }
}

impl Iterator for Scan {
    type Item = Result<(Id, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
