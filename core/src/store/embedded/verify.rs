//! `switchyard store verify`: reads every segment of a stopped store's log, every frame (its
//! checksum, that it decodes, that each envelope decompresses), after checking that sled opens,
//! and says where each damage is and what it means. A torn tail is where a crash cut the last
//! write short: harmless. Damage with readable frames after it is data loss, which recovery
//! refuses to skip.
//!
//! With `salvage`, each damaged segment is copied aside (`<data_dir>/salvaged/<unix time>/`)
//! and rewritten with its unreadable bytes replaced by an empty frame of the same length
//! ([`super::frame::empty`]) rather than cut out: the event index, the sinks' cursors and the
//! checkpoint address the log by byte offset, so every readable frame must stay where it is.
//! Then the log is replayed into sled, any position that pointed inside the replaced bytes is
//! moved to their start, and a checkpoint at the log's end keeps recovery from replaying the
//! old cursors again.

use std::fs;
use std::path::{Path, PathBuf};

use super::engine::{check_format, open_trees, Trees};
use super::frame::{self, Cursor};
use super::index;
use super::record::{self, StoredEvent};
use super::replay;
use super::scan::{self, At, Position, FRAME_HEADER};
use super::wal;
use crate::base::durable;
use crate::base::id::EventId;
use crate::store::codec::{self, Reader};
use crate::store::StoreError;

/// What `verify` found, segment by segment.
pub struct Report {
    pub segments: Vec<SegmentReport>,
    /// Where salvage copied the damaged segments' originals, if it did.
    pub salvaged_to: Option<PathBuf>,
}

impl Report {
    /// Whether damage that loses data is left in the log (a torn tail is not damage, and
    /// salvaged bytes are gone from the log).
    pub fn damaged(&self) -> bool {
        self.segments.iter().any(|s| {
            s.damage.iter().any(|d| match d.kind {
                DamageKind::TornTail => false,
                DamageKind::Unreadable(_) => s.salvage.is_none(),
                DamageKind::Envelope(_) => true,
            })
        })
    }
}

pub struct SegmentReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub frames: u64,
    pub events: u64,
    pub damage: Vec<Damage>,
    pub salvage: Option<Salvaged>,
}

/// One damaged place: where it starts, how many bytes cannot be read, and what it is.
#[derive(Debug, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub len: u64,
    pub kind: DamageKind,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// An unreadable frame with nothing readable after it: a crash cut the write short.
    TornTail,
    /// Unreadable bytes with readable frames after them, and why.
    Unreadable(String),
    /// A readable frame holding an envelope that does not decompress.
    Envelope(EventId),
}

impl DamageKind {
    pub fn is_loss(&self) -> bool {
        !matches!(self, DamageKind::TornTail)
    }

    /// What the operator should make of it.
    pub fn meaning(&self) -> String {
        match self {
            DamageKind::TornTail => "torn tail: a crash cut the last write short; harmless \
                 (nothing in it was acknowledged), recovery ends the segment there"
                .to_owned(),
            DamageKind::Unreadable(why) => format!(
                "damage ({why}) with readable frames after it: the events in these bytes are \
                 lost and recovery stops here; restore a backup, or run `switchyard store \
                 verify --salvage` to keep every readable frame"
            ),
            DamageKind::Envelope(id) => format!(
                "event {id}'s envelope does not decompress: that event is lost; it is counted \
                 in switchyard_store_unreadable_records_total when read, the rest is unharmed"
            ),
        }
    }
}

/// What salvage did to one segment.
pub struct Salvaged {
    pub frames_kept: u64,
    pub events_kept: u64,
    /// Damaged places replaced, and their bytes.
    pub regions: u64,
    pub bytes_skipped: u64,
    /// Frames (batches) lost in the replaced bytes, when their lengths still chain from one
    /// end to the other; `None` when a damaged length hides how many.
    pub frames_lost: Option<u64>,
    /// Events the index placed in the replaced bytes: those known lost (the index may not
    /// have had the newest ones).
    pub events_lost: u64,
}

/// The frames of one segment and its damage, decided on its bytes alone.
#[derive(Debug, Default, PartialEq, Eq)]
struct Inspection {
    frames: u64,
    events: u64,
    damage: Vec<Damage>,
}

