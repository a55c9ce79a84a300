//! Reading a delivery's body within the size and time limits.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{HeaderMap, StatusCode};

use crate::http::answer::{error, Answer};

/// How long a client may take to send a body once its headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the body, refusing one over `max_bytes` before reading it whole: at once when
/// Content-Length says so, and as soon as the count passes the limit when it does not (or lies).
pub async fn read(headers: &HeaderMap, body: Incoming, max_bytes: usize) -> Result<Bytes, Answer> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!("body is over the {max_bytes} byte limit"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large());
    }
    let read = Limited::new(body, max_bytes).collect();
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
