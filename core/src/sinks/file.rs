//! `file`: appends one JSON line per event, a batch of lines per write. A line is written whole
//! or not at all: a write that fails part-way is cut back off the file and the batch fails (the
//! worker retries it whole), and a partial last line found when the file is opened (a write cut
//! short by a crash or a power cut) is cut off too. Before each write the sink checks that its path still names the
//! file it has open, and reopens it when logrotate (or anyone) moved or deleted it; SIGHUP makes
//! it reopen too. With `sync: batch` (the default) a batch counts as delivered only once it is
//! on disk (`fdatasync`), and a file the sink creates has its name synced into its directory;
//! `sync: none` leaves that to the kernel, and a power cut may take lines counted delivered.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{lines, Delivery, Sink, SinkBuildError, SinkError, SinkFuture};
use crate::base::durable;

/// Lines per write.
const BATCH: usize = 256;

/// A file sink's `sync`: when its lines reach the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileSync {
    /// `fdatasync` after each batch, before it counts as delivered.
    #[default]
    Batch,
    /// Never: faster, and a power cut (not a crash) may lose lines counted delivered.
    None,
}

impl FileSync {
    /// The values of the `sync` key.
    pub const VALUES: &'static str = "batch or none";

    pub fn parse(text: &str) -> Option<FileSync> {
        match text {
            "batch" => Some(FileSync::Batch),
            "none" => Some(FileSync::None),
            _ => None,
        }
    }
}

pub struct FileSink {
    path: PathBuf,
    sync: FileSync,
    file: Arc<Mutex<File>>,
    reopen: Arc<AtomicBool>,
}

impl FileSink {
    pub async fn open(path: &Path, sync: FileSync) -> Result<FileSink, SinkBuildError> {
        let file = open(path, sync).map_err(|source| SinkBuildError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FileSink {
            path: path.to_path_buf(),
            sync,
            file: Arc::new(Mutex::new(file)),
            reopen: Arc::default(),
        })
    }
}

/// Opens `path` for appending (and reading, to find a partial last line), creating it and its
/// directories if need be; with [`FileSync::Batch`] whatever it created is synced into its
/// parent, or the synced lines could vanish with the file's name.
fn open(path: &Path, sync: FileSync) -> std::io::Result<File> {
    let dir = durable::parent(path);
    let file = if sync == FileSync::None {
        std::fs::create_dir_all(dir)?;
        OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?
    } else {
        durable::create_dirs(dir)?;
        match OpenOptions::new().read(true).append(true).open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(path)?;
                durable::sync_dir(dir)?;
                file
            }
            opened => opened?,
        }
    };
    let cut = cut_partial_line(&file, sync)?;
    if cut > 0 {
        tracing::warn!(path = %path.display(), cut, "file sink: a partial last line (from a write cut short) was cut off; its batch is written again");
    }
    Ok(file)
}

/// Bytes read at a time when looking back for the last newline.
const LOOK_BACK: u64 = 64 * 1024;

/// A file that does not end with a newline ends in part of a batch whose write was cut short
/// (a crash, or a power cut that kept part of an unsynced write): that batch never counted as
/// delivered and is written again whole, so the partial line is cut off first rather than left
/// to run into the next line. Returns the bytes cut: 0 for a file that ends with a newline,
/// or is empty (a new one).
fn cut_partial_line(file: &File, sync: FileSync) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0; LOOK_BACK as usize];
    let keep = loop {
        if end == 0 {
            if len == 0 {
                return Ok(0);
            }
            break 0;
        }
        let start = end.saturating_sub(LOOK_BACK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if end == len && chunk.last() == Some(&b'\n') {
            return Ok(0);
        }
        if let Some(at) = chunk.iter().rposition(|b| *b == b'\n') {
            break start + at as u64 + 1;
        }
        end = start;
    };
    file.set_len(keep)?;
    if sync == FileSync::Batch {
        file.sync_data()?;
    }
    Ok(len - keep)
}

