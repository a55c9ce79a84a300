//! The write-ahead log: where an accepted batch becomes durable, where its envelopes stay, and
//! the sinks' queue (each sink reads it forward from its cursor, see [`super::lanes`]). One
//! writer appends a batch as one checksummed frame and syncs it (`fdatasync`) before anyone is
//! answered; the event index and sled are brought up to date behind it, and a checkpoint
//! records how far sled is known to be on disk, so start-up replays only what came after. The
//! log is a directory of numbered segments; a new segment is started at every open and after
//! any failed write, so a torn or failed tail is never appended to. A segment is retired once
//! every queue's cursor has passed it and retention allows (see the store's sweep).
//!
//! Reading segments back, and what a torn or damaged frame means, is [`super::scan`]'s.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::record::LogSpan;
pub use super::scan::{numbered, replay, segment_path, segments, Position, FRAME_HEADER};
use crate::base::durable;

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const CHECKPOINT: &str = "checkpoint";

pub struct Wal {
    dir: PathBuf,
    file: File,
    end: Position,
    /// A segment older than this is closed at the next append, so retention can retire it
    /// even when traffic is too light to fill one.
    max_age: Duration,
    opened: Instant,
    /// A sync failed: the next append starts a new segment.
    broken: bool,
    /// Frames were appended without a sync since the last one.
    unsynced: bool,
    /// A sync that should have covered frames appended without one failed.
    lost: bool,
}

impl Wal {
    /// Opens the log for appending in a fresh segment after every existing one; segments are
    /// closed past [`SEGMENT_BYTES`] or `max_age`.
    pub fn open(dir: &Path, max_age: Duration) -> io::Result<Wal> {
        durable::create_dirs(dir)?;
        let next = segments(dir)?.last().map_or(1, |s| s + 1);
        let file = create_segment(dir, next)?;
        Ok(Wal {
            dir: dir.to_owned(),
            file,
            end: Position {
                segment: next,
                offset: 0,
            },
            max_age,
            opened: Instant::now(),
            broken: false,
            unsynced: false,
            lost: false,
        })
    }

    /// Where the next frame will start: starts a new segment first when this one is full, old
    /// or broken.
    pub fn prepare(&mut self) -> io::Result<Position> {
        let old = self.end.offset > 0 && self.opened.elapsed() >= self.max_age;
        if self.broken || old || self.end.offset >= SEGMENT_BYTES {
            self.rotate()?;
        }
        Ok(self.end)
    }

    /// Appends one frame at [`Wal::prepare`]'s position and, with `sync`, syncs it and every
    /// frame appended before it; returns where the frame starts and where the log ends after
    /// it. On failure nothing is considered written.
    pub fn append(&mut self, payload: &[u8], sync: bool) -> io::Result<(Position, Position)> {
        let start = self.prepare()?;
        let frame = super::scan::framed(payload)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "batch too large"))?;
        self.write(&frame, sync)?;
        self.end.offset += frame.len() as u64;
        Ok((start, self.end))
    }

    /// Tells whether `len` bytes could be appended and synced now, leaving the log as it was:
    /// after a full disk, the log takes writes again once a write the size of the one that
    /// failed succeeds.
    pub fn probe(&mut self, len: usize) -> io::Result<()> {
        if self.broken {
            self.rotate()?;
        }
        // Not a frame: were the cut below to fail, a replay reads an impossible length there
        // and ends the segment, and the next append writes over it.
        self.write(&vec![0xff; len.max(FRAME_HEADER)], true)?;
        self.file.set_len(self.end.offset)
    }

    /// Writes `bytes` at the end of the log and syncs them, without moving the end. A failed
    /// write is cut off so no replay can see it, and the next append retries in place (a full
    /// disk); a failed sync, or a failed cut, sends it to a new segment, since after a failed
    /// fsync the kernel may report later ones clean without the data being on disk.
    fn write(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        if let Err(error) = self.file.write_all_at(bytes, self.end.offset) {
            if self.file.set_len(self.end.offset).is_err() {
                self.broken = true;
            }
            return Err(error);
        }
        if !sync {
            self.unsynced = true;
            return Ok(());
        }
        if let Err(error) = self.file.sync_data() {
            let _ = self.file.set_len(self.end.offset);
            self.broken = true;
            self.lost |= self.unsynced;
            self.unsynced = false;
            return Err(error);
        }
        self.unsynced = false;
        Ok(())
    }

    /// Syncs the frames appended without a sync, if any.
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        self.unsynced = false;
        self.file.sync_data().inspect_err(|_| {
            self.broken = true;
            self.lost = true;
        })
    }

    /// Whether a sync meant to cover frames appended without one failed since the last call:
    /// what they said is not durable.
    pub fn take_lost(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }

    fn rotate(&mut self) -> io::Result<()> {
        // The next sync is of the new segment: this one's unsynced frames are synced now.
        let _ = self.sync();
        let next = self.end.segment + 1;
        self.file = create_segment(&self.dir, next)?;
        self.end = Position {
            segment: next,
            offset: 0,
        };
        self.opened = Instant::now();
        self.broken = false;
        Ok(())
    }
}

