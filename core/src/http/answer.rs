//! JSON answers, shared by the hook and operator endpoints.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

pub type Answer = Response<Full<Bytes>>;

/// The outcome word an answer carries (as a response extension) for metrics and logs:
/// `accepted`, `duplicate`, `unrouted`, or an error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome(pub &'static str);

/// Marks an answer given after the request body was read whole: the connection can be reused.
#[derive(Clone, Copy, Debug)]
pub struct BodyConsumed;

/// `{"error": code, "message": message}`: `code` is stable for programs, `message` for people.
pub fn error(status: StatusCode, code: &'static str, message: &str) -> Answer {
    let mut answer = reply(status, &json!({"error": code, "message": message}));
    answer.extensions_mut().insert(Outcome(code));
    answer
}

pub fn reply(status: StatusCode, body: &serde_json::Value) -> Answer {
    json_bytes(status, serde_json::to_vec(body).unwrap_or_default())
}

pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Answer {
    with_type(status, body, "application/json")
}

pub fn with_type(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

/// What a client is told to wait before retrying when we cannot take its request now.
const RETRY_AFTER_SECS: &str = "5";

/// 503 with Retry-After: the vendor retries, nothing is lost.
pub fn retry_later(code: &'static str, message: &str) -> Answer {
    let mut answer = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    answer
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    answer
}

/// `/healthz` on either listener: the process is up and answering.
pub fn healthy() -> Answer {
    reply(StatusCode::OK, &json!({"status": "ok"}))
}
