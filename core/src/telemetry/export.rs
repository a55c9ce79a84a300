//! How spans leave: the OTLP/HTTP exporter, whose HTTP client ([`Client`]) runs on a runtime of
//! its own (one thread), never on the threads serving requests; [`Counted`], which counts the
//! spans of every batch the collector did not take; and [`Bounded`], which drops (and counts)
//! the spans past a bound on those waiting, so a slow or hanging collector costs spans, never
//! memory or a request's time, and no span is dropped uncounted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::Context;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;

use super::{TelemetryConfig, TelemetryError};

/// A collector's answer is read (for its status) up to this much.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The OTLP/HTTP protobuf exporter for `config`, counting into `dropped`.
pub(super) fn exporter(
    config: &TelemetryConfig,
    timeout: Duration,
    dropped: Counter,
    waiting: Waiting,
) -> Result<Counted<opentelemetry_otlp::SpanExporter>, TelemetryError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| TelemetryError::Start(e.to_string()))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client = Client {
        http: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector),
        runtime: Arc::new(runtime),
        timeout,
    };
    let inner = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.traces_url.to_string())
        .with_timeout(timeout)
        .with_http_client(client)
        .build()
        .map_err(|e| TelemetryError::Start(e.to_string()))?;
    Ok(Counted {
        inner,
        dropped,
        waiting,
    })
}

/// Spans ended and not yet through an export (taken or failed), shared by [`Bounded`] and
/// [`Counted`].
pub(super) type Waiting = Arc<AtomicUsize>;

/// An HTTP client for the exporter on hyper, running each request on its own runtime.
#[derive(Debug)]
struct Client {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: Arc<tokio::runtime::Runtime>,
    timeout: Duration,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (http, timeout) = (self.http.clone(), self.timeout);
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let request = Request::from_parts(parts, Full::new(body));
            let response = tokio::time::timeout(timeout, http.request(request))
                .await
                .map_err(|_| format!("the collector did not answer within {timeout:?}"))??;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
            Ok::<_, HttpError>(Response::from_parts(parts, body.to_bytes()))
        });
        sent.await?
    }
}

/// An exporter whose failed batches are counted, span by span, as dropped.
#[derive(Debug)]
pub(super) struct Counted<E> {
    inner: E,
    dropped: Counter,
    waiting: Waiting,
}

/// A batch's spans no longer wait once its export ends, however it ends (a timeout drops the
/// export's future).
struct Exported<'a>(&'a AtomicUsize, usize);

impl Drop for Exported<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let _exported = Exported(&self.waiting, batch.len());
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if result.is_err() {
            self.dropped.inc_by(spans);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The batch processor behind a bound of its own on the spans waiting: past `limit`, a span is
/// dropped here and counted. The processor's own queue is as large, so it never fills, and
/// never drops a span uncounted.
#[derive(Debug)]
pub(super) struct Bounded<P> {
    pub(super) inner: P,
    pub(super) waiting: Waiting,
    pub(super) limit: usize,
    pub(super) dropped: Counter,
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            self.dropped.inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
