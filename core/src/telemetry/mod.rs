//! OpenTelemetry traces (`server.telemetry`): the server's `tracing` spans (the request, verify,
//! map, commit, each delivery attempt) become OTel spans, exported over OTLP/HTTP (protobuf) in
//! batches from a thread of their own ([`export`]). A request never waits on the collector: a
//! dead one costs only the spans it did not take, counted in
//! `switchyard_trace_spans_dropped_total`.
//!
//! A request continues the trace of the vendor's `traceparent` (W3C Trace Context); the
//! event keeps its request's `traceparent` in its envelope, so each delivery attempt, however
//! much later, is a span of the same trace, and sinks pass the attempt's `traceparent` on.

mod export;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use tracing::subscriber::Interest;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::metrics;

/// `server.telemetry`.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Where spans are POSTed: the collector's base URL with `/v1/traces`.
    pub traces_url: hyper::Uri,
    /// The share of traces kept, 0 to 1; a vendor's `traceparent` decides for its own.
    pub sample_ratio: f64,
    pub service_name: String,
}

/// `sample_ratio` is checked to be a number from 0 to 1, never NaN.
impl Eq for TelemetryConfig {}

/// Spans wait at most this long for their batch to go.
const EXPORT_EVERY: Duration = Duration::from_secs(1);
/// Spans waiting for export at most (queued, or in an export not yet ended); past it, new ones
/// are dropped, counted.
const MAX_QUEUED_SPANS: usize = 8192;
/// Spans per export: fewer, larger requests to the collector under load.
const MAX_EXPORT_BATCH: usize = 2048;
/// One export's time limit: a collector that hangs delays only the export thread.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// What shutting down gives the last batch.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// Set once traces are on: the delivery path skips reading `traceparent` otherwise.
static ON: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot start the trace exporter: {0}")]
    Start(String),
}

/// The running exporter; [`Telemetry::shutdown`] sends what is left.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// The layer that turns the server's spans into OTel spans: spans only (events stay log
/// lines), whatever the log filter says.
pub type TraceLayer<S> = Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
    SpansOnly,
    S,
>;

/// The server's own spans, not events (they stay log lines) nor other crates' spans. Decided by
/// each callsite's metadata alone, so `tracing` asks once per callsite, not at every event; and
/// no more verbose than `debug`, so other crates' `trace` records (sled's, through `log`) are
/// not even made.
pub struct SpansOnly;

impl SpansOnly {
    fn admits(meta: &tracing::Metadata<'_>) -> bool {
        meta.is_span() && meta.target().starts_with("switchyard")
    }
}

impl<S> tracing_subscriber::layer::Filter<S> for SpansOnly {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        SpansOnly::admits(meta)
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        match SpansOnly::admits(meta) {
            true => Interest::always(),
            false => Interest::never(),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

impl Telemetry {
    pub fn start<S>(config: &TelemetryConfig) -> Result<(Telemetry, TraceLayer<S>), TelemetryError>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let (dropped, waiting) = (metrics::trace_spans_dropped(), export::Waiting::default());
        let exporter = export::exporter(config, EXPORT_TIMEOUT, dropped.clone(), waiting.clone())?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(EXPORT_EVERY)
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_max_export_batch_size(MAX_EXPORT_BATCH)
            .build();
        let processor = export::Bounded {
            inner: BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch)
                .build(),
            waiting,
            limit: MAX_QUEUED_SPANS,
            dropped,
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("switchyard");
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // The request's span is entered at every poll of its future: timing its busy and
            // idle stretches there was most of what traces cost per request.
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(SpansOnly);
        ON.store(true, Ordering::Relaxed);
        Ok((Telemetry { provider }, layer))
    }

    /// Sends the spans still queued, for at most a moment.
    pub fn shutdown(self) {
        ON.store(false, Ordering::Relaxed);
        let _ = self.provider.shutdown_with_timeout(FLUSH_AT_EXIT);
    }
}

/// Whether traces are being recorded.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Makes `span` (not entered yet) continue the trace the request's `traceparent` names.
pub fn continue_from(span: &Span, headers: &HeaderMap) {
    if !enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Makes `span` (not entered yet) a child of the span a stored `traceparent` names.
pub fn follow(span: &Span, traceparent: &str) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = traceparent.parse() {
        headers.insert("traceparent", value);
        continue_from(span, &headers);
    }
}

/// `span`'s W3C `traceparent`, to pass on; `None` when traces are off.
pub fn traceparent(span: &Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    let otel = context.span();
    let ids = otel.span_context();
    if !ids.is_valid() {
        return None;
    }
    // W3C Trace Context version 00, written directly: the propagator would build a header map
    // for it, twice per request on the hot path.
    Some(format!(
        "00-{:032x}-{:016x}-{:02x}",
        ids.trace_id(),
        ids.span_id(),
        ids.trace_flags().to_u8()
    ))
}

/// The trace id (hex) a `traceparent` names, for log lines.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}
