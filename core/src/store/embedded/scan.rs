//! Reading the log's segments, shared by recovery ([`replay`]), the sinks' readers and `store
//! verify` (see [`super::verify`]): where a segment's frames are, which bytes a crash cut short
//! (a torn tail, harmless) and which are damage (valid frames follow: data loss, never
//! skipped silently), and where reading can start again after damage ([`resync`]).
//!
//! Frame: `len` (u32, big-endian) + CRC-32 of the payload (u32) + payload.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub const FRAME_HEADER: usize = 8;

/// A place in the log: everything before it has been written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Calls `apply` with every frame from `from` on, in order, across segments, with where it
/// starts and where the next one does; returns how many. Stops with an error naming the
/// segment and the offset at a damaged frame that valid frames follow.
pub fn replay(
    dir: &Path,
    from: Position,
    mut apply: impl FnMut(Position, Position, &[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut frames = 0;
    for segment in segments(dir)?.into_iter().filter(|s| *s >= from.segment) {
        let mut bytes = Vec::new();
        File::open(segment_path(dir, segment))?.read_to_end(&mut bytes)?;
        let mut at = if segment == from.segment {
            usize::try_from(from.offset).unwrap_or(usize::MAX)
        } else {
            0
        };
        loop {
            match classify(&bytes, at) {
                At::Frame(payload, next) => {
                    let here = Position {
                        segment,
                        offset: at as u64,
                    };
                    let after = Position {
                        segment,
                        offset: next as u64,
                    };
                    apply(here, after, payload)?;
                    frames += 1;
                    at = next;
                }
                At::End => break,
                At::Torn => {
                    tracing::info!(segment = %segment_path(dir, segment).display(), offset = at, "the log segment ends in a frame a crash cut short; it ends there");
                    break;
                }
                At::Damaged(reason) => return Err(damaged(dir, segment, at, &reason)),
            }
        }
    }
    Ok(frames)
}

/// The error that stops a reader at damage, with what the operator can do.
pub fn damaged(dir: &Path, segment: u64, offset: usize, reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "log segment {} is damaged at byte {offset} ({reason}), and frames follow it: nothing is skipped silently, so recovery stops here. With the server stopped, run `switchyard store verify` to see every damaged place, then either restore the data directory from a backup (`switchyard backup`) or run `switchyard store verify --salvage` to keep every readable frame (the events in the damaged bytes are lost; the segment's original is copied aside first)",
            segment_path(dir, segment).display()
        ),
    )
}

/// What is at one offset of a segment.
pub enum At<'a> {
    /// A valid frame's payload, and where the next frame starts.
    Frame(&'a [u8], usize),
    /// The segment's end.
    End,
    /// An invalid frame with nothing valid after it: a write a crash cut short.
    Torn,
    /// An invalid frame with valid frames after it.
    Damaged(String),
}

/// What is at `at`: a decision on the bytes alone, so the reader and `store verify` agree.
pub fn classify(bytes: &[u8], at: usize) -> At<'_> {
    if at >= bytes.len() {
        return At::End;
    }
    if let Some((payload, next)) = frame_at(bytes, at) {
        return At::Frame(payload, next);
    }
    // Only on damage or a torn tail: a torn tail is at most one frame, so this is short.
    if !(at + 1..bytes.len()).any(|p| frame_at(bytes, p).is_some()) {
        return At::Torn;
    }
    let reason = match bytes.get(at..at + FRAME_HEADER) {
        Some(header) if header[..4] == [0; 4] => "a zero-length frame",
        Some(header)
            if u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize
                > bytes.len() - at - FRAME_HEADER =>
        {
            "a frame length past the segment's end"
        }
        _ => "a checksum mismatch",
    };
    At::Damaged(reason.to_owned())
}

/// Where reading can start again after damage at `at`: the first later offset holding a
/// frame whose checksum holds and whose payload `good` accepts (it decodes), or `None` when
/// nothing readable follows. A frame header is not findable by a marker, so every offset is
/// tried: a damaged length cannot say where its frame ended, while a checksum that holds over
/// a payload that also decodes does not happen by chance.
pub fn resync(bytes: &[u8], at: usize, good: impl Fn(&[u8]) -> bool) -> Option<usize> {
    (at + 1..bytes.len()).find(|p| frame_at(bytes, *p).is_some_and(|(payload, _)| good(payload)))
}

/// `payload` as a frame: its length and checksum, then itself; `None` past a length's u32.
pub fn framed(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    Some(frame)
}

/// The valid frame starting at `at`: its payload and where the next one starts.
pub fn frame_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at.checked_add(FRAME_HEADER)?)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[4..].try_into().ok()?);
    let start = at + FRAME_HEADER;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (len > 0 && crc32fast::hash(payload) == crc).then_some((payload, start + len))
}

/// Segment numbers present, ascending.
pub fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    numbered(dir, ".wal")
}

/// The segment numbers of the files in `dir` named `<number in hex><suffix>`, ascending.
pub fn numbered(dir: &Path, suffix: &str) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(suffix)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        framed(payload).unwrap()
    }

    #[test]
    fn reading_resumes_at_the_next_frame_that_checks_and_decodes_after_damage() {
        let (one, two, three) = (frame(b"one"), frame(b"two"), frame(b"three"));
        let mut bytes = [one.clone(), two.clone(), three.clone()].concat();
        let damaged = one.len();
        bytes[damaged + 2] ^= 0x40; // the second frame's length
        let after = damaged + two.len();
        assert!(matches!(classify(&bytes, damaged), At::Damaged(_)));
        assert_eq!(resync(&bytes, damaged, |_| true), Some(after));
        // A frame that checks but does not decode is not a place to resume.
        assert_eq!(resync(&bytes, damaged, |p| p != b"three"), None);
        match classify(&bytes, after) {
            At::Frame(payload, next) => assert_eq!((payload, next), (&b"three"[..], bytes.len())),
            _ => panic!("the third frame is readable"),
        }
        // The same damage in the last frame is a torn tail: nothing readable follows.
        let torn = bytes.len() - 1;
        bytes[torn] ^= 0xff;
        assert!(matches!(classify(&bytes, after), At::Torn));
        assert_eq!(resync(&bytes, after, |_| true), None);
    }
}
