//! A real OTLP/HTTP collector for the trace tests: it takes `POST /v1/traces` (protobuf),
//! decodes each request with OpenTelemetry's own message types and keeps every span, with its
//! ids in hex, its parent and its attributes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

/// One span as the collector got it.
#[derive(Debug, Clone)]
pub struct CollectedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
    /// The resource's `service.name`.
    pub service: String,
}

impl CollectedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// Stops and joins on drop.
pub struct Collector {
    server: Arc<tiny_http::Server>,
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
    thread: Option<JoinHandle<()>>,
    url: String,
}

impl Collector {
    pub fn start() -> Collector {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind a collector"));
        let addr = server.server_addr().to_ip().expect("an IP listener");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (server, spans) = (server.clone(), spans.clone());
            std::thread::spawn(move || serve(&server, &spans))
        };
        Collector {
            server,
            spans,
            thread: Some(thread),
            url: format!("http://{addr}"),
        }
    }

    /// The base URL to configure as `otlp_endpoint`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Polls until `done` holds for the spans received; returns them.
    #[track_caller]
    pub fn wait_until(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[CollectedSpan]) -> bool,
    ) -> Vec<CollectedSpan> {
        let deadline = Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "the collector never got {what}; it has:\n{spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(server: &tiny_http::Server, spans: &Mutex<Vec<CollectedSpan>>) {
    for mut request in server.incoming_requests() {
        let mut body = Vec::new();
        let read = request.as_reader().read_to_end(&mut body);
        let decoded = read
            .ok()
            .filter(|_| request.url() == "/v1/traces")
            .and_then(|_| ExportTraceServiceRequest::decode(body.as_slice()).ok());
        let status = match decoded {
            Some(export) => {
                spans.lock().unwrap().extend(flatten(export));
                200
            }
            None => 400,
        };
        let _ = request.respond(tiny_http::Response::empty(status));
    }
}

fn flatten(export: ExportTraceServiceRequest) -> Vec<CollectedSpan> {
    let mut found = Vec::new();
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                found.push(CollectedSpan {
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent_span_id: hex::encode(span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    service: service.clone(),
                });
            }
        }
    }
    found
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    let text = |value: &AnyValue| match value {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    };
    pairs
        .iter()
        .filter_map(|kv| {
            let value = kv.value.as_ref()?.value.as_ref()?;
            Some((kv.key.clone(), text(value)))
        })
        .collect()
}
