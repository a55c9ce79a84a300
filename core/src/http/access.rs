//! Around any [`Handler`](super::Handler)'s answer: a request refused before its body was read closes its
//! HTTP/1 connection (hyper would not read the rest to reuse it), and with `access_log` one
//! info line per request (method, path, status, outcome, latency).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, CONNECTION};
use hyper::{Request, Version};

use super::answer::{Answer, BodyConsumed, Outcome};

/// Routes one request, then marks the answer for keep-alive and logs it.
pub async fn respond<F, Fut>(
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
