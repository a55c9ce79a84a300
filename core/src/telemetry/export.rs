//! How spans leave: finished records ([`Recorder::submit`]) are put aside under a lock, and
//! one thread of their own takes them all every second (or as soon as a batch is full: no
//! wake-up per record), turns them into OTLP spans and posts them in batches, each one
//! OTLP/HTTP request (`ExportTraceServiceRequest` in protobuf, from `opentelemetry-proto`),
//! with a hyper client running on that thread's runtime, never on the threads serving
//! requests. A bound on the spans waiting (queued, batched, or in an export not
//! yet ended) drops and counts what is past it, and every span of a batch the collector did
//! not take is counted too: a slow, hanging or dead collector costs spans, never memory or a
//! request's time, and no span is dropped uncounted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::record::{attribute, Record};
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
    let collector = Collector::new(config);
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
        .spawn(move || runtime.block_on(run(stopped, collector, recorder)))
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

/// The export thread: every second, or once a batch is full, the records pending become
/// spans, posted in batches; at shutdown, once more.
async fn run(
    mut stop: mpsc::UnboundedReceiver<std::sync::mpsc::SyncSender<()>>,
    mut collector: Collector,
    recorder: &Recorder,
) {
    loop {
        let due = Instant::now() + EXPORT_EVERY;
        let stopping = tokio::select! {
            _ = tokio::time::sleep_until(due) => None,
            _ = recorder.full.notified() => None,
            done = stop.recv() => Some(done),
        };
        export(recorder.take(), &mut collector, recorder).await;
        if let Some(done) = stopping {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// Posts `records` as spans, at most a batch per export.
async fn export(records: Vec<Record>, collector: &mut Collector, recorder: &Recorder) {
    for record in records {
        if collector.spans.len() + record.spans() > MAX_EXPORT_BATCH {
            send(collector, recorder).await;
        }
        record.into_spans(&mut collector.spans);
    }
    send(collector, recorder).await;
}

/// Posts the collector's batch: its spans no longer wait, and are counted as dropped unless
/// the collector took them.
async fn send(collector: &mut Collector, recorder: &Recorder) {
    let spans = collector.spans.len();
    if spans == 0 {
        return;
    }
    let taken = collector.post().await;
    recorder.waiting.fetch_sub(spans, Ordering::Relaxed);
    if !taken {
        recorder.dropped.inc_by(spans as u64);
    }
}

/// The collector's OTLP/HTTP traces endpoint, what every export names (the service, as the
/// resource, and the instrumentation scope), and the batch being filled. The batch's and the
/// encoded request's buffers are kept from one export to the next: allocated afresh, their
/// pages' faults were a good part of the export thread's time.
struct Collector {
    url: hyper::Uri,
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    resource: Resource,
    scope: InstrumentationScope,
    spans: Vec<Span>,
    /// Reclaimed by the next export once hyper has dropped the previous body.
    body: BytesMut,
}

impl Collector {
    fn new(config: &TelemetryConfig) -> Collector {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let service = attribute("service.name", config.service_name.clone());
        Collector {
            url: config.traces_url.clone(),
            http: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .build(connector),
            resource: Resource {
                attributes: vec![service],
                ..Resource::default()
            },
            scope: InstrumentationScope {
                name: "switchyard".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..InstrumentationScope::default()
            },
            spans: Vec::with_capacity(MAX_EXPORT_BATCH),
            body: BytesMut::new(),
        }
    }

    /// Posts the batch as one export request and empties it; whether the collector took it
    /// (answered 2xx within [`EXPORT_TIMEOUT`]).
    async fn post(&mut self) -> bool {
        let body = self.encode();
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body));
        let Ok(request) = request else {
            return false;
        };
        let answered = async {
            let response = self.http.request(request).await.ok()?;
            let taken = response.status().is_success();
            // Read (a bounded part of) the answer so the connection can serve the next export.
            Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .ok()?;
            Some(taken)
        };
        matches!(
            tokio::time::timeout(EXPORT_TIMEOUT, answered).await,
            Ok(Some(true))
        )
    }

    /// The batch as an `ExportTraceServiceRequest` in protobuf; the batch is emptied, its
    /// buffer kept for the next one.
    fn encode(&mut self) -> Bytes {
        let scope_spans = ScopeSpans {
            scope: Some(self.scope.clone()),
            spans: std::mem::take(&mut self.spans),
            schema_url: String::new(),
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![scope_spans],
                schema_url: String::new(),
            }],
        };
        self.body.clear();
        self.body.reserve(request.encoded_len());
        // Cannot fail: the buffer was just given the room the request takes.
        let _ = request.encode(&mut self.body);
        let taken_back = (request.resource_spans.into_iter())
            .flat_map(|resource| resource.scope_spans)
            .next();
        if let Some(mut batch) = taken_back {
            batch.spans.clear();
            self.spans = batch.spans;
        }
        self.body.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TelemetryConfig {
        TelemetryConfig {
            traces_url: "http://127.0.0.1:4318/v1/traces".parse().unwrap(),
            sample_ratio: 1.0,
            service_name: "switchyard-test".into(),
        }
    }

    fn span(name: &str) -> Span {
        Span {
            name: name.into(),
            ..Span::default()
        }
    }

    #[test]
    fn every_batch_is_one_request_naming_the_service_and_scope_with_its_spans_only() {
        let mut collector = Collector::new(&config());
        for names in [vec!["hook", "verify"], vec!["deliver"]] {
            collector.spans.extend(names.iter().map(|n| span(n)));
            let body = collector.encode();
            assert!(collector.spans.is_empty());
            let request = ExportTraceServiceRequest::decode(body).unwrap();
            let [resource_spans] = &request.resource_spans[..] else {
                panic!("one resource: {request:?}")
            };
            let resource = resource_spans.resource.as_ref().unwrap();
            assert_eq!(
                resource.attributes,
                [attribute("service.name", "switchyard-test".into())]
            );
            let [scope_spans] = &resource_spans.scope_spans[..] else {
                panic!("one scope: {request:?}")
            };
            assert_eq!(scope_spans.scope.as_ref().unwrap().name, "switchyard");
            let sent: Vec<&str> = scope_spans.spans.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(sent, names);
        }
    }
}
