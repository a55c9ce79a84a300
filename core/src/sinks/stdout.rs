//! `stdout`: one JSON line per event on standard output (logs go to standard error), a batch of
//! lines per write.

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{lines, Delivery, Sink, SinkFuture};

/// Lines per write.
const BATCH: usize = 256;

pub struct StdoutSink {
    // One writer at a time, so lines from several workers never interleave.
    out: Mutex<tokio::io::Stdout>,
}

impl StdoutSink {
    pub fn new() -> StdoutSink {
        StdoutSink {
            out: Mutex::new(tokio::io::stdout()),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink::new()
    }
}

impl Sink for StdoutSink {
    fn max_batch(&self) -> usize {
        BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery<'a>]) -> SinkFuture<'a> {
        Box::pin(async move {
            let text = lines(batch);
            let mut out = self.out.lock().await;
            out.write_all(&text).await?;
            out.flush().await?;
            Ok(())
        })
    }
}