/// Reads envelopes out of the log's segments, keeping one open file per segment.
pub struct LogReader {
    dir: PathBuf,
    files: Mutex<HashMap<u64, Arc<File>>>,
}

impl LogReader {
    pub fn new(dir: &Path) -> LogReader {
        LogReader {
            dir: dir.to_owned(),
            files: Mutex::default(),
        }
    }

    fn file(&self, segment: u64) -> io::Result<Arc<File>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = files.get(&segment) {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(segment_path(&self.dir, segment))?);
        files.insert(segment, file.clone());
        Ok(file)
    }

    pub fn read(&self, span: LogSpan) -> io::Result<Vec<u8>> {
        let mut out = vec![0; span.len as usize];
        self.file(span.segment)?
            .read_exact_at(&mut out, span.offset)?;
        Ok(out)
    }

    /// The frame starting at `at` (its payload, and where the next one starts), or `None`
    /// when there is no valid frame there: the segment's end (or a tail a crash cut short).
    pub fn frame(&self, at: Position) -> io::Result<Option<(Vec<u8>, Position)>> {
        let file = self.file(at.segment)?;
        let mut header = [0u8; FRAME_HEADER];
        match file.read_exact_at(&mut header, at.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len as u64 > SEGMENT_BYTES + (1 << 30) {
            return Ok(None);
        }
        let mut payload = vec![0; len];
        match file.read_exact_at(&mut payload, at.offset + FRAME_HEADER as u64) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        if crc32fast::hash(&payload) != crc {
            return Ok(None);
        }
        let next = Position {
            segment: at.segment,
            offset: at.offset + (FRAME_HEADER + len) as u64,
        };
        Ok(Some((payload, next)))
    }

    /// The first segment after `after`, if any.
    pub fn next_segment(&self, after: u64) -> io::Result<Option<u64>> {
        Ok(segments(&self.dir)?.into_iter().find(|s| *s > after))
    }

    /// Deletes a segment nothing reads any more, durably: a segment that came back after a
    /// power cut would be replayed over records that moved on.
    pub fn retire(&self, segment: u64) -> io::Result<()> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&segment);
        fs::remove_file(segment_path(&self.dir, segment))?;
        durable::sync_dir(&self.dir)
    }
}

/// The position recorded by the last checkpoint: everything before it is in sled, on disk.
pub fn read_checkpoint(dir: &Path) -> io::Result<Position> {
    let bytes = match fs::read(dir.join(CHECKPOINT)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Position::default()),
        Err(e) => return Err(e),
    };
    let damaged = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged", dir.join(CHECKPOINT).display()),
        )
    };
    let (body, crc) = bytes.split_last_chunk::<4>().ok_or_else(damaged)?;
    if body.len() != 16 || crc32fast::hash(body) != u32::from_be_bytes(*crc) {
        return Err(damaged());
    }
    let (segment, offset) = body.split_at(8);
    Ok(Position {
        segment: u64::from_be_bytes(segment.try_into().map_err(|_| damaged())?),
        offset: u64::from_be_bytes(offset.try_into().map_err(|_| damaged())?),
    })
}

