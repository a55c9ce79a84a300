//! The write-ahead log: where an accepted batch becomes durable, and where its envelopes stay.
//! One writer appends a batch as one checksummed frame and syncs it (`fdatasync`) before anyone
//! is answered; sled is brought up to date behind it (with pointers into the log, not copies),
//! and a checkpoint records how far sled is known to be on disk, so start-up replays only what
//! came after. The log is a directory of numbered segments; a new segment is started at every
//! open and after any failed write, so a torn or failed tail is never appended to. A segment is
//! retired once retention has passed it (see the store's sweep).
//!
//! Frame: `len` (u32, big-endian) + CRC-32 of the payload (u32) + payload. A frame that is
//! short, zero-length or fails its checksum ends the segment: that is where a crash cut it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::record::LogSpan;
use crate::base::durable;

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const FRAME_HEADER: usize = 8;
const CHECKPOINT: &str = "checkpoint";

/// A place in the log: everything before it has been written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

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
        })
    }

    /// Appends one frame and syncs it; returns where its payload starts and where the log
    /// ends after it. On failure nothing is considered written.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<(Position, Position)> {
        let old = self.end.offset > 0 && self.opened.elapsed() >= self.max_age;
        if self.broken || old || self.end.offset >= SEGMENT_BYTES {
            self.rotate()?;
        }
        let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "batch too large"))?;
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
        frame.extend_from_slice(payload);
        self.write_synced(&frame)?;
        let start = Position {
            segment: self.end.segment,
            offset: self.end.offset + FRAME_HEADER as u64,
        };
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
        self.write_synced(&vec![0xff; len.max(FRAME_HEADER)])?;
        self.file.set_len(self.end.offset)
    }

    /// Writes `bytes` at the end of the log and syncs them, without moving the end. A failed
    /// write is cut off so no replay can see it, and the next append retries in place (a full
    /// disk); a failed sync, or a failed cut, sends it to a new segment, since after a failed
    /// fsync the kernel may report later ones clean without the data being on disk.
    fn write_synced(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(error) = self.file.write_all_at(bytes, self.end.offset) {
            if self.file.set_len(self.end.offset).is_err() {
                self.broken = true;
            }
            return Err(error);
        }
        if let Err(error) = self.file.sync_data() {
            let _ = self.file.set_len(self.end.offset);
            self.broken = true;
            return Err(error);
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
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

/// Calls `apply` with every frame written after `from`, in order, across segments, with where
/// its payload starts.
pub fn replay(
    dir: &Path,
    from: Position,
    mut apply: impl FnMut(Position, &[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut frames = 0;
    for segment in segments(dir)?.into_iter().filter(|s| *s >= from.segment) {
        let start = if segment == from.segment {
            from.offset
        } else {
            0
        };
        frames += segment_frames(dir, segment, start, &mut apply)?;
    }
    Ok(frames)
}

/// Calls `apply` with every frame of one segment from `start` on.
pub fn segment_frames(
    dir: &Path,
    segment: u64,
    start: u64,
    mut apply: impl FnMut(Position, &[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut bytes = Vec::new();
    File::open(segment_path(dir, segment))?.read_to_end(&mut bytes)?;
    let mut at = usize::try_from(start).unwrap_or(usize::MAX);
    let mut frames = 0;
    while let Some((payload, next)) = frame_at(&bytes, at) {
        let position = Position {
            segment,
            offset: (at + FRAME_HEADER) as u64,
        };
        apply(position, payload)?;
        frames += 1;
        at = next;
    }
    Ok(frames)
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

    pub fn read(&self, span: LogSpan) -> io::Result<Vec<u8>> {
        let file = {
            let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            match files.get(&span.segment) {
                Some(file) => file.clone(),
                None => {
                    let file = Arc::new(File::open(segment_path(&self.dir, span.segment))?);
                    files.insert(span.segment, file.clone());
                    file
                }
            }
        };
        let mut out = vec![0; span.len as usize];
        file.read_exact_at(&mut out, span.offset)?;
        Ok(out)
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

fn frame_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at.checked_add(FRAME_HEADER)?)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[4..].try_into().ok()?);
    let start = at + FRAME_HEADER;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (len > 0 && crc32fast::hash(payload) == crc).then_some((payload, start + len))
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

/// Segment numbers present, ascending.
pub fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(".wal")
            .and_then(|n| u64::from_str_radix(n, 16).ok())
        {
            found.push(n);
        }
    }
    found.sort_unstable();
    Ok(found)
}

pub fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016x}.wal"))
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
        replay(dir, from, |_, p| {
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
        wal.append(b"one").unwrap();
        let (two, after_one) = wal.append(b"two").unwrap();
        let span = LogSpan {
            segment: two.segment,
            offset: two.offset,
            len: 3,
        };
        assert_eq!(LogReader::new(dir.path()).read(span).unwrap(), b"two");
        wal.append(b"three").unwrap();
        drop(wal);
        let mut wal = Wal::open(dir.path(), Duration::from_secs(3600)).unwrap();
        wal.append(b"four").unwrap();
        assert_eq!(
            collect(dir.path(), Position::default()),
            [&b"one"[..], b"two", b"three", b"four"]
        );
        write_checkpoint(dir.path(), after_one).unwrap();
        let from = read_checkpoint(dir.path()).unwrap();
        assert_eq!(from, after_one);
        assert_eq!(collect(dir.path(), from), [&b"three"[..], b"four"]);
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), Duration::from_secs(3600)).unwrap();
        wal.append(b"kept").unwrap();
        let (_, end) = wal.append(b"torn").unwrap();
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
    fn a_probe_leaves_no_trace_even_when_its_cut_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), Duration::from_secs(3600)).unwrap();
        wal.append(b"one").unwrap();
        wal.probe(4096).unwrap();
        wal.append(b"two").unwrap();
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
