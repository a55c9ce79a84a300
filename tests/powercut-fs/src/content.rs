//! A file's bytes as shared fixed-size chunks: taking a synced copy clones pointers, not bytes,
//! and a write after it copies only the chunks it touches. Whether two copies hold the same
//! chunk is a pointer comparison, which is how a power cut writes back only what changed.

use std::sync::Arc;

/// Bytes per chunk.
pub const CHUNK: usize = 16 * 1024;

/// A file's bytes: `len` of them, in chunks of [`CHUNK`] bytes (the last one zero past `len`).
#[derive(Clone, Debug, Default)]
pub struct Content {
    len: u64,
    chunks: Vec<Arc<Vec<u8>>>,
}

impl Content {
    pub fn from_bytes(bytes: &[u8]) -> Content {
        let mut content = Content::default();
        content.write(0, bytes);
        content
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `size` bytes from `offset`; fewer at the end of the file.
    pub fn read(&self, offset: u64, size: usize) -> Vec<u8> {
        let end = self.len.min(offset.saturating_add(size as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let (index, within) = split(at);
            let take = (CHUNK - within).min((end - at) as usize);
            out.extend_from_slice(&self.chunks[index][within..within + take]);
            at += take as u64;
        }
        out
    }

    /// Writes `data` at `offset`; a gap before it reads as zeros.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        self.grow_chunks(end);
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let (index, within) = split(at);
            let take = (CHUNK - within).min(rest.len());
            Arc::make_mut(&mut self.chunks[index])[within..within + take]
                .copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            at += take as u64;
        }
        self.len = self.len.max(end);
    }

    /// Cuts the file to `len` bytes, or extends it with zeros.
    pub fn set_len(&mut self, len: u64) {
        if len >= self.len {
            self.grow_chunks(len);
            self.len = len;
            return;
        }
        self.chunks.truncate(chunks_for(len));
        // Bytes past the new end must read as zeros if the file grows again.
        let (index, within) = split(len);
        if within > 0 {
            Arc::make_mut(&mut self.chunks[index])[within..].fill(0);
        }
        self.len = len;
    }

    /// The whole file.
    pub fn to_vec(&self) -> Vec<u8> {
        self.read(0, self.len as usize)
    }

    /// The chunks with their offsets, each cut at the end of the file.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, &Arc<Vec<u8>>, usize)> {
        self.chunks.iter().enumerate().map(|(i, chunk)| {
            let start = (i * CHUNK) as u64;
            let len = (self.len - start).min(CHUNK as u64) as usize;
            (start, chunk, len)
        })
    }

    /// Whether chunk `index` of `self` is the very chunk of `other` (so holds the same bytes).
    pub fn shares_chunk(&self, other: &Content, index: usize) -> bool {
        match (self.chunks.get(index), other.chunks.get(index)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn grow_chunks(&mut self, len: u64) {
        let needed = chunks_for(len);
        while self.chunks.len() < needed {
            self.chunks.push(Arc::new(vec![0; CHUNK]));
        }
    }
}

fn split(at: u64) -> (usize, usize) {
    ((at / CHUNK as u64) as usize, (at % CHUNK as u64) as usize)
}

fn chunks_for(len: u64) -> usize {
    len.div_ceil(CHUNK as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_across_chunks_read_back_and_gaps_are_zeros() {
        let mut content = Content::default();
        content.write(CHUNK as u64 - 2, b"abcd");
        assert_eq!(content.len(), CHUNK as u64 + 2);
        assert_eq!(content.read(CHUNK as u64 - 3, 10), b"\0abcd");
        assert_eq!(content.read(0, 2), b"\0\0");
        assert!(content.read(content.len(), 5).is_empty());
    }

    #[test]
    fn a_cut_then_a_growth_reads_zeros_where_the_cut_bytes_were() {
        let mut content = Content::from_bytes(b"hello world");
        content.set_len(5);
        content.set_len(8);
        assert_eq!(content.to_vec(), b"hello\0\0\0");
    }

    #[test]
    fn a_copy_shares_chunks_until_one_side_writes() {
        let mut now = Content::from_bytes(&vec![7; 3 * CHUNK]);
        let synced = now.clone();
        now.write(CHUNK as u64, b"x");
        assert!(now.shares_chunk(&synced, 0));
        assert!(!now.shares_chunk(&synced, 1));
        assert!(now.shares_chunk(&synced, 2));
        assert_eq!(synced.read(CHUNK as u64, 1), [7]);
    }
}