/// Reads a whole segment: every frame's checksum, that it decodes and that its envelopes
/// decompress; after damage, reading resumes at the next frame that checks and decodes.
fn inspect(bytes: &[u8]) -> Inspection {
    let mut found = Inspection::default();
    let good = |payload: &[u8]| frame::decode(payload).is_ok();
    let mut at = 0;
    loop {
        let reason = match scan::classify(bytes, at) {
            At::End => break,
            At::Torn => {
                found.damage.push(Damage {
                    offset: at as u64,
                    len: (bytes.len() - at) as u64,
                    kind: DamageKind::TornTail,
                });
                break;
            }
            At::Frame(payload, next) => match frame::decode(payload) {
                Ok(decoded) => {
                    found.frames += 1;
                    found.events += decoded.events.len() as u64;
                    for event in &decoded.events {
                        if record::decompress(event.envelope).is_err() {
                            found.damage.push(Damage {
                                offset: at as u64,
                                len: 0,
                                kind: DamageKind::Envelope(event.id.clone()),
                            });
                        }
                    }
                    at = next;
                    continue;
                }
                Err(e) => format!("a frame that does not decode: {e}"),
            },
            At::Damaged(reason) => reason,
        };
        let resume = scan::resync(bytes, at, good).unwrap_or(bytes.len());
        found.damage.push(Damage {
            offset: at as u64,
            len: (resume - at) as u64,
            kind: DamageKind::Unreadable(reason),
        });
        at = resume;
    }
    found
}

/// How many frames `bytes[start..end]` held, if their length fields (checked against nothing
/// else: the payloads are what is damaged) lead from `start` exactly to `end`.
fn frames_within(bytes: &[u8], start: usize, end: usize) -> Option<u64> {
    let (mut at, mut frames) = (start, 0);
    while at < end {
        let header = bytes.get(at..at + FRAME_HEADER)?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len == 0 {
            return None;
        }
        at = at.checked_add(FRAME_HEADER + len)?;
        frames += 1;
    }
    (at == end).then_some(frames)
}

/// A frame holding nothing, exactly `len` bytes long (19, or 21 and more; any real frame is).
fn filler(len: usize) -> Option<Vec<u8>> {
    scan::framed(&frame::empty(len.checked_sub(FRAME_HEADER)?)?)
}

/// The segment with every unreadable place replaced by filler of its length; `None` when a
/// place is too short to hold a frame.
fn patched(bytes: &[u8], damage: &[Damage]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    for d in damage
        .iter()
        .filter(|d| matches!(d.kind, DamageKind::Unreadable(_)))
    {
        let (start, len) = (d.offset as usize, d.len as usize);
        out.get_mut(start..start + len)?
            .copy_from_slice(&filler(len)?);
    }
    Some(out)
}

/// A replaced place: segment, first byte, end.
type Region = (u64, u64, u64);

/// A position strictly inside a replaced place is no frame's start any more: it moves to the
/// filler's start (an empty frame, so a cursor reads nothing there and owes nothing).
fn moved(at: Position, regions: &[Region]) -> Position {
    match regions.iter().find(|(segment, start, end)| {
        at.segment == *segment && *start < at.offset && at.offset < *end
    }) {
        Some((segment, start, _)) => Position {
            segment: *segment,
            offset: *start,
        },
        None => at,
    }
}

/// Verifies the stopped store in `dir`, and with `salvage` rewrites its damaged segments.
pub fn verify(dir: &Path, salvage: bool) -> Result<Report, StoreError> {
    let wal_dir = dir.join("wal");
    if !dir.join("db").exists() && !wal_dir.exists() {
        return Err(StoreError::Missing {
            path: dir.to_owned(),
        });
    }
    let trees = open_trees(dir, 8 << 20).map_err(|source| match source {
        // sled 0.34 reports its lock only in its message.
        sled::Error::Io(ref e) if e.to_string().contains("could not acquire lock") => {
            StoreError::InUse {
                path: dir.to_owned(),
            }
        }
        source => StoreError::Open {
            path: dir.to_owned(),
            source,
        },
    })?;
    check_format(dir, &trees.db, &trees)?;
    let log = |source| StoreError::Log {
        path: wal_dir.clone(),
        source,
    };
    let mut segments = Vec::new();
    let mut regions = Vec::new();
    let mut stamp = None;
    for segment in scan::segments(&wal_dir).map_err(log)? {
        let path = scan::segment_path(&wal_dir, segment);
        let bytes = fs::read(&path).map_err(log)?;
        let found = inspect(&bytes);
        let unreadable: Vec<&Damage> = (found.damage.iter())
            .filter(|d| matches!(d.kind, DamageKind::Unreadable(_)))
            .collect();
        let mut report = SegmentReport {
            path: path.clone(),
            bytes: bytes.len() as u64,
            frames: found.frames,
            events: found.events,
            damage: Vec::new(),
            salvage: None,
        };
        if salvage && !unreadable.is_empty() {
            let aside = match &stamp {
                Some(aside) => aside,
                None => stamp.insert(aside_dir(dir).map_err(log)?),
            };
            let fixed = patched(&bytes, &found.damage).ok_or_else(|| {
                log(std::io::Error::other(format!(
                    "{} holds a damaged place too short for a frame: restore a backup",
                    path.display()
                )))
            })?;
            rewrite(&path, aside, &fixed).map_err(log)?;
            for d in &unreadable {
                regions.push((segment, d.offset, d.offset + d.len));
            }
            report.salvage = Some(Salvaged {
                frames_kept: found.frames,
                events_kept: found.events,
                regions: unreadable.len() as u64,
                bytes_skipped: unreadable.iter().map(|d| d.len).sum(),
                frames_lost: (unreadable.iter())
                    .map(|d| frames_within(&bytes, d.offset as usize, (d.offset + d.len) as usize))
                    .sum(),
                events_lost: 0,
            });
        }
        report.damage = found.damage;
        segments.push(report);
    }
    if !regions.is_empty() {
        let lost = settle(dir, &trees, &regions).map_err(log)?;
        for report in &mut segments {
            let Some(salvaged) = report.salvage.as_mut() else {
                continue;
            };
            salvaged.events_lost = (lost.iter())
                .filter(|segment| scan::segment_path(&wal_dir, **segment) == report.path)
                .count() as u64;
        }
    }
    Ok(Report {
        segments,
        salvaged_to: stamp,
    })
}

