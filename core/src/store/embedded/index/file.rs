//! One log segment's index file, `<segment>.idx` beside the segment in `wal/`. While the
//! segment is written ([`Writing`]) its entries are appended in log order and their ids kept
//! sorted in memory; once the log has moved on, the file is sealed ([`Sealed`]): a table of
//! (id, entry offset) sorted by id, then a footer. Nothing here is synced until the seal: the
//! file is derived from the segment, and one that is not sealed is simply written again.
//!
//! Layout: entries `[len: u32][value]` (the value is a
//! [`super::super::record::StoredEvent`]); the table, `count` rows of `[id: 16][offset: u64]`;
//! the footer `[table offset: u64][count: u64][table crc32: u32][MAGIC]`. The footer is
//! written and synced only after the table is on disk, so a footer that reads well vouches for
//! everything before it. Files of the first layout (`SYX1`, until store format 4) began each
//! entry with its id as well, which the table already holds: they are read as they are.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An event id's bytes (time-ordered).
pub type Id = [u8; 16];

const MAGIC: &[u8; 4] = b"SYX2";
/// The first layout's: its table's offsets point at each entry's id, 16 bytes before its
/// length.
const MAGIC_WITH_IDS: &[u8; 4] = b"SYX1";
const FOOTER: u64 = 8 + 8 + 4 + 4;
const ROW: u64 = 16 + 8;
/// An entry's header: its value's length.
const HEAD: usize = 4;
/// Guards a damaged length from asking for an absurd allocation: an entry is a few hundred
/// bytes (queues, a log span, search fields).
const MAX_VALUE: u32 = 1 << 20;

/// Index files are named like their segments, `.idx` for `.wal`.
pub const SUFFIX: &str = ".idx";

pub fn path(wal_dir: &Path, segment: u64) -> PathBuf {
    wal_dir.join(format!("{segment:016x}{SUFFIX}"))
}

