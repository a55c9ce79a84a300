//! How spans leave: finished records ([`Recorder::submit`]) are put aside under a lock, and
//! one thread of their own takes them all every second (or as soon as a batch is full: no
//! wake-up per record), turns them into OTLP spans and posts them in batches with the OTLP/HTTP
//! exporter, on an HTTP client ([`Client`]) running on that thread's runtime, never on the
//! threads serving requests. A bound on the spans waiting (queued, batched, or in an export not
//! yet ended) drops and counts what is past it, and every span of a batch the collector did
//! not take is counted too: a slow, hanging or dead collector costs spans, never memory or a
//! request's time, and no span is dropped uncounted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::InstrumentationScope;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::record::Record;
use super::{TelemetryConfig, TelemetryError};

/// Spans wait at most this long for their batch to go.
const EXPORT_EVERY: Duration = Duration::from_secs(1);
/// Spans waiting for export at most; past it, new ones are dropped, counted.
const MAX_WAITING_SPANS: usize = 8192;
/// Spans per export: fewer, larger requests to the collector under load.
const MAX_EXPORT_BATCH: usize = 2048;
/// One export's time limit: a collector that hangs delays only the export thread.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// A collector's answer is read (for its status) up to this much.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Set while traces are recorded: until then, and after shutdown, nothing is.
static ON: AtomicBool = AtomicBool::new(false);
static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// The request path's end: records put aside for the export thread.
pub(super) struct Recorder {
    pending: Mutex<Pending>,
    /// Wakes the export thread early: a batch is full.
    full: Notify,
    /// Asks the export thread to send what is pending, answer, and stop.
    stop: mpsc::UnboundedSender<std::sync::mpsc::SyncSender<()>>,
    /// Spans submitted and not yet through an export (taken or failed).
    waiting: AtomicUsize,
    dropped: Counter,
    /// `sample_ratio`.
    pub(super) ratio: f64,
}

/// Records not yet taken by the export thread, and their spans.
#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    spans: usize,
}

/// The recorder, while traces are on.
pub(super) fn recorder() -> Option<&'static Recorder> {
    match ON.load(Ordering::Relaxed) {
        true => RECORDER.get(),
        false => None,
    }
}

impl Recorder {
    /// Puts a finished record aside, or drops and counts its spans when too many wait already.
    pub(super) fn submit(&self, record: Record) {
        let spans = record.spans();
        if self.waiting.fetch_add(spans, Ordering::Relaxed) + spans > MAX_WAITING_SPANS {
            self.waiting.fetch_sub(spans, Ordering::Relaxed);
            self.dropped.inc_by(spans as u64);
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.records.push(record);
        let before = pending.spans;
        pending.spans += spans;
        let filled = before < MAX_EXPORT_BATCH && pending.spans >= MAX_EXPORT_BATCH;
        drop(pending);
        if filled {
            self.full.notify_one();
        }
    }

    fn take(&self) -> Vec<Record> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.spans = 0;
        std::mem::take(&mut pending.records)
    }
}

/// Starts the export thread for `config`, counting into `dropped`. Once per process.
pub(super) fn start(config: &TelemetryConfig, dropped: Counter) -> Result<(), TelemetryError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TelemetryError::Start(e.to_string()))?;
    let exporter = exporter(config)?;
    let (stop, stopped) = mpsc::unbounded_channel();
    let mut fresh = false;
    let recorder = RECORDER.get_or_init(|| {
        fresh = true;
        Recorder {
            pending: Mutex::default(),
            full: Notify::new(),
            stop,
            waiting: AtomicUsize::new(0),
            dropped,
            ratio: config.sample_ratio,
        }
    });
    if !fresh {
        return Err(TelemetryError::Start("traces are started already".into()));
    }
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || runtime.block_on(run(stopped, exporter, recorder)))
        .map_err(|e| TelemetryError::Start(e.to_string()))?;
    ON.store(true, Ordering::Relaxed);
    Ok(())
}

/// Stops recording and gives what is pending at most `limit` to go.
pub(super) fn shutdown(limit: Duration) {
    ON.store(false, Ordering::Relaxed);
    let Some(recorder) = RECORDER.get() else {
        return;
    };
    let (done, flushed) = std::sync::mpsc::sync_channel(1);
    if recorder.stop.send(done).is_ok() {
        let _ = flushed.recv_timeout(limit);
    }
}

/// The OTLP/HTTP protobuf exporter for `config`, naming the service.
fn exporter(config: &TelemetryConfig) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client = Client {
        http: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector),
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.traces_url.to_string())
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(client)
        .build()
        .map_err(|e| TelemetryError::Start(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    exporter.set_resource(&resource);
    Ok(exporter)
}

/// The export thread: every second, or once a batch is full, the records pending become
/// spans, posted in batches; at shutdown, once more.
async fn run<E: SpanExporter>(
    mut stop: mpsc::UnboundedReceiver<std::sync::mpsc::SyncSender<()>>,
    exporter: E,
    recorder: &Recorder,
) {
    let scope = InstrumentationScope::builder("switchyard").build();
    loop {
        let due = Instant::now() + EXPORT_EVERY;
        let stopping = tokio::select! {
            _ = tokio::time::sleep_until(due) => None,
            _ = recorder.full.notified() => None,
            done = stop.recv() => Some(done),
        };
        export(recorder.take(), &scope, &exporter, recorder).await;
        if let Some(done) = stopping {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// Posts `records` as spans, at most a batch per export.
async fn export<E: SpanExporter>(
    records: Vec<Record>,
    scope: &InstrumentationScope,
    exporter: &E,
    recorder: &Recorder,
) {
    let mut batch = Vec::with_capacity(MAX_EXPORT_BATCH.min(4 * records.len()));
    for record in records {
        if batch.len() + record.spans() > MAX_EXPORT_BATCH {
            send(exporter, std::mem::take(&mut batch), recorder).await;
        }
        record.into_spans(scope, &mut batch);
    }
    send(exporter, batch, recorder).await;
}

/// Posts `batch`: its spans no longer wait, and are counted as dropped unless the collector
/// took them.
async fn send<E: SpanExporter>(exporter: &E, batch: Vec<SpanData>, recorder: &Recorder) {
    if batch.is_empty() {
        return;
    }
    let spans = batch.len();
    let taken = exporter.export(batch).await.is_ok();
    recorder.waiting.fetch_sub(spans, Ordering::Relaxed);
    if !taken {
        recorder.dropped.inc_by(spans as u64);
    }
}

/// An HTTP client for the exporter on hyper, on the export thread's runtime.
#[derive(Debug)]
struct Client {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(body));
        let response = tokio::time::timeout(EXPORT_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| format!("the collector did not answer within {EXPORT_TIMEOUT:?}"))??;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
        Ok(Response::from_parts(parts, body.to_bytes()))
    }
}
