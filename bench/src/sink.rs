//! Reading a file sink as the server appends to it: only the new bytes on each poll, whole lines
//! only; and a watcher thread that notes when each event's line first appeared.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A file sink read incrementally.
pub struct SinkTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    lines: u64,
}

impl SinkTail {
    pub fn new(path: PathBuf) -> SinkTail {
        SinkTail {
            path,
            offset: 0,
            partial: Vec::new(),
            lines: 0,
        }
    }

    /// The complete lines written since the last poll (none while the file does not exist).
    pub fn poll(&mut self) -> std::io::Result<Vec<Vec<u8>>> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let read = file.read_to_end(&mut self.partial)?;
        self.offset += read as u64;
        // Copy each complete line out, then drop them from the buffer in one go: linear in what
        // was read, and no line keeps the buffer's allocation alive.
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(len) = self.partial[start..].iter().position(|b| *b == b'\n') {
            lines.push(self.partial[start..start + len].to_vec());
            start += len + 1;
        }
        self.partial.drain(..start);
        self.lines += lines.len() as u64;
        Ok(lines)
    }

    /// Counts the complete lines written since the last poll, without keeping them: for
    /// sinks of a million lines. Returns the total so far.
    pub fn count(&mut self) -> std::io::Result<u64> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self.lines),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = vec![0; 1 << 20];
        loop {
            let read = file.read(&mut chunk)?;
            if read == 0 {
                return Ok(self.lines);
            }
            self.offset += read as u64;
            self.lines += chunk[..read].iter().filter(|b| **b == b'\n').count() as u64;
        }
    }

    /// Complete lines seen so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }
}

/// The event id of an envelope line: its first field, `{"id":"..."`.
pub fn envelope_id(line: &[u8]) -> Option<&str> {
    let rest = line.strip_prefix(br#"{"id":""#)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// A thread polling a file sink every `every`, noting when each event id's line appeared.
pub struct SinkWatch {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SinkWatch {
    pub fn spawn(path: PathBuf, every: Duration) -> SinkWatch {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seen, thread_stop) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut tail = SinkTail::new(path);
            while !thread_stop.load(Ordering::Relaxed) {
                let lines = tail.poll().unwrap_or_default();
                if !lines.is_empty() {
                    let now = Instant::now();
                    if let Ok(mut seen) = thread_seen.lock() {
                        for line in &lines {
                            if let Some(id) = envelope_id(line) {
                                seen.entry(id.to_owned()).or_insert(now);
                            }
                        }
                    }
                }
                std::thread::sleep(every);
            }
        });
        SinkWatch {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// When the event's line was first seen.
    pub fn seen(&self, id: &str) -> Option<Instant> {
        self.seen.lock().ok()?.get(id).copied()
    }
}

impl Drop for SinkWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_lines_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let mut tail = SinkTail::new(path.clone());
        assert!(tail.poll().unwrap().is_empty());
        std::fs::write(&path, b"{\"id\":\"a\"}\n{\"id\":\"b").unwrap();
        let lines = tail.poll().unwrap();
        assert_eq!(lines, vec![b"{\"id\":\"a\"}".to_vec()]);
        assert_eq!(envelope_id(&lines[0]), Some("a"));
        std::fs::write(&path, b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n").unwrap();
        let lines = tail.poll().unwrap();
        assert_eq!(envelope_id(&lines[0]), Some("b"));
        assert_eq!(tail.lines(), 2);
        let mut counter = SinkTail::new(path.clone());
        assert_eq!(counter.count().unwrap(), 2);
        std::fs::write(&path, b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c").unwrap();
        assert_eq!(counter.count().unwrap(), 2);
    }
}
