//! The vendor front door, `/hooks/{workspace}/{vendor}`: POST is a delivery (allow-list,
//! signature header present, body within its limits and the budget, verify, map through the
//! plugin, dedupe key, envelope, durable commit, answer); GET is the vendor's handshake, behind
//! the same allow-list. Every answer is the README's table.

mod body;
mod budget;
mod handshake;
mod router;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;
use tracing::{field, Instrument};

pub use self::body::Limits as BodyLimits;
pub use self::budget::BodyBudget;
pub use self::router::Public;
use crate::base::id::{millis, EventId};
use crate::base::names::VendorName;
use crate::config::ServerConfig;
use crate::event::dedupe::DedupeKey;
use crate::event::envelope::Envelope;
use crate::event::verify::VerifyError;
use crate::http::answer::{error, reply, retry_later, Answer, BodyConsumed, Outcome};
use crate::http::client;
use crate::metrics::{Metrics, UNKNOWN};
use crate::plugins::{CallFault, MapOutcome, SignedDelivery};
use crate::runtime::topology::{Topology, VendorBinding, Workspace};
use crate::store::{Accept, Accepted, Store, StoreError};
use crate::telemetry::{Phase, RequestTrace};
use arc_swap::ArcSwap;

#[derive(Clone)]
pub struct Hooks {
    /// Swapped whole by a reload; each request works on the one it started with.
    pub topology: Arc<ArcSwap<Topology>>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub body: BodyLimits,
    /// Shared by every delivery on the public listener.
    pub budget: Arc<BodyBudget>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Hooks {
    /// The front door with the public listener's limits from `server`.
    pub fn new(
        topology: Arc<ArcSwap<Topology>>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        server: &ServerConfig,
    ) -> Hooks {
        Hooks {
            topology,
            store,
            metrics,
            body: BodyLimits {
                max_bytes: server.max_body_bytes,
                timeout: server.body_read_timeout,
            },
            budget: BodyBudget::new(server.max_inflight_body_bytes),
            trusted_proxies: server.trusted_proxies.clone(),
        }
    }

    pub async fn answer(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        workspace: &str,
        vendor: &str,
    ) -> Answer {
        let topology = self.topology.load_full();
        let Some(ws) = topology.workspace(workspace) else {
            self.metrics.hook(UNKNOWN, UNKNOWN, "unknown_workspace");
            return error(
                StatusCode::NOT_FOUND,
                "unknown_workspace",
                &format!("no workspace named `{workspace}`"),
            );
        };
        let Some((vendor, binding)) = ws.vendors.get_key_value(vendor) else {
            self.metrics.hook(ws.id.as_str(), UNKNOWN, "unknown_vendor");
            return error(
                StatusCode::NOT_FOUND,
                "unknown_vendor",
                &format!("vendor `{vendor}` is not enabled for workspace `{workspace}`"),
            );
        };
        let span = tracing::debug_span!(
            "hook",
            workspace = ws.id.as_str(),
            vendor = vendor.as_str(),
            delivery_id = field::Empty,
            event_type = field::Empty,
            vendor_event_id = field::Empty,
            event_id = field::Empty,
            answer = field::Empty,
            trace_id = field::Empty,
        );
        let mut trace = RequestTrace::start(request.headers(), &ws.id, vendor);
        // The trace id in the request's log lines.
        if let Some(trace_id) = trace.trace_id() {
            span.record("trace_id", field::display(trace_id));
        }
        let client = client::address(peer, request.headers(), &self.trusted_proxies);
        match *request.method() {
            Method::POST => {
                let started = Instant::now();
                let answer = self
                    .delivery(request, client, ws, vendor, binding, &mut trace)
                    .instrument(span.clone())
                    .await;
                let elapsed = started.elapsed();
                self.metrics.hook_duration.observe(elapsed.as_secs_f64());
                let outcome = answer.extensions().get::<Outcome>().map(|o| o.0);
                if let Some(outcome) = outcome {
                    self.metrics.hook(ws.id.as_str(), vendor.as_str(), outcome);
                    span.record("answer", outcome);
                    trace.answer(outcome);
                }
                // One line per delivery, inside its span: with `log_format: json` it carries
                // workspace, vendor, delivery id, type and event id beside the answer.
                span.in_scope(|| {
                    tracing::debug!(
                        status = answer.status().as_u16(),
                        answer = outcome.unwrap_or(""),
                        latency_ms = elapsed.as_secs_f64() * 1e3,
                        "delivery answered"
                    );
                });
                answer
            }
            Method::GET => match refuse_source(client, ws, vendor, binding) {
                Some(refused) => refused,
                None => {
                    let answer = handshake::answer(request, ws, vendor, binding, &self.metrics);
                    answer.instrument(span).await
                }
            },
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
        client: IpAddr,
        ws: &Arc<Workspace>,
        vendor: &VendorName,
        binding: &Arc<VendorBinding>,
        trace: &mut RequestTrace,
    ) -> Answer {
        let received_at = SystemTime::now();
        if let Some(refused) = refuse_source(client, ws, vendor, binding) {
            return refused;
        }
        // Before the body is polled, so a request that cannot be verified costs no body read,
        // and hyper sends no `100 Continue` to it.
        if let Some(scheme) = &binding.scheme {
            if !request.headers().contains_key(&scheme.header) {
                let e = VerifyError::Missing(scheme.header.clone());
                tracing::warn!(workspace = %ws.id, %vendor, reason = %e, "delivery refused: signature");
                return error(StatusCode::UNAUTHORIZED, e.code(), &e.to_string());
            }
        }
        // Before the body is read: a tenant over its quota costs no more than its headers.
        if let Err(refusal) = ws.quota.admit(|| ws.queued()) {
            tracing::debug!(workspace = %ws.id, %vendor, reason = refusal.code(), "delivery refused: over quota");
            return refusal.answer(ws.id.as_str());
        }
        let (parts, body) = request.into_parts();
        let (body, reservation) =
            match body::read(&parts.headers, body, &self.body, &self.budget).await {
                Ok(read) => read,
                Err(answer) => return answer,
            };
        // Once the body is in, keeping the event is its own task: a client that hangs up now
        // drops this future, not the commit, so an event the store takes is also announced
        // to its sinks. It keeps the workspace and binding this request was admitted under: a
        // reload meanwhile changes neither its secrets nor its routes.
        let hooks = self.clone();
        let (ws, vendor, binding) = (ws.clone(), vendor.clone(), binding.clone());
        // The request's trace goes with the task and comes back with its answer; the task
        // sends it itself if the client is gone by then.
        let mut moved = std::mem::replace(trace, RequestTrace::off());
        let keep = async move {
            // The body's bytes count against the budget until the request is answered.
            let _reservation = reservation;
            let received = (body, received_at);
            let answer = hooks
                .keep(&parts.headers, received, &ws, &vendor, &binding, &mut moved)
                .await;
            (answer, moved)
        };
        let (mut answer, kept) = (tokio::spawn(keep.in_current_span()).await).unwrap_or_else(|e| {
            tracing::error!(error = %e, "delivery task failed");
            let message = "the delivery could not be processed; it has been logged";
            let answer = error(StatusCode::INTERNAL_SERVER_ERROR, "internal", message);
            (answer, RequestTrace::off())
        });
        *trace = kept;
        answer.extensions_mut().insert(BodyConsumed);
        answer
    }

    /// Verifies, maps, dedupes and keeps a delivery whose body has been read whole. The body and
    /// what was mapped from it are dropped as soon as they are used, before waiting for the
    /// commit: a burst of large deliveries holds only their compressed envelopes while it waits.
    async fn keep(
        &self,
        headers: &HeaderMap,
        (body, received_at): (Bytes, SystemTime),
        ws: &Workspace,
        vendor: &VendorName,
        binding: &VendorBinding,
        trace: &mut RequestTrace,
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
            trace.delivery_id(id);
        }
        let signed = SignedDelivery {
            scheme: binding.scheme.as_ref(),
            headers,
            body: &body,
            delivery_id,
            secrets: &binding.secrets,
            received_at,
        };
        let verifying =
            (binding.plugin).verify_async(signed, binding.plugin_timeout, &self.metrics);
        let verified = trace.phase(Phase::Verify, verifying).await;
        match verified {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(workspace = %ws.id, %vendor, reason = %e, "delivery refused: signature");
                return error(StatusCode::UNAUTHORIZED, e.code(), &e.to_string());
            }
            Err(fault) => return plugin_fault(ws, vendor, binding, "verify", fault),
        }
        let mapping =
            (binding.plugin).map_event_async(headers, &body, binding.plugin_timeout, &self.metrics);
        let mapped = match trace.phase(Phase::Map, mapping).await {
            MapOutcome::Mapped(mapped) => mapped,
            MapOutcome::InvalidPayload(why) => {
                tracing::warn!(workspace = %ws.id, %vendor, reason = %why, "delivery refused: payload cannot be mapped");
                return error(StatusCode::BAD_REQUEST, "invalid_payload", &why);
            }
            MapOutcome::Failed(why) => {
                return plugin_fault(ws, vendor, binding, "map_event", CallFault::Failed(why))
            }
            MapOutcome::TimedOut(limit) => {
                return plugin_fault(ws, vendor, binding, "map_event", CallFault::TimedOut(limit))
            }
            MapOutcome::Quarantined(why) => {
                return plugin_fault(
                    ws,
                    vendor,
                    binding,
                    "map_event",
                    CallFault::Quarantined(why),
                )
            }
        };
        span.record("event_type", mapped.canonical_type.as_str());
        if let Some(id) = &mapped.vendor_event_id {
            span.record("vendor_event_id", id.as_str());
        }
        trace.mapped(
            mapped.canonical_type.as_str(),
            mapped.vendor_event_id.as_deref(),
        );
        let (key, basis) = DedupeKey::derive(&ws.id, vendor, &mapped.identity);
        let id = EventId::generate();
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let mut envelope = Envelope::new(&id, &ws.id, vendor, &mapped, (&key, basis), received_at)
            .received_as(content_type, &body);
        // Kept with the event, so its delivery attempts join this trace.
        envelope.traceparent = trace.traceparent();
        let envelope = envelope.to_json();
        drop(body);
        let queues = ws.route(vendor, &mapped.canonical_type, &envelope);
        drop(mapped);
        let unrouted = queues.is_empty();
        let now_ms = millis(received_at);
        let accept = Accept {
            key,
            id: id.clone(),
            claim_expires_at_ms: now_ms.saturating_add(ws.dedupe_window.as_millis() as u64),
            now_ms,
            envelope,
            queues,
        };
        let committed = trace.phase(Phase::Commit, self.store.accept(accept)).await;
        match committed {
            Ok(Accepted::Duplicate(first)) => {
                span.record("event_id", field::display(&first));
                trace.event_id(&first);
                tracing::debug!("duplicate dropped");
                accepted("duplicate", &first)
            }
            Ok(Accepted::New) => {
                span.record("event_id", field::display(&id));
                trace.event_id(&id);
                if unrouted {
                    tracing::debug!("event kept, but no route matches its type");
                    accepted("unrouted", &id)
                } else {
                    tracing::debug!("event accepted");
                    accepted("accepted", &id)
                }
            }
            Err(e @ StoreError::InFlight) => {
                tracing::info!(workspace = %ws.id, %vendor, error = %e, "a copy of an event still being stored elsewhere; the vendor will retry");
                retry_later(
                    "store_unavailable",
                    "the first copy of this event is still being stored; retry later",
                )
            }
            Err(e) => {
                tracing::error!(workspace = %ws.id, %vendor, error = %e, "event could not be kept; the vendor will retry");
                retry_later(
                    "store_unavailable",
                    "the event could not be stored; retry later",
                )
            }
        }
    }
}

