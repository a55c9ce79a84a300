//! `nats`: publishes each envelope to a JetStream stream, on a subject made from the sink's
//! template (`webhooks.{workspace}.{type}`), with `Nats-Msg-Id` set to the envelope id. An event
//! is delivered once JetStream has acknowledged it (the stream stored it); a missing ack, no
//! stream capturing the subject, or the timeout fails the batch and the worker retries it.
//! A retried event that JetStream already stored is dropped by the stream's duplicate window
//! (2 minutes unless the stream says otherwise), keyed by `Nats-Msg-Id`.
//!
//! The client connects in the background and reconnects by itself: a server that is down
//! neither delays start-up nor other sinks; deliveries fail until it is back.

mod config;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, ServerAddr};
use bytes::Bytes;

pub use config::{valid_stream_name, NatsConfig};

use super::{Delivery, Fields, Sink, SinkBuildError, SinkError, SinkFuture};
use crate::base::names::{SinkName, WorkspaceId};

/// Envelopes published before their acks are awaited; the acks come back concurrently.
const BATCH: usize = 64;

pub struct NatsSink {
    workspace: WorkspaceId,
    sink: SinkName,
    config: NatsConfig,
    jetstream: jetstream::Context,
    /// Set once the configured stream is known to exist (or when none is configured).
    stream_ready: Arc<AtomicBool>,
}

impl NatsSink {
    /// Starts connecting in the background and returns at once; with a `stream`, also tries to
    /// create it in the background (deliveries try again until it exists).
    pub async fn connect(
        workspace: &WorkspaceId,
        sink: &SinkName,
        config: &NatsConfig,
    ) -> Result<NatsSink, SinkBuildError> {
        let servers = config
            .servers
            .iter()
            .map(|url| url.expose().parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SinkBuildError::Broker(e.to_string()))?;
        let options = config
            .access
            .options()
            .await
            .map_err(SinkBuildError::Broker)?;
        let client = options
            .name(format!("switchyard {workspace}/{sink}"))
            // Connect in the background: a server that is down must not hold up start-up.
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(config.timeout)
            .request_timeout(Some(config.timeout))
            .connect(servers)
            .await
            .map_err(|e| SinkBuildError::Broker(e.to_string()))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(config.timeout)
            .build(client);
        let shown: Vec<String> = config.servers.iter().map(|u| u.redacted()).collect();
        tracing::info!(%workspace, %sink, servers = ?shown, subject = config.subject.as_str(), stream = ?config.stream, "nats sink connecting");
        let this = NatsSink {
            workspace: workspace.clone(),
            sink: sink.clone(),
            config: config.clone(),
            jetstream,
            stream_ready: Arc::new(AtomicBool::new(config.stream.is_none())),
        };
        if let Some(stream) = this.stream_config() {
            let (jetstream, ready) = (this.jetstream.clone(), this.stream_ready.clone());
            let (workspace, sink) = (workspace.clone(), sink.clone());
            tokio::spawn(async move {
                if let Err(error) = ensure_stream(&jetstream, stream, &ready).await {
                    tracing::warn!(%workspace, %sink, %error, "nats sink: stream not created yet; deliveries will try again");
                }
            });
        }
        Ok(this)
    }

    fn stream_config(&self) -> Option<stream::Config> {
        let name = self.config.stream.clone()?;
        Some(stream::Config {
            name,
            subjects: vec![self.config.subject.stream_subject()],
            // The server's default duplicate window (2 minutes) is kept: raise it on the
            // stream (`nats stream edit --dupe-window`) to cover longer outages.
            ..Default::default()
        })
    }

    async fn publish_all(&self, batch: &[Delivery<'_>]) -> Result<(), SinkError> {
        if !self.stream_ready.load(Ordering::Acquire) {
            if let Some(stream) = self.stream_config() {
                ensure_stream(&self.jetstream, stream, &self.stream_ready).await?;
            }
        }
        // Everything is published first and the acks awaited after, so they travel together.
        let mut acks: Vec<(&str, PublishAckFuture)> = Vec::with_capacity(batch.len());
        for delivery in batch {
            let fields = Fields::of_envelope(delivery.envelope)
                .map_err(|e| SinkError::Envelope(e.to_string()))?;
            let subject = self.config.subject.subject(&fields);
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, delivery.event_id);
            if let Some(traceparent) = delivery.traceparent {
                headers.insert("traceparent", traceparent);
            }
            let payload = Bytes::copy_from_slice(delivery.envelope);
            let ack = self
                .jetstream
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| publish_error(&e, self.config.timeout))?;
            acks.push((delivery.event_id, ack));
        }
        for (event_id, ack) in acks {
            let ack = ack
                .await
                .map_err(|e| publish_error(&e, self.config.timeout))?;
            tracing::debug!(workspace = %self.workspace, sink = %self.sink, event_id, stream = %ack.stream, sequence = ack.sequence, duplicate = ack.duplicate, "published to JetStream");
        }
        Ok(())
    }
}

/// Creates the stream unless one of that name exists; marks it ready either way.
async fn ensure_stream(
    jetstream: &jetstream::Context,
    config: stream::Config,
    ready: &AtomicBool,
) -> Result<(), SinkError> {
    let name = config.name.clone();
    let stream = jetstream
        .get_or_create_stream(config)
        .await
        .map_err(|e| SinkError::Request(format!("cannot create the stream {name}: {e}")))?;
    let info = stream.cached_info();
    tracing::info!(stream = %name, subjects = ?info.config.subjects, duplicate_window = ?info.config.duplicate_window, "JetStream stream ready");
    ready.store(true, Ordering::Release);
    Ok(())
}

fn publish_error(error: &jetstream::context::PublishError, timeout: Duration) -> SinkError {
    match error.kind() {
        PublishErrorKind::TimedOut => SinkError::Timeout(timeout),
        PublishErrorKind::StreamNotFound => {
            SinkError::Request("no JetStream stream captures the subject (no responders)".into())
        }
        _ => SinkError::Request(format!("JetStream publish failed: {error}")),
    }
}

impl Sink for NatsSink {
    fn max_batch(&self) -> usize {
        BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery<'a>]) -> SinkFuture<'a> {
        Box::pin(async move {
            tokio::time::timeout(self.config.timeout, self.publish_all(batch))
                .await
                .map_err(|_| SinkError::Timeout(self.config.timeout))?
        })
    }
}
