//! The HTTP front door: `POST /hooks/{workspace}/{vendor}` (verify, map, dedupe, keep, answer),
//! the GET handshake, and the health endpoints. Every answer is the DESIGN.md table's.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{field, Instrument};

use crate::admin::Admin;
use crate::dedupe::{Claim, DedupeKey, FirstSeen};
use crate::envelope::{Envelope, EventId};
use crate::metrics::{Metrics, SinkLabels};
use crate::names::VendorName;
use crate::plugins::{HandshakeOutcome, MapOutcome, Plugins};
use crate::respond::{error, json_bytes, reply, with_type, Answer, Outcome};
use crate::store::{Accept, SinkQueue, Store, StoreError};
use crate::topology::{Topology, VendorBinding, Workspace};

/// Marks an answer given after the request body was read whole.
#[derive(Clone, Copy)]
struct BodyConsumed;

/// How long a client may take to send a body once its headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// What a vendor is told to wait before retrying when we cannot keep its event.
const RETRY_AFTER_SECS: &str = "5";

/// Everything a request needs, shared by all connections.
pub struct FrontDoor {
    pub metrics: Arc<Metrics>,
    pub topology: Topology,
    pub admin: Admin,
    pub plugins: Arc<Plugins>,
    pub store: Arc<Store>,
    pub max_body_bytes: usize,
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests finish (for at
/// most `drain`).
pub async fn serve(
    listener: TcpListener,
    door: Arc<FrontDoor>,
    header_read_timeout: Duration,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let door = door.clone();
        let service = service_fn(move |request| {
            let door = door.clone();
            async move { Ok::<_, Infallible>(door.answer(request, peer).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing them");
    }
}

impl FrontDoor {
    async fn answer(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        let path = request.uri().path().to_owned();
        let has_body = !request.body().is_end_stream();
        let mut answer = self.route(request, peer, &path).await;
        // Refused before its body was read (403, 404, 405, 413...): hyper will not read the rest
        // to reuse the connection, so say it closes, or a keep-alive client would send its next
        // request down a dead connection.
        if has_body && answer.extensions().get::<BodyConsumed>().is_none() {
            answer
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        answer
    }

    async fn route(&self, request: Request<Incoming>, peer: SocketAddr, path: &str) -> Answer {
        match (request.method(), path) {
            (&Method::GET, "/healthz") => reply(StatusCode::OK, &json!({"status": "ok"})),
            (&Method::GET, "/readyz") => self.readiness(),
            (&Method::GET, "/metrics") => self.metrics(),
            (method, path) if path.starts_with("/admin/") => {
                let method = method.clone();
                self.admin
                    .answer(
                        &method,
                        path,
                        request.headers(),
                        &self.topology,
                        &self.store,
                    )
                    .await
            }
            _ => match hook_path(path) {
                Some((workspace, vendor)) => self.hook(request, peer, workspace, vendor).await,
                None => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such endpoint; hooks are POST /hooks/{workspace}/{vendor}",
                ),
            },
        }
    }

    fn metrics(&self) -> Answer {
        for worker in self.topology.workspaces().flat_map(|ws| ws.workers()) {
            let labels = SinkLabels {
                workspace: worker.workspace.to_string(),
                sink: worker.sink.to_string(),
            };
            let depth = self.store.queue_depth(&worker.queue);
            let dead = self
                .store
                .dead_letters(&worker.queue)
                .map_or(0, |d| d.len());
            self.metrics
                .queue_depth
                .get_or_create(&labels)
                .set(depth as i64);
            self.metrics
                .dead_letters
                .get_or_create(&labels)
                .set(dead as i64);
        }
        self.metrics
            .store_bytes
            .set(self.store.size_on_disk() as i64);
        with_type(
            StatusCode::OK,
            self.metrics.render().into_bytes(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    }

    fn readiness(&self) -> Answer {
        let plugins: Vec<&str> = self.plugins.iter().map(|p| p.vendor.as_str()).collect();
        if self.store.is_healthy() && !self.plugins.is_empty() {
            reply(
                StatusCode::OK,
                &json!({"status": "ready", "plugins": plugins}),
            )
        } else {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store cannot take writes or no plugin is loaded",
            )
        }
    }

    async fn hook(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        workspace: &str,
        vendor: &str,
    ) -> Answer {
        let Some(ws) = self.topology.workspace(workspace) else {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_workspace",
                &format!("no workspace named `{workspace}`"),
            );
        };
        let Some((vendor, binding)) = ws.vendors.get_key_value(vendor) else {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_vendor",
                &format!("vendor `{vendor}` is not enabled for workspace `{workspace}`"),
            );
        };
        let span = tracing::info_span!(
            "hook",
            workspace = %ws.id,
            vendor = %vendor,
            delivery_id = field::Empty,
            event_type = field::Empty,
            vendor_event_id = field::Empty,
            event_id = field::Empty,
        );
        match *request.method() {
            Method::POST => {
                let started = std::time::Instant::now();
                let answer = self
                    .delivery(request, peer, ws, vendor, binding)
                    .instrument(span)
                    .await;
                self.metrics
                    .hook_duration
                    .observe(started.elapsed().as_secs_f64());
                if let Some(Outcome(outcome)) = answer.extensions().get::<Outcome>() {
                    self.metrics.hook(ws.id.as_str(), vendor.as_str(), outcome);
                }
                answer
            }
            Method::GET => handshake(request, binding).instrument(span).await,
            _ => {
                let mut answer = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "hooks accept POST (deliveries) and GET (the vendor's handshake)",
                );
                answer
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, POST"));
                answer
            }
        }
    }

    async fn delivery(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        ws: &Workspace,
        vendor: &VendorName,
        binding: &VendorBinding,
    ) -> Answer {
        let received_at = SystemTime::now();
        if !binding.allows(peer.ip()) {
            tracing::warn!(source = %peer.ip(), "delivery refused: source address not allowed");
            return error(
                StatusCode::FORBIDDEN,
                "source_not_allowed",
                &format!(
                    "source address {} is not in this vendor's allow_ips",
                    peer.ip()
                ),
            );
        }
        let (parts, body) = request.into_parts();
        let body = match self.read_body(&parts.headers, body).await {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let mut answer = self
            .keep(&parts.headers, &body, received_at, ws, vendor, binding)
            .await;
        answer.extensions_mut().insert(BodyConsumed);
        answer
    }

    /// Verifies, maps, dedupes and keeps a delivery whose body has been read whole.
    async fn keep(
        &self,
        headers: &hyper::HeaderMap,
        body: &Bytes,
        received_at: SystemTime,
        ws: &Workspace,
        vendor: &VendorName,
        binding: &VendorBinding,
    ) -> Answer {
        let span = tracing::Span::current();
        let delivery_id = binding
            .plugin
            .delivery_id_header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok());
        if let Some(id) = delivery_id {
            span.record("delivery_id", id);
        }
        if let Err(e) = binding.plugin.verify_with(
            binding.scheme.as_ref(),
            headers,
            body,
            delivery_id,
            &binding.secrets,
            received_at,
        ) {
            tracing::warn!(reason = %e, "delivery refused: signature");
            return error(StatusCode::UNAUTHORIZED, e.code(), &e.to_string());
        }
        let mapped = match (binding.plugin)
            .map_event_async(headers, body, binding.plugin_timeout, &self.metrics)
            .await
        {
            MapOutcome::Mapped(mapped) => mapped,
            MapOutcome::InvalidPayload(why) => {
                tracing::warn!(reason = %why, "delivery refused: payload cannot be mapped");
                return error(StatusCode::BAD_REQUEST, "invalid_payload", &why);
            }
            MapOutcome::Failed(why) => {
                tracing::error!(reason = %why, plugin = %binding.plugin.path.display(), "vendor plugin failed");
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "plugin_failed",
                    "the vendor plugin failed on this delivery; it has been logged",
                );
            }
            MapOutcome::TimedOut(limit) => {
                tracing::error!(?limit, plugin = %binding.plugin.path.display(), "vendor plugin timed out");
                let why = format!("the vendor plugin did not answer within {limit:?}; retry later");
                let mut answer = error(StatusCode::SERVICE_UNAVAILABLE, "plugin_timeout", &why);
                answer
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
                return answer;
            }
            MapOutcome::Quarantined(why) => {
                tracing::warn!(reason = %why, "delivery refused: vendor plugin quarantined");
                let mut answer = error(StatusCode::SERVICE_UNAVAILABLE, "plugin_quarantined", &why);
                answer
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
                return answer;
            }
        };
        span.record("event_type", mapped.canonical_type.as_str());
        if let Some(id) = &mapped.vendor_event_id {
            span.record("vendor_event_id", id.as_str());
        }
        let (key, basis) = DedupeKey::derive(&ws.id, vendor, &mapped.identity);
        let id = EventId::generate();
        let envelope =
            Envelope::new(&id, &ws.id, vendor, &mapped, (&key, basis), received_at).to_json();
        let workers = ws.route(vendor, &mapped.canonical_type);
        let queues: Vec<SinkQueue> = workers.iter().map(|w| w.queue.clone()).collect();
        let claim = Claim::new(id.clone(), ws.dedupe_window, received_at);
        // A sled transaction writes its log synchronously: off the async threads, so one slow
        // disk write does not stall every other connection.
        let seen = tokio::task::spawn_blocking({
            let (store, key) = (self.store.clone(), key.clone());
            move || {
                store.accept(Accept {
                    key: &key,
                    claim,
                    envelope: &envelope,
                    queues: &queues,
                    now: received_at,
                })
            }
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Write(format!("the store task failed: {e}"))));
        // A duplicate is answered only once its first copy is durable too: that copy may be a
        // concurrent request still waiting for the same flush.
        let seen = match seen {
            Ok(seen) => self.store.commit().await.map(|()| seen),
            Err(e) => Err(e),
        };
        match seen {
            Ok(FirstSeen::Duplicate(first)) => {
                span.record("event_id", field::display(&first));
                tracing::info!(dedupe_key = %key, "duplicate dropped");
                accepted("duplicate", &first)
            }
            Ok(FirstSeen::New) => {
                span.record("event_id", field::display(&id));
                for worker in &workers {
                    worker.wake();
                }
                if workers.is_empty() {
                    tracing::info!(dedupe_key = %key, "event kept, but no route matches its type");
                    accepted("unrouted", &id)
                } else {
                    tracing::info!(sinks = workers.len(), "event accepted");
                    accepted("accepted", &id)
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event could not be kept; the vendor will retry");
                let mut answer = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the event could not be stored; retry later",
                );
                answer
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
                answer
            }
        }
    }

    /// Reads the body, refusing one over `max_body_bytes` before reading it whole: at once when
    /// Content-Length says so, and as soon as the count passes the limit when it does not (or lies).
    async fn read_body(&self, headers: &hyper::HeaderMap, body: Incoming) -> Result<Bytes, Answer> {
        let too_large = || {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("body is over the {} byte limit", self.max_body_bytes),
            )
        };
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(too_large());
        }
        let read = Limited::new(body, self.max_body_bytes).collect();
        match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
            Ok(Err(e)) => Err(error(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                &format!("the body could not be read: {e}"),
            )),
            Err(_) => Err(error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the body was not received in time",
            )),
        }
    }
}

