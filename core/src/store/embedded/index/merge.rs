//! Walking the index by id: the sealed segments, the one being written and sled's `events`
//! tree each hold their ids sorted, and their ranges overlap a little (an id is taken when a
//! request arrives, its place in the log when its batch is written), so [`Scan`] merges them.
//! An id found in two sources (an entry carried to sled, then its segment indexed again from
//! the log) comes out once. A value is read only for the rows that come out.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;

use super::file::{read_entry, Id, Sealed};
use crate::store::StoreError;

/// Table rows read at a time from a sealed index.
const CHUNK: u64 = 1024;

/// sled's entries in the range, in the scan's direction.
pub type TreeRows = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + Send>;

enum Value {
    At(Arc<File>, u64),
    Bytes(Vec<u8>),
}

enum Source {
    /// Rows `low..high` of a sealed table not yet read into `rows`.
    Sealed {
        sealed: Arc<Sealed>,
        low: u64,
        high: u64,
        rows: VecDeque<(Id, u64)>,
    },
    /// A snapshot of the rows of the segment being written.
    Writing {
        file: Arc<File>,
        rows: VecDeque<(Id, u64)>,
    },
    Tree(TreeRows),
}

impl Source {
    fn next(&mut self, newest_first: bool) -> Result<Option<(Id, Value)>, StoreError> {
        let io = |e: std::io::Error| StoreError::Write(format!("reading the event index: {e}"));
        match self {
            Source::Sealed {
                sealed,
                low,
                high,
                rows,
            } => {
                if rows.is_empty() && low < high {
                    let (from, to) = match newest_first {
                        true => (high.saturating_sub(CHUNK).max(*low), *high),
                        false => (*low, (*low + CHUNK).min(*high)),
                    };
                    rows.extend(sealed.rows(from, to).map_err(io)?);
                    match newest_first {
                        true => *high = from,
                        false => *low = to,
                    }
                }
                let row = match newest_first {
                    true => rows.pop_back(),
                    false => rows.pop_front(),
                };
                Ok(row.map(|(id, offset)| (id, Value::At(sealed.file().clone(), offset))))
            }
            Source::Writing { file, rows } => {
                let row = match newest_first {
                    true => rows.pop_back(),
                    false => rows.pop_front(),
                };
                Ok(row.map(|(id, offset)| (id, Value::At(file.clone(), offset))))
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

/// Index entries with ids in a range, newest or oldest first; each is `(id, value)`, the
/// value a [`super::super::record::StoredEvent`].
pub struct Scan {
    sources: Vec<(Source, Option<(Id, Value)>)>,
    newest_first: bool,
    started: bool,
    last: Option<Id>,
}

impl Scan {
    pub(super) fn new(newest_first: bool) -> Scan {
        Scan {
            sources: Vec::new(),
            newest_first,
            started: false,
            last: None,
        }
    }

    /// Rows `low..high` of a sealed table.
    pub(super) fn sealed(&mut self, sealed: Arc<Sealed>, low: u64, high: u64) {
        let rows = VecDeque::new();
        (self.sources).push((
            Source::Sealed {
                sealed,
                low,
                high,
                rows,
            },
            None,
        ));
    }

    pub(super) fn writing(&mut self, file: Arc<File>, rows: Vec<(Id, u64)>) {
        let rows = rows.into();
        self.sources.push((Source::Writing { file, rows }, None));
    }

    /// sled's entries in the same range, in the scan's direction.
    pub fn tree(mut self, rows: TreeRows) -> Scan {
        self.sources.push((Source::Tree(rows), None));
        self
    }

    fn step(&mut self) -> Result<Option<(Id, Vec<u8>)>, StoreError> {
        let newest_first = self.newest_first;
        if !self.started {
            self.started = true;
            for (source, head) in &mut self.sources {
                *head = source.next(newest_first)?;
            }
        }
        loop {
            let best = (self.sources.iter().enumerate())
                .filter_map(|(i, (_, head))| head.as_ref().map(|(id, _)| (i, *id)))
                .reduce(|a, b| match (b.1 > a.1) == newest_first {
                    true => b,
                    false => a,
                });
            let Some((i, id)) = best else {
                return Ok(None);
            };
            let (source, head) = &mut self.sources[i];
            let taken = std::mem::replace(head, source.next(newest_first)?);
            if self.last == Some(id) {
                continue;
            }
            self.last = Some(id);
            let value = match taken {
                Some((_, Value::At(file, offset))) => read_entry(&file, offset)
                    .map_err(|e| StoreError::Write(format!("reading the event index: {e}")))?,
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