/// Whether `path` still names the file `file` has open.
fn still_there(path: &Path, file: &File) -> std::io::Result<bool> {
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl Sink for FileSink {
    fn max_batch(&self) -> usize {
        BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery<'a>]) -> SinkFuture<'a> {
        let text = lines(batch);
        let (path, file, reopen) = (self.path.clone(), self.file.clone(), self.reopen.clone());
        let sync = self.sync;
        Box::pin(async move {
            // File I/O blocks: on the blocking pool, not the async threads.
            tokio::task::spawn_blocking(move || {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                if reopen.swap(false, Ordering::Relaxed) || !still_there(&path, &file)? {
                    *file = open(&path, sync)?;
                    tracing::info!(path = %path.display(), "file sink reopened");
                }
                let before = file.metadata()?.len();
                let written = file.write_all(&text).and_then(|()| match sync {
                    FileSync::Batch => file.sync_data(),
                    FileSync::None => Ok(()),
                });
                if let Err(error) = written {
                    // No half line left behind: the retry writes the batch whole.
                    let _ = file.set_len(before);
                    return Err(SinkError::Io(error));
                }
                Ok(())
            })
            .await
            .map_err(|e| SinkError::Io(std::io::Error::other(e)))?
        })
    }

    fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &'static str) -> Delivery<'static> {
        Delivery {
            event_id: id,
            envelope: b"{}",
            traceparent: None,
        }
    }

    #[test]
    fn the_sync_key_is_batch_or_none() {
        assert_eq!(FileSync::parse("batch"), Some(FileSync::Batch));
        assert_eq!(FileSync::parse("none"), Some(FileSync::None));
        assert_eq!(FileSync::parse("always"), None);
        assert_eq!(FileSync::default(), FileSync::Batch);
    }

    #[tokio::test]
    async fn a_synced_sink_creates_its_directories_and_reopens_a_rotated_file() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("new/dir/events.jsonl");
        let sink = FileSink::open(&path, FileSync::Batch).await.unwrap();
        sink.deliver(&[delivery("a")]).await.unwrap();
        let rotated = root.path().join("new/dir/events.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.deliver(&[delivery("b"), delivery("c")]).await.unwrap();
        let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!(lines(&rotated), 1);
        assert_eq!(lines(&path), 2);
    }

    #[tokio::test]
    async fn a_partial_last_line_is_cut_off_when_the_file_is_opened() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("events.jsonl");
        // A line longer than one look back, so the search for its start crosses chunks.
        let long = format!("{{\"cut\":\"{}", "x".repeat(2 * LOOK_BACK as usize));
        for sync in [FileSync::Batch, FileSync::None] {
            std::fs::write(&path, format!("{{\"whole\":1}}\n{long}")).unwrap();
            let sink = FileSink::open(&path, sync).await.unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"whole\":1}\n");
            sink.deliver(&[delivery("a")]).await.unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.lines().count(), 2, "{text}");
        }
        // Only a partial line: nothing is left of it. A whole file is left as it is.
        std::fs::write(&path, &long).unwrap();
        FileSink::open(&path, FileSync::Batch).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::write(&path, "{}\n{}\n").unwrap();
        FileSink::open(&path, FileSync::Batch).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n{}\n");
        // What is cut is counted (and logged by the caller); nothing for a new, empty file.
        let cut = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let file = OpenOptions::new().read(true).append(true).open(&path);
            cut_partial_line(&file.unwrap(), FileSync::None).unwrap()
        };
        assert_eq!(cut(""), 0);
        assert_eq!(cut("{}\n"), 0);
        assert_eq!(cut("{}\n{\"cut"), 5);
        assert_eq!(cut(&long), long.len() as u64);
    }

    /// Set in the child process of the test below: the sink file it writes.
    const PART_WAY_CHILD: &str = "SWITCHYARD_TEST_FILE_SINK_PART_WAY";

    /// A real write cut short by the kernel: the test runs itself again in a child under a
    /// file size limit (`ulimit -f`, with SIGXFSZ ignored so the write fails with EFBIG
    /// instead of killing it), where a batch longer than the room left is written part-way
    /// and then fails.
    #[tokio::test]
    async fn a_write_failing_part_way_leaves_no_half_line() {
        if let Ok(path) = std::env::var(PART_WAY_CHILD) {
            let path = PathBuf::from(path);
            let big = format!("{{\"x\":\"{}\"}}", "x".repeat(4096));
            // The limit cuts a write part-way: some bytes go in, then the write fails.
            let mut scratch = File::create(path.with_extension("scratch")).unwrap();
            let written = scratch.write(big.as_bytes()).unwrap();
            assert!(0 < written && written < big.len(), "{written}");
            drop(scratch);
            std::fs::remove_file(path.with_extension("scratch")).unwrap();

            let sink = FileSink::open(&path, FileSync::Batch).await.unwrap();
            sink.deliver(&[delivery("a")]).await.unwrap();
            let too_long = [Delivery {
                event_id: "b",
                envelope: big.as_bytes(),
                traceparent: None,
            }];
            let error = sink.deliver(&too_long).await.unwrap_err();
            assert!(matches!(error, SinkError::Io(_)), "{error}");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("events.jsonl");
        let test = "sinks::file::tests::a_write_failing_part_way_leaves_no_half_line";
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"trap '' XFSZ; ulimit -f 1 && exec "$0" --exact "$1" --nocapture"#)
            .arg(std::env::current_exe().unwrap())
            .arg(test)
            .env(PART_WAY_CHILD, &path)
            .output()
            .unwrap();
        assert!(
            child.status.success() && String::from_utf8_lossy(&child.stdout).contains("1 passed"),
            "{}\n{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        // The first batch whole, nothing of the second.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
    }
}
