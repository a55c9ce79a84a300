//! Which part answers a request. The public listener ([`Public`]) faces vendors: `/hooks/*`
//! and a plain `GET|HEAD /healthz`, nothing else. The operator listener ([`Operator`]) serves
//! `/readyz`, `/metrics` and `/admin/*`, which name every workspace and sink and so stay off
//! the public port. Every answer is the README's table.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, CONNECTION};
use hyper::{Method, Request, StatusCode, Version};
use serde_json::json;

use super::answer::{error, reply, Answer, BodyConsumed, Outcome};
use super::Handler;
use crate::server::admin::Admin;
use crate::server::hooks::Hooks;

/// The public listener's router.
pub struct Public {
    pub hooks: Hooks,
    /// One info line per request (method, path, status, latency) when set.
    pub access_log: bool,
}

/// The operator listener's router.
pub struct Operator {
    pub admin: Admin,
    pub access_log: bool,
}

impl Handler for Public {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        respond(request, peer, self.access_log, |request, path| async move {
            match (request.method(), path.as_str()) {
                (&Method::GET | &Method::HEAD, "/healthz") => healthy(),
                (_, path) => match hook_path(path) {
                    Some((workspace, vendor)) => {
                        self.hooks.answer(request, peer, workspace, vendor).await
                    }
                    None => error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "no such endpoint; hooks are POST /hooks/{workspace}/{vendor}",
                    ),
                },
            }
        })
        .await
    }
}

impl Handler for Operator {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        respond(request, peer, self.access_log, |request, path| async move {
            match (request.method(), path.as_str()) {
                (&Method::GET | &Method::HEAD, "/healthz") => healthy(),
                (&Method::GET, "/readyz") => self.admin.readiness(),
                (&Method::GET, "/metrics") => self.admin.metrics(request.headers()),
                (_, path) if path.starts_with("/admin/") => {
                    let method = request.method().clone();
                    let target = request.uri().path_and_query().map_or(path, |p| p.as_str());
                    self.admin.answer(&method, target, request.headers()).await
                }
                _ => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such endpoint; the operator listener serves /readyz, /metrics and /admin/*",
                ),
            }
        })
        .await
    }
}

fn healthy() -> Answer {
    reply(StatusCode::OK, &json!({"status": "ok"}))
}

/// Routes one request, then marks the answer for keep-alive and logs it.
async fn respond<F, Fut>(
    request: Request<Incoming>,
    peer: SocketAddr,
    access_log: bool,
    route: F,
) -> Answer
where
    F: FnOnce(Request<Incoming>, String) -> Fut,
    Fut: Future<Output = Answer>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let has_body = !request.body().is_end_stream();
    let http1 = request.version() < Version::HTTP_2;
    let mut answer = route(request, path.clone()).await;
    // Refused before its body was read (401, 403, 404, 405, 413, 503...): hyper will not read
    // the rest to reuse the connection, so say it closes, or a keep-alive client would send its
    // next request down a dead connection. HTTP/2 resets the one stream instead.
    if http1 && has_body && answer.extensions().get::<BodyConsumed>().is_none() {
        answer
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if access_log {
        let outcome = answer.extensions().get::<Outcome>().map_or("", |o| o.0);
        tracing::info!(%peer, %method, path, status = answer.status().as_u16(), outcome, latency_us = started.elapsed().as_micros() as u64, "request");
    }
    answer
}

/// `/hooks/{workspace}/{vendor}` with exactly two non-empty segments.
fn hook_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/hooks/")?;
    let (workspace, vendor) = rest.split_once('/')?;
    (!workspace.is_empty() && !vendor.is_empty() && !vendor.contains('/'))
        .then_some((workspace, vendor))
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
