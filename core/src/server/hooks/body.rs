//! Reading a delivery's body within the size and time limits and the global budget for bodies
//! in memory.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{HeaderMap, StatusCode};

use super::budget::{BodyBudget, Reservation};
use crate::http::answer::{error, retry_later, Answer};

/// How large a body may be and how long it may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: usize,
    /// From the end of the request head to the body's last byte.
    pub timeout: Duration,
}

/// Reads the body into one buffer. Refused before any of it is read: over `max_bytes` by its
/// Content-Length (413), or past the budget by it (503). Refused as soon as the count says so:
/// over the limit without (or despite) a Content-Length, or past the budget while chunks
/// arrive. The reservation returned holds the body's bytes until the request is answered.
pub async fn read(
    headers: &HeaderMap,
    body: Incoming,
    limits: &Limits,
    budget: &std::sync::Arc<BodyBudget>,
) -> Result<(Bytes, Reservation), Answer> {
    let max_bytes = limits.max_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!("body is over the {max_bytes} byte limit"),
        )
    };
    let busy = || {
        retry_later(
            "server_busy",
            "the server holds as many request bodies as it may (server.max_inflight_body_bytes); \
             retry later",
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large());
    }
    // At most max_bytes, checked above.
    let declared = declared.map_or(0, |n| n as usize);
    let mut reservation = budget.reservation();
    if !reservation.grow(declared) {
        return Err(busy());
    }
    let read = async {
        let mut body = body;
        // Sized once from Content-Length, so a body is never copied to grow its buffer.
        let mut buf = BytesMut::with_capacity(declared);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    "body_unreadable",
                    &format!("the body could not be read: {e}"),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let total = buf.len() + data.len();
            if total > max_bytes {
                return Err(too_large());
            }
            if total > reservation.bytes() && !reservation.grow(total - reservation.bytes()) {
                return Err(busy());
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(Ok(bytes)) => Ok((bytes, reservation)),
        Ok(Err(answer)) => Err(answer),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body was not received in time",
        )),
    }
}
