//! `file`: appends one JSON line per event. The file is opened once, in append mode, and each
//! line goes out in a single write so a reader never sees half an event.

use std::path::Path;

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{Delivery, Sink, SinkBuildError, SinkFuture};

pub struct FileSink {
    file: Mutex<File>,
}

impl FileSink {
    pub async fn open(path: &Path) -> Result<FileSink, SinkBuildError> {
        let open_error = |source| SinkBuildError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(open_error)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(open_error)?;
        Ok(FileSink {
            file: Mutex::new(file),
        })
    }
}

impl Sink for FileSink {
    fn deliver<'a>(&'a self, delivery: Delivery<'a>) -> SinkFuture<'a> {
        Box::pin(async move {
            let mut line = Vec::with_capacity(delivery.envelope.len() + 1);
            line.extend_from_slice(delivery.envelope);
            line.push(b'\n');
            let mut file = self.file.lock().await;
            file.write_all(&line).await?;
            // Handed to the OS before the queue entry is dropped: survives a crash of this process.
            file.flush().await?;
            Ok(())
        })
    }
}
