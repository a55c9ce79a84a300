//! Sinks: where a workspace's events go. A sink takes a batch of envelopes at a time (one for
//! http, many for files, stdout, nats and redis); the delivery workers ([`crate::deliver`])
//! drive it from the durable queue and retry what it refuses.

mod file;
mod http;
pub mod nats;
pub mod redis;
mod stdout;
mod template;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::base::names::{Secret, SinkName, WorkspaceId};

pub use file::{FileSink, FileSync};
pub use http::{HttpFormat, HttpSink};
pub use nats::{NatsConfig, NatsSink};
pub use redis::{RedisConfig, RedisSink};
pub use stdout::StdoutSink;
pub use template::{Fields, Template, TemplateError};

/// What a sink is, with its own settings: `type` and the keys beside it in routes.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    Stdout,
    File {
        path: PathBuf,
        sync: FileSync,
    },
    Http {
        /// Absolute, http or https.
        url: hyper::Uri,
        /// Default 10s.
        timeout: Duration,
        /// Signs deliveries (Standard Webhooks) when present.
        secret: Option<Secret>,
        /// The envelope, or the vendor's body as received.
        format: HttpFormat,
    },
    Nats(NatsConfig),
    Redis(RedisConfig),
}

/// One event handed to a sink.
pub struct Delivery<'a> {
    /// The envelope id.
    pub event_id: &'a str,
    /// The envelope as compact JSON (no newlines).
    pub envelope: &'a [u8],
    /// The delivery attempt's W3C trace context, when traces are on: http sends it as the
    /// `traceparent` header, nats as a message header, redis as an entry field.
    pub traceparent: Option<&'a str>,
}

pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A destination for events. `Ok` means the sink has every event of the batch: their queue
/// entries are dropped. An error means it has none of them (a sink that writes several makes
/// that true, e.g. by cutting a partial write off).
pub trait Sink: Send + Sync {
    /// The most events one call takes; the worker hands over up to this many at once.
    fn max_batch(&self) -> usize {
        1
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery<'a>]) -> SinkFuture<'a>;

    /// Reopens what the sink writes to (SIGHUP, after logrotate); a no-op for most sinks.
    fn reopen(&self) {}
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
    /// The envelope lacks `workspace`, `vendor` or `type`, which broker sinks name subjects
    /// and keys with (never so for an envelope switchyard wrote).
    #[error("unreadable envelope: {0}")]
    Envelope(String),
}

impl SinkError {
    /// A refusal retrying cannot fix: a 4xx other than 408 (timeout) and 429 (rate limit).
    pub fn is_permanent(&self) -> bool {
        matches!(self, SinkError::Status { status, .. }
            if (400..500).contains(status) && *status != 408 && *status != 429)
    }

    /// Whether the sink as a whole is at fault (it is down, full or throttling), rather than
    /// this one event: its worker backs off as a whole.
    pub fn is_sink_wide(&self) -> bool {
        match self {
            SinkError::Io(_) | SinkError::Timeout(_) | SinkError::Request(_) => true,
            SinkError::Envelope(_) => false,
            SinkError::Status {
                status,
                retry_after,
            } => *status == 429 || retry_after.is_some(),
        }
    }

    /// The wait the sink asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A batch as JSON lines, one envelope per line.
fn lines(batch: &[Delivery<'_>]) -> Vec<u8> {
    let mut text = Vec::with_capacity(batch.iter().map(|d| d.envelope.len() + 1).sum());
    for delivery in batch {
        text.extend_from_slice(delivery.envelope);
        text.push(b'\n');
    }
    text
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
    #[error("{0}")]
    Broker(String),
}

/// Builds the sink `sink` of `workspace` as its configuration describes.
pub async fn build(
    workspace: &WorkspaceId,
    sink: &SinkName,
    kind: &SinkKind,
) -> Result<Arc<dyn Sink>, SinkBuildError> {
    Ok(match kind {
        SinkKind::Stdout => Arc::new(StdoutSink::new()),
        SinkKind::File { path, sync } => Arc::new(FileSink::open(path, *sync).await?),
        SinkKind::Http {
            url,
            timeout,
            secret,
            format,
        } => Arc::new(HttpSink::new(
            url.clone(),
            *timeout,
            secret.clone(),
            *format,
        )?),
        SinkKind::Nats(config) => Arc::new(NatsSink::connect(workspace, sink, config).await?),
        SinkKind::Redis(config) => Arc::new(RedisSink::new(workspace, sink, config)?),
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
