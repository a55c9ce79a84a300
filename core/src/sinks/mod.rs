//! Sinks: where a workspace's events go. A sink delivers one envelope at a time; the delivery
//! workers ([`crate::deliver`]) drive it from the durable queue and retry what it refuses.

mod file;
mod stdout;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::SinkConfig;

pub use file::FileSink;
pub use stdout::StdoutSink;

/// One event handed to a sink.
pub struct Delivery<'a> {
    /// The envelope id.
    pub event_id: &'a str,
    /// The envelope as compact JSON (no newlines).
    pub envelope: &'a [u8],
}

pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A destination for events. `Ok` means the sink has the event: the queue entry is dropped.
pub trait Sink: Send + Sync {
    fn deliver<'a>(&'a self, delivery: Delivery<'a>) -> SinkFuture<'a>;
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum SinkBuildError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("http sinks are not available in this build")]
    Unsupported,
}

/// Builds the sink a configuration describes.
pub async fn build(config: &SinkConfig) -> Result<Arc<dyn Sink>, SinkBuildError> {
    Ok(match config {
        SinkConfig::Stdout => Arc::new(StdoutSink::new()),
        SinkConfig::File { path } => Arc::new(FileSink::open(path).await?),
        SinkConfig::Http { .. } => return Err(SinkBuildError::Unsupported),
    })
}