async fn handshake(request: Request<Incoming>, binding: &VendorBinding) -> Answer {
    let query = request.uri().query().unwrap_or("");
    match binding.plugin.handshake(request.headers(), query) {
        HandshakeOutcome::Reply { status, body } => {
            tracing::info!(status, "handshake answered");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            json_bytes(status, body)
        }
        HandshakeOutcome::Invalid(why) => error(StatusCode::BAD_REQUEST, "invalid_handshake", &why),
        HandshakeOutcome::NotSupported => {
            let mut answer = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this vendor has no GET handshake; deliveries are POST",
            );
            answer
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            answer
        }
        HandshakeOutcome::Failed => {
            tracing::error!(plugin = %binding.plugin.path.display(), "vendor plugin failed in its handshake");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "plugin_failed",
                "the vendor plugin failed on this handshake; it has been logged",
            )
        }
    }
}

/// `/hooks/{workspace}/{vendor}` with exactly two non-empty segments.
fn hook_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/hooks/")?;
    let (workspace, vendor) = rest.split_once('/')?;
    (!workspace.is_empty() && !vendor.is_empty() && !vendor.contains('/'))
        .then_some((workspace, vendor))
}

fn accepted(status: &'static str, id: &EventId) -> Answer {
    let mut answer = reply(
        StatusCode::OK,
        &json!({"status": status, "id": id.to_string()}),
    );
    answer.extensions_mut().insert(Outcome(status));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_paths_need_exactly_two_segments() {
        assert_eq!(hook_path("/hooks/acme/watsi"), Some(("acme", "watsi")));
        assert_eq!(hook_path("/hooks/acme/"), None);
        assert_eq!(hook_path("/hooks//watsi"), None);
        assert_eq!(hook_path("/hooks/acme/watsi/extra"), None);
        assert_eq!(hook_path("/hooks/acme"), None);
        assert_eq!(hook_path("/other/acme/watsi"), None);
    }
}
