//! OpenTelemetry traces (`server.telemetry`): a delivery request (its `hook` span with
//! `verify`, `map` and `commit` under it) and each delivery attempt (`deliver`) are recorded by
//! the request path as one plain record each ([`handle`]), handed finished to a thread of their
//! own that makes OTLP spans of them and exports them over OTLP/HTTP (protobuf) in batches
//! ([`export`]). A request never waits on the collector: a dead one costs only the spans it did
//! not take, counted in `switchyard_trace_spans_dropped_total`. The server's `tracing` spans
//! are log context only: traces do not make them, so they cost nothing at the default log
//! level.
//!
//! A request continues the trace of the vendor's `traceparent` (W3C Trace Context,
//! [`context`]); the event keeps its request's `traceparent` in its envelope, so each delivery
//! attempt, however much later, is a span of the same trace, and sinks pass the attempt's
//! `traceparent` on.

mod context;
mod export;
mod handle;
mod record;

use std::time::Duration;

pub use self::context::TraceIdHex;
pub use self::handle::{AttemptTrace, RequestTrace};
pub use self::record::Phase;
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

/// What shutting down gives the last batch.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot start the trace exporter: {0}")]
    Start(String),
}

/// The running exporter; [`Telemetry::shutdown`] sends what is left.
pub struct Telemetry(());

impl Telemetry {
    /// Starts recording and exporting traces; once per process.
    pub fn start(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        export::start(config, metrics::trace_spans_dropped())?;
        Ok(Telemetry(()))
    }

    /// Stops recording and sends the spans still queued, for at most a moment.
    pub fn shutdown(self) {
        export::shutdown(FLUSH_AT_EXIT);
    }
}

/// Whether traces are being recorded.
pub fn enabled() -> bool {
    export::recorder().is_some()
}

/// The trace id (hex) a `traceparent` names, for log lines.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}
