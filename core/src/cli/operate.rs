//! The CLI's side of the operator API: one authenticated JSON request to a running server.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Sends `method path` to the server at `base` and returns the HTTP status and JSON answer.
pub(crate) async fn call(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
) -> Result<(u16, serde_json::Value), String> {
    let url: Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("invalid server URL {base:?}: {e}"))?;
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let answer = client
        .request(request)
        .await
        .map_err(|e| format!("cannot reach switchyard at {base}: {e}"))?;
    let status = answer.status().as_u16();
    let body = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the answer from {base} broke off: {e}"))?
        .to_bytes();
    let json = serde_json::from_slice(&body)
        .map_err(|_| format!("{base} answered {status} with a body that is not JSON"))?;
    Ok((status, json))
}
