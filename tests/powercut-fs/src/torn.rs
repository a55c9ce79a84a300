//! Torn writes: what a cut may keep of a file's writes since its last sync. A real disk can
//! persist some of them before the power goes, in the order they were issued, the last one
//! only in part. [`Unsynced`] records a file's writes and truncations since its last sync;
//! [`Unsynced::tear`] applies, to the synced bytes, the first few whole and a prefix of the next
//! one, as far as a seeded generator says.

use crate::content::Content;

/// A change to a file's bytes.
#[derive(Clone, Debug)]
enum Op {
    Write { at: u64, data: Vec<u8> },
    SetLen(u64),
}

/// Bytes of unsynced writes recorded per file; later writes are not recorded, so a cut keeps
/// at most the recorded ones (still a prefix of what was issued, as a disk may keep).
const MAX_RECORDED: usize = 64 * 1024 * 1024;

/// A file's writes and truncations since its last sync, in order.
#[derive(Clone, Debug, Default)]
pub struct Unsynced {
    ops: Vec<Op>,
    bytes: usize,
    /// Some were not recorded (past [`MAX_RECORDED`]).
    full: bool,
}

impl Unsynced {
    pub fn write(&mut self, at: u64, data: &[u8]) {
        if self.full || self.bytes + data.len() > MAX_RECORDED {
            self.full = true;
            return;
        }
        self.bytes += data.len();
        self.ops.push(Op::Write {
            at,
            data: data.to_vec(),
        });
    }

    pub fn set_len(&mut self, len: u64) {
        if !self.full {
            self.ops.push(Op::SetLen(len));
        }
    }

    /// A sync made them all durable.
    pub fn clear(&mut self) {
        *self = Unsynced::default();
    }

    /// What a torn cut leaves of the file: `synced`, then the first of these changes whole
    /// and a prefix of the next write, as many as `rng` draws (none to all).
    pub fn tear(&self, synced: &Content, rng: &mut fastrand::Rng) -> Content {
        let mut content = synced.clone();
        let whole = rng.usize(0..=self.ops.len());
        for op in &self.ops[..whole] {
            match op {
                Op::Write { at, data } => content.write(*at, data),
                Op::SetLen(len) => content.set_len(*len),
            }
        }
        if let Some(Op::Write { at, data }) = self.ops.get(whole) {
            let part = rng.usize(0..=data.len());
            content.write(*at, &data[..part]);
        }
        content
    }
}