/// Records `at` as checkpointed (atomically: written aside, synced, renamed, directory synced).
pub fn write_checkpoint(dir: &Path, at: Position) -> io::Result<()> {
    let mut body = at.segment.to_be_bytes().to_vec();
    body.extend_from_slice(&at.offset.to_be_bytes());
    body.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    let aside = dir.join(format!("{CHECKPOINT}.new"));
    let mut file = File::create(&aside)?;
    file.write_all(&body)?;
    file.sync_all()?;
    fs::rename(&aside, dir.join(CHECKPOINT))?;
    durable::sync_dir(dir)
}

fn create_segment(dir: &Path, segment: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(segment_path(dir, segment))?;
    // The new name must survive a crash too, or its frames would vanish with it.
    durable::sync_dir(dir)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path, from: Position) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        replay(dir, from, |_, _, p| {
            out.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn frames_replay_in_order_across_reopens_and_after_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), Duration::from_secs(3600)).unwrap();
        wal.append(b"one", true).unwrap();
        let (two, after_two) = wal.append(b"two", true).unwrap();
        let span = LogSpan {
            segment: two.segment,
            offset: two.offset + FRAME_HEADER as u64,
            len: 3,
        };
        let reader = LogReader::new(dir.path());
        let (payload, next) = reader.frame(two).unwrap().unwrap();
        assert_eq!((payload.as_slice(), next), (&b"two"[..], after_two));
        assert_eq!(LogReader::new(dir.path()).read(span).unwrap(), b"two");
        wal.append(b"three", true).unwrap();
        drop(wal);
        let mut wal = Wal::open(dir.path(), Duration::from_secs(3600)).unwrap();
        wal.append(b"four", true).unwrap();
        assert_eq!(
            collect(dir.path(), Position::default()),
            [&b"one"[..], b"two", b"three", b"four"]
        );
        write_checkpoint(dir.path(), after_two).unwrap();
        let from = read_checkpoint(dir.path()).unwrap();
        assert_eq!(from, after_two);
        assert_eq!(collect(dir.path(), from), [&b"three"[..], b"four"]);
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), Duration::from_secs(3600)).unwrap();
        wal.append(b"kept", true).unwrap();
        let (_, end) = wal.append(b"torn", true).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(end.offset - 2).unwrap();
        assert_eq!(collect(dir.path(), Position::default()), [&b"kept"[..]]);
        let mut bytes = fs::read(&path).unwrap();
        bytes[FRAME_HEADER] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(collect(dir.path(), Position::default()).is_empty());
    }

    #[test]
    fn a_damaged_frame_with_frames_after_it_stops_the_replay_naming_segment_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), Duration::from_secs(3600)).unwrap();
        wal.append(b"one", true).unwrap();
        let (two, _) = wal.append(b"two", true).unwrap();
        wal.append(b"three", true).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[two.offset as usize + FRAME_HEADER] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let error = replay(dir.path(), Position::default(), |_, _, _| Ok(())).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("0000000000000001.wal"), "{message}");
        assert!(
            message.contains(&format!("at byte {}", two.offset)),
            "{message}"
        );
        assert!(message.contains("checksum"), "{message}");
        assert!(message.contains("`switchyard store verify`"), "{message}");
        assert!(
            message.contains("`switchyard store verify --salvage`"),
            "{message}"
        );
    }

    #[test]
    fn a_probe_leaves_no_trace_even_when_its_cut_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), Duration::from_secs(3600)).unwrap();
        wal.append(b"one", true).unwrap();
        wal.probe(4096).unwrap();
        wal.append(b"two", true).unwrap();
        assert_eq!(
            collect(dir.path(), Position::default()),
            [&b"one"[..], b"two"]
        );
        // A crash between a probe's write and its cut: the probe's bytes end the segment.
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0xff; 64]);
        fs::write(&path, bytes).unwrap();
        assert_eq!(
            collect(dir.path(), Position::default()),
            [&b"one"[..], b"two"]
        );
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CHECKPOINT), b"garbage").unwrap();
        assert!(read_checkpoint(dir.path()).is_err());
    }
}
