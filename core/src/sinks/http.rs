//! `http`: POSTs each envelope as JSON over a pooled keep-alive client (http or https). With a
//! secret, requests are signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`), so consumers can
//! verify with any Standard Webhooks library.
//!
//! With `format: raw` it relays what the vendor sent instead: the body byte for byte and its
//! content type, with the envelope's id, workspace, vendor and type in `X-Switchyard-*` headers,
//! for receivers that already parse that vendor. The signature then covers those bytes.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::value::RawValue;

use super::{Delivery, Sink, SinkBuildError, SinkError, SinkFuture};
use crate::base::names::Secret;
use crate::event::verify::{Algorithm, Encoding, Signable, SignatureScheme, Signed};

/// How long an idle keep-alive connection to a receiver is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(4);
/// A consumer's answer body is read (so the connection can be reused) up to this much.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What an http sink posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpFormat {
    /// The envelope as JSON.
    #[default]
    Envelope,
    /// The vendor's request body and content type, as received.
    Raw,
}

impl HttpFormat {
    pub const VALUES: &'static str = "envelope or raw";

    pub fn parse(text: &str) -> Option<HttpFormat> {
        match text {
            "envelope" => Some(HttpFormat::Envelope),
            "raw" => Some(HttpFormat::Raw),
            _ => None,
        }
    }
}

/// The envelope fields a raw relay needs; `Cow` as a name may hold escapes.
#[derive(serde::Deserialize)]
struct Relayed<'a> {
    #[serde(borrow)]
    workspace: Cow<'a, str>,
    #[serde(borrow)]
    vendor: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    raw: &'a RawValue,
    #[serde(borrow, default)]
    raw_content_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    raw_body: Option<Cow<'a, str>>,
}

pub struct HttpSink {
    url: Uri,
    timeout: Duration,
    format: HttpFormat,
    /// The HMAC key: a `whsec_` secret's decoded bytes, else the secret as given.
    key: Option<Vec<u8>>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpSink {
    pub fn new(
        url: Uri,
        timeout: Duration,
        secret: Option<Secret>,
        format: HttpFormat,
    ) -> Result<HttpSink, SinkBuildError> {
        let key = secret
            .map(|s| standard_webhooks_key(s.expose()))
            .transpose()?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            // Below the keep-alive timeout of common receivers (Node closes idle connections
            // after 5 s): a connection the receiver has given up on, picked from the pool,
            // was seen to hang a request until the sink's timeout (after an outage).
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Ok(HttpSink {
            url,
            timeout,
            format,
            key,
            client,
        })
    }

    fn request(&self, delivery: &Delivery<'_>) -> Result<Request<Full<Bytes>>, SinkError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(
                USER_AGENT,
                concat!("switchyard/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| SinkError::Request(e.to_string()))?;
        let body = match self.format {
            HttpFormat::Envelope => {
                let json = HeaderValue::from_static("application/json");
                request.headers_mut().insert(CONTENT_TYPE, json);
                Bytes::copy_from_slice(delivery.envelope)
            }
            HttpFormat::Raw => relay(delivery, request.headers_mut())?,
        };
        if let Some(value) = delivery
            .traceparent
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            request.headers_mut().insert("traceparent", value);
        }
        if let Some(key) = &self.key {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                .to_string();
            let signature = signature_scheme().sign(
                key,
                &Signable {
                    body: &body,
                    timestamp: Some(&timestamp),
                    delivery_id: Some(delivery.event_id),
                },
            );
            let headers = request.headers_mut();
            for (name, value) in [
                ("webhook-id", delivery.event_id),
                ("webhook-timestamp", timestamp.as_str()),
                ("webhook-signature", signature.as_str()),
            ] {
                let value =
                    HeaderValue::from_str(value).map_err(|e| SinkError::Request(e.to_string()))?;
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        *request.body_mut() = Full::new(body);
        Ok(request)
    }
}

/// The vendor's body as received, its content type and the `X-Switchyard-*` headers.
fn relay(delivery: &Delivery<'_>, headers: &mut HeaderMap) -> Result<Bytes, SinkError> {
    let relayed: Relayed<'_> = serde_json::from_slice(delivery.envelope)
        .map_err(|e| SinkError::Envelope(e.to_string()))?;
    let content_type = relayed
        .raw_content_type
        .as_deref()
        .unwrap_or("application/json");
    for (name, value) in [
        (CONTENT_TYPE.as_str(), content_type),
        ("x-switchyard-id", delivery.event_id),
        ("x-switchyard-workspace", &*relayed.workspace),
        ("x-switchyard-vendor", &*relayed.vendor),
        ("x-switchyard-type", &*relayed.event_type),
    ] {
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| SinkError::Envelope(format!("{name} cannot be a header value")))?;
        headers.insert(HeaderName::from_static(name), value);
    }
    let body = relayed.raw_body.as_deref().unwrap_or(relayed.raw.get());
    Ok(Bytes::copy_from_slice(body.as_bytes()))
}

impl Sink for HttpSink {
    fn deliver<'a>(&'a self, batch: &'a [Delivery<'a>]) -> SinkFuture<'a> {
        Box::pin(async move {
            // One event per request: max_batch is 1.
            let Some(delivery) = batch.first() else {
                return Ok(());
            };
            let request = self.request(delivery)?;
            let exchange = async {
                let answer = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| SinkError::Request(error_chain(&e)))?;
                let status = answer.status();
                let retry_after = answer
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                // Drain a bounded amount so the pooled connection can carry the next event.
                let _ = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
                    .collect()
                    .await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(SinkError::Status {
                        status: status.as_u16(),
                        retry_after,
                    })
                }
            };
            tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| SinkError::Timeout(self.timeout))?
        })
    }
}

/// Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
fn signature_scheme() -> SignatureScheme {
    SignatureScheme {
        header: HeaderName::from_static("webhook-signature"),
        encoding: Encoding::Base64,
        prefix: "v1,".into(),
        signed: Signed::Template {
            template: "{id}.{timestamp}.{body}".into(),
            timestamp_header: Some(HeaderName::from_static("webhook-timestamp")),
            tolerance: None,
        },
        algorithm: Algorithm::Sha256,
        several: false,
    }
}

/// A `whsec_<base64>` secret is the base64 of the key, as Standard Webhooks libraries expect;
/// any other secret is used as raw bytes.
fn standard_webhooks_key(secret: &[u8]) -> Result<Vec<u8>, SinkBuildError> {
    match secret.strip_prefix(b"whsec_") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                SinkBuildError::Secret("it starts with whsec_ but the rest is not base64")
            }),
        None => Ok(secret.to_vec()),
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// hyper's errors put the useful part (connection refused...) in their sources.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whsec_secrets_are_base64_keys() {
        assert_eq!(
            standard_webhooks_key(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            base64::engine::general_purpose::STANDARD
                .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap()
        );
        assert_eq!(standard_webhooks_key(b"plain").unwrap(), b"plain");
        assert!(standard_webhooks_key(b"whsec_!!!").is_err());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        let later = SystemTime::now() + Duration::from_secs(3600);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed > Duration::from_secs(3500) && parsed <= Duration::from_secs(3600));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