/// Deletes a segment's index file, if it has one.
pub fn remove(wal_dir: &Path, segment: u64) -> io::Result<()> {
    match std::fs::remove_file(path(wal_dir, segment)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The index of the segment the log is writing.
pub struct Writing {
    pub segment: u64,
    file: Arc<File>,
    len: u64,
    ids: BTreeMap<Id, u64>,
    /// A write failed: the file is never sealed, so the next start indexes the segment again.
    incomplete: bool,
}

impl Writing {
    pub fn create(wal_dir: &Path, segment: u64) -> io::Result<Writing> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path(wal_dir, segment))?;
        Ok(Writing {
            segment,
            file: Arc::new(file),
            len: 0,
            ids: BTreeMap::new(),
            incomplete: false,
        })
    }

    /// Appends entries in one write. A failure leaves them out of every lookup until the next
    /// start, which indexes the segment again from the log.
    pub fn append(&mut self, entries: &[(Id, Vec<u8>)]) -> io::Result<()> {
        if self.incomplete {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(entries.iter().map(|(_, v)| HEAD + v.len()).sum());
        let mut offsets = Vec::with_capacity(entries.len());
        for (_, value) in entries {
            offsets.push(self.len + bytes.len() as u64);
            bytes.extend_from_slice(&(value.len() as u32).to_be_bytes());
            bytes.extend_from_slice(value);
        }
        if let Err(error) = self.file.write_all_at(&bytes, self.len) {
            self.incomplete = true;
            return Err(error);
        }
        self.len += bytes.len() as u64;
        for ((id, _), offset) in entries.iter().zip(offsets) {
            self.ids.insert(*id, offset);
        }
        Ok(())
    }

    pub fn get(&self, id: &Id) -> io::Result<Option<Vec<u8>>> {
        match self.ids.get(id) {
            Some(offset) => read_entry(&self.file, *offset).map(Some),
            None => Ok(None),
        }
    }

    /// At most `limit` rows with ids in `low..high`, in id order, from the newest or the
    /// oldest end: a copy, so the writer goes on.
    pub fn chunk(&self, low: &Id, high: &Id, newest_first: bool, limit: usize) -> Vec<(Id, u64)> {
        if high <= low {
            return Vec::new();
        }
        let range = self.ids.range(*low..*high).map(|(i, o)| (*i, *o));
        match newest_first {
            true => {
                let mut rows: Vec<(Id, u64)> = range.rev().take(limit).collect();
                rows.reverse();
                rows
            }
            false => range.take(limit).collect(),
        }
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// The smallest and largest ids so far.
    pub fn bounds(&self) -> Option<(Id, Id)> {
        let min = self.ids.first_key_value()?.0;
        let max = self.ids.last_key_value()?.0;
        Some((*min, *max))
    }

    pub fn len(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Writes the table and the footer, each synced; `None` when a write failed earlier (the
    /// next start indexes the segment again).
    pub fn seal(self) -> io::Result<Option<Sealed>> {
        if self.incomplete {
            return Ok(None);
        }
        let mut table = Vec::with_capacity(self.ids.len() * ROW as usize);
        for (id, offset) in &self.ids {
            table.extend_from_slice(id);
            table.extend_from_slice(&offset.to_be_bytes());
        }
        self.file.write_all_at(&table, self.len)?;
        self.file.sync_data()?;
        let mut footer = Vec::with_capacity(FOOTER as usize);
        footer.extend_from_slice(&self.len.to_be_bytes());
        footer.extend_from_slice(&(self.ids.len() as u64).to_be_bytes());
        footer.extend_from_slice(&crc32fast::hash(&table).to_be_bytes());
        footer.extend_from_slice(MAGIC);
        self.file
            .write_all_at(&footer, self.len + table.len() as u64)?;
        self.file.sync_data()?;
        let (min, max) = self.bounds().unwrap_or_default();
        Ok(Some(Sealed {
            min,
            max,
            file: self.file,
            table_at: self.len,
            count: self.ids.len() as u64,
            skip: 0,
        }))
    }
}

/// A sealed index: looked up by binary search over its table, read a chunk of rows at a time.
pub struct Sealed {
    pub min: Id,
    pub max: Id,
    file: Arc<File>,
    table_at: u64,
    pub count: u64,
    /// Added to the table's offsets to reach an entry's length: 16 in the first layout.
    skip: u64,
}

impl Sealed {
    /// The segment's sealed index; `None` when it is missing, not sealed or damaged.
    pub fn open(wal_dir: &Path, segment: u64) -> io::Result<Option<Sealed>> {
        let file = match File::open(path(wal_dir, segment)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let Some(footer_at) = len.checked_sub(FOOTER) else {
            return Ok(None);
        };
        let mut footer = [0u8; FOOTER as usize];
        file.read_exact_at(&mut footer, footer_at)?;
        let number =
            |at: usize| u64::from_be_bytes(footer[at..at + 8].try_into().unwrap_or_default());
        let (table_at, count) = (number(0), number(8));
        let crc = u32::from_be_bytes(footer[16..20].try_into().unwrap_or_default());
        let table_len = count.checked_mul(ROW);
        let skip = match &footer[20..] {
            magic if magic == MAGIC => 0,
            magic if magic == MAGIC_WITH_IDS => 16,
            _ => return Ok(None),
        };
        if table_len.and_then(|t| t.checked_add(table_at)) != Some(footer_at) {
            return Ok(None);
        }
        let mut table = vec![0u8; (footer_at - table_at) as usize];
        file.read_exact_at(&mut table, table_at)?;
        if crc32fast::hash(&table) != crc {
            return Ok(None);
        }
        let id = |row: Option<&[u8]>| -> Id {
            row.and_then(|r| r.get(..16)?.try_into().ok())
                .unwrap_or_default()
        };
        Ok(Some(Sealed {
            min: id(table.chunks(ROW as usize).next()),
            max: id(table.chunks(ROW as usize).last()),
            file: Arc::new(file),
            table_at,
            count,
            skip,
        }))
    }

    /// At most `limit` rows with ids in `low..high`, in id order, from the newest or the
    /// oldest end.
    pub fn chunk(
        &self,
        low: &Id,
        high: &Id,
        newest_first: bool,
        limit: u64,
    ) -> io::Result<Vec<(Id, u64)>> {
        let (from, to) = (self.lower_bound(low)?, self.lower_bound(high)?);
        match newest_first {
            true => self.rows(to.saturating_sub(limit).max(from), to),
            false => self.rows(from, (from + limit).min(to)),
        }
    }

    /// Rows `from..to` of the table, in id order.
    pub fn rows(&self, from: u64, to: u64) -> io::Result<Vec<(Id, u64)>> {
        let to = to.min(self.count);
        if from >= to {
            return Ok(Vec::new());
        }
        let mut bytes = vec![0u8; ((to - from) * ROW) as usize];
        self.file
            .read_exact_at(&mut bytes, self.table_at + from * ROW)?;
        let entry = |(id, offset): (Id, u64)| (id, offset + self.skip);
        Ok(bytes
            .chunks_exact(ROW as usize)
            .map(row)
            .map(entry)
            .collect())
    }

    /// The first row whose id is not below `id` (`count` when there is none).
    pub fn lower_bound(&self, id: &Id) -> io::Result<u64> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let mid = low + (high - low) / 2;
            let mut bytes = [0u8; ROW as usize];
            self.file
                .read_exact_at(&mut bytes, self.table_at + mid * ROW)?;
            if row(&bytes).0 < *id {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    pub fn get(&self, id: &Id) -> io::Result<Option<Vec<u8>>> {
        if self.count == 0 || *id < self.min || *id > self.max {
            return Ok(None);
        }
        let at = self.lower_bound(id)?;
        match self.rows(at, at + 1)?.first() {
            Some((found, offset)) if found == id => read_entry(&self.file, *offset).map(Some),
            _ => Ok(None),
        }
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
}

fn row(bytes: &[u8]) -> (Id, u64) {
    let id = bytes[..16].try_into().unwrap_or_default();
    let offset = u64::from_be_bytes(bytes[16..24].try_into().unwrap_or_default());
    (id, offset)
}

/// The value of the entry at `offset`.
pub fn read_entry(file: &File, offset: u64) -> io::Result<Vec<u8>> {
    let mut head = [0u8; HEAD];
    file.read_exact_at(&mut head, offset)?;
    let len = u32::from_be_bytes(head);
    if len > MAX_VALUE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an index entry's length is damaged",
        ));
    }
    let mut value = vec![0u8; len as usize];
    file.read_exact_at(&mut value, offset + HEAD as u64)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        [n; 16]
    }

    /// Entries appended out of id order (as a log holds them), then sealed.
    fn sealed(dir: &Path) -> Sealed {
        let mut writing = Writing::create(dir, 7).unwrap();
        writing
            .append(&[(id(5), b"five".to_vec()), (id(2), b"two".to_vec())])
            .unwrap();
        writing.append(&[(id(9), b"nine".to_vec())]).unwrap();
        assert_eq!(writing.get(&id(2)).unwrap().as_deref(), Some(&b"two"[..]));
        writing.seal().unwrap().unwrap()
    }

    #[test]
    fn a_sealed_index_is_read_back_sorted_and_found_by_id() {
        let dir = tempfile::tempdir().unwrap();
        sealed(dir.path());
        let index = Sealed::open(dir.path(), 7).unwrap().unwrap();
        assert_eq!((index.min, index.max, index.count), (id(2), id(9), 3));
        let ids: Vec<Id> = (index.rows(0, 3).unwrap().iter()).map(|r| r.0).collect();
        assert_eq!(ids, [id(2), id(5), id(9)]);
        assert_eq!(index.lower_bound(&id(3)).unwrap(), 1);
        assert_eq!(index.lower_bound(&id(10)).unwrap(), 3);
        assert_eq!(index.get(&id(9)).unwrap().as_deref(), Some(&b"nine"[..]));
        assert_eq!(index.get(&id(4)).unwrap(), None);
        assert_eq!(index.get(&id(1)).unwrap(), None);
    }

    #[test]
    fn an_index_of_the_first_layout_with_an_id_before_each_entry_is_read_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        let mut table = Vec::new();
        for (n, value) in [(2u8, &b"two"[..]), (5, b"five")] {
            table.extend_from_slice(&id(n));
            table.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            bytes.extend_from_slice(&id(n));
            bytes.extend_from_slice(&(value.len() as u32).to_be_bytes());
            bytes.extend_from_slice(value);
        }
        let table_at = bytes.len() as u64;
        bytes.extend_from_slice(&table);
        bytes.extend_from_slice(&table_at.to_be_bytes());
        bytes.extend_from_slice(&2u64.to_be_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&table).to_be_bytes());
        bytes.extend_from_slice(MAGIC_WITH_IDS);
        std::fs::write(path(dir.path(), 7), bytes).unwrap();
        let index = Sealed::open(dir.path(), 7).unwrap().unwrap();
        assert_eq!(index.get(&id(2)).unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(index.get(&id(5)).unwrap().as_deref(), Some(&b"five"[..]));
        let (_, offset) = index.rows(1, 2).unwrap()[0];
        assert_eq!(read_entry(index.file(), offset).unwrap(), b"five");
    }

    #[test]
    fn an_index_not_sealed_or_damaged_is_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Sealed::open(dir.path(), 7).unwrap().is_none(), "missing");
        let mut writing = Writing::create(dir.path(), 7).unwrap();
        writing.append(&[(id(1), b"one".to_vec())]).unwrap();
        drop(writing);
        assert!(Sealed::open(dir.path(), 7).unwrap().is_none(), "not sealed");
        sealed(dir.path());
        let at = path(dir.path(), 7);
        let whole = std::fs::read(&at).unwrap();
        // A table row changed: its checksum no longer holds.
        let mut damaged = whole.clone();
        let table_row = whole.len() - FOOTER as usize - 1;
        damaged[table_row] ^= 0xff;
        std::fs::write(&at, &damaged).unwrap();
        assert!(
            Sealed::open(dir.path(), 7).unwrap().is_none(),
            "damaged table"
        );
        // Cut short: the footer is gone.
        std::fs::write(&at, &whole[..whole.len() - 3]).unwrap();
        assert!(
            Sealed::open(dir.path(), 7).unwrap().is_none(),
            "torn footer"
        );
    }
}