/// `<data_dir>/salvaged/<unix time>/`, created durably.
fn aside_dir(dir: &Path) -> std::io::Result<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let aside = dir.join("salvaged").join(now.to_string());
    durable::create_dirs(&aside)?;
    Ok(aside)
}

/// Copies `path` into `aside` and replaces it with `bytes`, each step synced before the next:
/// the original is safe before anything changes, and the segment is whole at every instant.
fn rewrite(path: &Path, aside: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default();
    let copy = aside.join(name);
    fs::copy(path, &copy)?;
    fs::File::open(&copy)?.sync_all()?;
    durable::sync_dir(aside)?;
    let dir = durable::parent(path);
    let new = dir.join(format!("{}.salvage", name.to_string_lossy()));
    fs::write(&new, bytes)?;
    fs::File::open(&new)?.sync_all()?;
    fs::rename(&new, path)?;
    durable::sync_dir(dir)
}

/// After the log is readable again: sled brought up to date with it, every position inside a
/// replaced place moved to its start, and a checkpoint at the log's end, so that recovery does
/// not replay the cursors logged before the salvage over the moved ones. Returns the segment
/// of every event the index placed in a replaced place.
fn settle(dir: &Path, trees: &Trees, regions: &[Region]) -> std::io::Result<Vec<u64>> {
    let wal_dir = dir.join("wal");
    let invalid = |e: StoreError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let checkpoint = wal::read_checkpoint(&wal_dir)?;
    if moved(checkpoint, regions) != checkpoint {
        wal::write_checkpoint(&wal_dir, moved(checkpoint, regions))?;
    }
    replay::recover(trees, &wal_dir)?;
    for entry in trees.cursors.iter() {
        let (prefix, value) = entry.map_err(|e| invalid(e.into()))?;
        let cursor = codec::payload(&value)
            .and_then(|bytes| Cursor::decode(&mut Reader(bytes)))
            .map_err(|e| invalid(e.into()))?;
        let mut fixed = cursor.clone();
        fixed.read = moved(fixed.read, regions);
        for owed in &mut fixed.owed {
            owed.frame = moved(owed.frame, regions);
        }
        if fixed != cursor {
            let mut value = vec![codec::VERSION];
            fixed.encode(&mut value);
            trees
                .cursors
                .insert(prefix, value)
                .map_err(|e| invalid(e.into()))?;
        }
    }
    // By id: an event both carried into sled and in its segment's index counts once.
    let mut lost = std::collections::HashMap::new();
    let mut note = |id: &[u8], value: &[u8]| {
        let Ok(event) = StoredEvent::decode(value) else {
            return;
        };
        let span = event.span;
        if (regions.iter()).any(|(s, start, end)| {
            span.segment == *s && *start <= span.offset && span.offset < *end
        }) {
            lost.insert(id.to_vec(), span.segment);
        }
    };
    for entry in trees.events.iter() {
        let (id, value) = entry.map_err(|e| invalid(e.into()))?;
        note(&id, &value);
    }
    let mut segments: Vec<u64> = regions.iter().map(|(segment, _, _)| *segment).collect();
    segments.dedup();
    for segment in segments {
        // Rewritten: its index is made again from it at the next start.
        for (id, value) in index::take(&wal_dir, segment)? {
            note(&id, &value);
        }
    }
    trees.sync(dir)?;
    let mut end = Position::default();
    scan::replay(&wal_dir, Position::default(), |_, next, _| {
        end = next;
        Ok(())
    })?;
    wal::write_checkpoint(&wal_dir, end)?;
    Ok(lost.into_values().collect())
}

#[cfg(test)]
mod tests;