/// 403 unless the vendor's `allow_ips` lets `client` in.
fn refuse_source(
    client: IpAddr,
    ws: &Workspace,
    vendor: &VendorName,
    binding: &VendorBinding,
) -> Option<Answer> {
    if binding.allows(client) {
        return None;
    }
    tracing::warn!(workspace = %ws.id, %vendor, source = %client, "request refused: source address not allowed");
    let message = format!("source address {client} is not in this vendor's allow_ips");
    Some(error(StatusCode::FORBIDDEN, "source_not_allowed", &message))
}

/// The answer to a delivery or handshake the vendor's plugin gave no answer for: 500 when it
/// failed, 503 (the vendor retries) when it timed out or is quarantined.
pub(super) fn plugin_fault(
    ws: &Workspace,
    vendor: &VendorName,
    binding: &VendorBinding,
    entry: &str,
    fault: CallFault,
) -> Answer {
    let plugin = binding.plugin.path.display();
    match fault {
        CallFault::Failed(why) => {
            tracing::error!(workspace = %ws.id, %vendor, entry, reason = %why, %plugin, "vendor plugin failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "plugin_failed",
                "the vendor plugin failed on this request; it has been logged",
            )
        }
        CallFault::TimedOut(limit) => {
            tracing::error!(workspace = %ws.id, %vendor, entry, ?limit, %plugin, "vendor plugin timed out");
            let why = format!("the vendor plugin did not answer within {limit:?}; retry later");
            retry_later("plugin_timeout", &why)
        }
        CallFault::Quarantined(why) => {
            tracing::warn!(workspace = %ws.id, %vendor, reason = %why, "request refused: vendor plugin quarantined");
            retry_later("plugin_quarantined", &why)
        }
    }
}

fn accepted(status: &'static str, id: &EventId) -> Answer {
    let mut answer = reply(
        StatusCode::OK,
        &json!({"status": status, "id": id.to_string()}),
    );
    answer.extensions_mut().insert(Outcome(status));
    answer
}
