//! `stdout`: one JSON line per event on standard output (logs go to standard error).

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{Delivery, Sink, SinkFuture};

pub struct StdoutSink {
    // One writer at a time, so lines from concurrent workers never interleave.
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
    fn deliver<'a>(&'a self, delivery: Delivery<'a>) -> SinkFuture<'a> {
        Box::pin(async move {
            let mut line = Vec::with_capacity(delivery.envelope.len() + 1);
            line.extend_from_slice(delivery.envelope);
            line.push(b'\n');
            let mut out = self.out.lock().await;
            out.write_all(&line).await?;
            out.flush().await?;
            Ok(())
        })
    }
}
