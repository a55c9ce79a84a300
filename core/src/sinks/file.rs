//! `file`: appends one JSON line per event, a batch of lines per write. A line is written whole
//! or not at all: a write that fails part-way is cut back off the file and the batch fails (the
//! worker retries it whole). Before each write the sink checks that its path still names the
//! file it has open, and reopens it when logrotate (or anyone) moved or deleted it; SIGHUP makes
//! it reopen too.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{lines, Delivery, Sink, SinkBuildError, SinkError, SinkFuture};

/// Lines per write.
const BATCH: usize = 256;

pub struct FileSink {
    path: PathBuf,
    file: Arc<Mutex<File>>,
    reopen: Arc<AtomicBool>,
}

impl FileSink {
    pub async fn open(path: &Path) -> Result<FileSink, SinkBuildError> {
        let file = open(path).map_err(|source| SinkBuildError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
            reopen: Arc::default(),
        })
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
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
        Box::pin(async move {
            // File I/O blocks: on the blocking pool, not the async threads.
            tokio::task::spawn_blocking(move || {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                if reopen.swap(false, Ordering::Relaxed) || !still_there(&path, &file)? {
                    *file = open(&path)?;
                    tracing::info!(path = %path.display(), "file sink reopened");
                }
                let before = file.metadata()?.len();
                if let Err(error) = file.write_all(&text) {
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
