//! Sinks: where a workspace's events go. A sink delivers one envelope at a time; the delivery
//! workers ([`crate::deliver`]) drive it from the durable queue and retry what it refuses.

mod file;
mod http;
mod stdout;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::SinkKind;

pub use file::FileSink;
pub use http::HttpSink;
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

/// Why a sink did not take an event.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
}

impl SinkError {
    /// A refusal retrying cannot fix: a 4xx other than 408 (timeout) and 429 (rate limit).
    pub fn is_permanent(&self) -> bool {
        matches!(self, SinkError::Status { status, .. }
            if (400..500).contains(status) && *status != 408 && *status != 429)
    }

    /// The wait the sink asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkBuildError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid secret: {0}")]
    Secret(&'static str),
}

/// Builds the sink a configuration describes.
pub async fn build(kind: &SinkKind) -> Result<Arc<dyn Sink>, SinkBuildError> {
    Ok(match kind {
        SinkKind::Stdout => Arc::new(StdoutSink::new()),
        SinkKind::File { path } => Arc::new(FileSink::open(path).await?),
        SinkKind::Http {
            url,
            timeout,
            secret,
        } => Arc::new(HttpSink::new(url.clone(), *timeout, secret.clone())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_errors_other_than_408_and_429_are_permanent() {
        let status = |status| SinkError::Status {
            status,
            retry_after: None,
        };
        assert!(status(400).is_permanent());
        assert!(status(404).is_permanent());
        assert!(status(410).is_permanent());
        assert!(!status(408).is_permanent());
        assert!(!status(429).is_permanent());
        assert!(!status(500).is_permanent());
        assert!(!status(503).is_permanent());
        assert!(!SinkError::Timeout(Duration::from_secs(1)).is_permanent());
        assert!(!SinkError::Request("refused".into()).is_permanent());
    }
}
