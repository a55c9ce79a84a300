//! The HTTP load client: N keep-alive HTTP/1.1 connections (hyper's client connection, one per
//! simulated vendor client), each posting unique, correctly signed deliveries, either as fast as
//! answers come back (closed loop) or on a fixed schedule shared by all connections (open loop).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::payload::{self, Template};
use crate::BenchResult;

/// How long one exchange may take before the client gives up on it (and counts it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> BenchResult<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes the connection.
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// One exchange; the answer's status and whole body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> BenchResult<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .body(Full::new(body))?;
        request.headers_mut().extend(headers.iter().cloned());
        let exchange = async {
            self.sender.ready().await?;
            let answer = self.sender.send_request(request).await?;
            let status = answer.status();
            let body = answer.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}").into()),
        }
    }
}

/// A GET on a fresh connection: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> BenchResult<(StatusCode, String)> {
    let mut conn = Conn::connect(addr).await?;
    let (status, body) = conn.send(Method::GET, path, &[], Bytes::new()).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// What a load posts: unique deliveries of one vendor to one workspace, signed with its secret.
pub struct Poster {
    path: String,
    /// A baseline server answers a bare 200 where switchyard answers `accepted` with an id.
    plain: bool,
    template: Template,
    secret: Vec<u8>,
    /// Keeps ids unique across bench processes (the pid) and across the loads that share this
    /// poster (a count).
    base: u32,
    loads: AtomicU32,
}

impl Poster {
    pub fn new(workspace: &str, template: Template, secret: &str) -> Poster {
        static POSTERS: AtomicU32 = AtomicU32::new(0);
        let poster = POSTERS.fetch_add(1, Ordering::Relaxed);
        Poster {
            path: format!("/hooks/{workspace}/{}", template.vendor),
            plain: false,
            template,
            secret: secret.as_bytes().to_vec(),
            base: (std::process::id() << 12) ^ (poster << 6),
            loads: AtomicU32::new(0),
        }
    }

    /// Posts to `path` of a baseline server, where any 200 counts as taken.
    pub fn baseline(mut self, path: &str) -> Poster {
        self.path = path.to_owned();
        self.plain = true;
        self
    }

    /// The body size every delivery of this poster has.
    pub fn body_len(&self) -> usize {
        self.template.body(&payload::event_id(0, 0, 0)).len()
    }

    /// A number no other load of this poster uses, for [`Poster::delivery`].
    fn next_load(&self) -> u32 {
        self.base ^ self.loads.fetch_add(1, Ordering::Relaxed)
    }

    fn delivery(
        &self,
        load: u32,
        client: u32,
        seq: u64,
    ) -> BenchResult<(Vec<(HeaderName, HeaderValue)>, Bytes)> {
        let id = payload::event_id(load, client, seq);
        let body = self.template.body(&id);
        let mut headers = vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                HeaderName::from_bytes(self.template.signature_header.as_bytes())?,
                HeaderValue::from_str(&self.template.signature(&self.secret, &body))?,
            ),
        ];
        for (name, value) in self.template.headers {
            let value = if name.eq_ignore_ascii_case("X-Watsi-Delivery-Id") {
                // A real vendor gives each delivery its own id.
                HeaderValue::from_str(&format!("dlv_{id}"))?
            } else {
                HeaderValue::from_str(value)?
            };
            // `from_bytes` lower-cases the vendor's spelling.
            headers.push((HeaderName::from_bytes(name.as_bytes())?, value));
        }
        Ok((headers, Bytes::from(body)))
    }
}

/// How requests are spaced.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Each connection sends its next request as soon as the previous answer is in.
    Closed,
    /// `per_second` requests in total, on a fixed schedule spread over the connections; a
    /// connection that falls behind sends at once (so the achieved rate shows it).
    Rate { per_second: f64 },
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub connections: usize,
    pub duration: Duration,
    pub pace: Pace,
}

/// What a load saw.
#[derive(Default)]
pub struct Report {
    pub sent: u64,
    pub accepted: u64,
    /// Answers other than 200 `accepted`, and failed exchanges, by kind.
    pub refused: BTreeMap<String, u64>,
    /// Request to whole answer, for every exchange that got an answer.
    pub latencies: Vec<Duration>,
    /// The event id the server gave each accepted delivery, and when its answer arrived.
    pub accepted_at: Vec<(String, Instant)>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// When the last answer arrived.
    pub ended: Option<Instant>,
}

impl Report {
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// `3 x 503 store_unavailable, 1 x connection error: ...`.
    pub fn refused_summary(&self) -> String {
        let parts: Vec<String> = self
            .refused
            .iter()
            .map(|(kind, n)| format!("{n} x {kind}"))
            .collect();
        parts.join(", ")
    }

    pub fn per_second(&self) -> f64 {
        (self.sent as f64) / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, other: Report) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        for (kind, n) in other.refused {
            *self.refused.entry(kind).or_default() += n;
        }
        self.latencies.extend(other.latencies);
        self.accepted_at.extend(other.accepted_at);
        self.ended = self.ended.max(other.ended);
    }
}

/// Runs `spec` against `addr`. `accepted` counts accepted deliveries as they happen (for
/// sampling while the load runs).
pub async fn run(
    addr: SocketAddr,
    poster: Arc<Poster>,
    spec: Spec,
    accepted: Arc<AtomicU64>,
) -> Report {
    let started = Instant::now();
    let load = poster.next_load();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..spec.connections {
        tasks.spawn(connection(
            addr,
            poster.clone(),
            load,
            client as u32,
            spec,
            started,
            accepted.clone(),
        ));
    }
    let mut report = Report::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(part) => report.merge(part),
            Err(e) => {
                *report
                    .refused
                    .entry(format!("load task failed: {e}"))
                    .or_default() += 1;
            }
        }
    }
    report.elapsed = report.ended.unwrap_or(started).duration_since(started);
    report
}

/// One client's loop over its own keep-alive connection (reopened after a failed exchange).
async fn connection(
    addr: SocketAddr,
    poster: Arc<Poster>,
    load: u32,
    client: u32,
    spec: Spec,
    started: Instant,
    accepted: Arc<AtomicU64>,
) -> Report {
    let deadline = started + spec.duration;
    let mut report = Report::default();
    let mut conn: Option<Conn> = None;
    let mut seq: u64 = 0;
    loop {
        let due = match spec.pace {
            Pace::Closed => Instant::now(),
            Pace::Rate { per_second } => {
                let index = seq * spec.connections as u64 + u64::from(client);
                started + Duration::from_secs_f64(index as f64 / per_second)
            }
        };
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let live = match conn.as_mut() {
            Some(live) => live,
            None => match Conn::connect(addr).await {
                Ok(fresh) => conn.insert(fresh),
                Err(e) => {
                    *report
                        .refused
                        .entry(format!("cannot connect: {e}"))
                        .or_default() += 1;
                    // Not a retry storm: the next attempt waits for the next due time, or
                    // this long in a closed loop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    seq += 1;
                    continue;
                }
            },
        };
        let (headers, body) = match poster.delivery(load, client, seq) {
            Ok(delivery) => delivery,
            Err(e) => {
                *report
                    .refused
                    .entry(format!("cannot build a delivery: {e}"))
                    .or_default() += 1;
                break;
            }
        };
        seq += 1;
        report.sent += 1;
        // At a fixed rate, latency counts from when the request was due, so a server that
        // falls behind shows its queueing delay too (no coordinated omission).
        let sent_at = match spec.pace {
            Pace::Closed => Instant::now(),
            Pace::Rate { .. } => due,
        };
        let answer = live.send(Method::POST, &poster.path, &headers, body).await;
        let answered_at = Instant::now();
        report.ended = Some(answered_at);
        match answer {
            Ok((status, body)) => {
                report.latencies.push(answered_at - sent_at);
                let taken = if poster.plain && status == StatusCode::OK {
                    Ok(String::new())
                } else {
                    accepted_id(status, &body)
                };
                match taken {
                    Ok(id) => {
                        report.accepted += 1;
                        accepted.fetch_add(1, Ordering::Relaxed);
                        report.accepted_at.push((id, answered_at));
                    }
                    Err(kind) => *report.refused.entry(kind).or_default() += 1,
                }
            }
            Err(e) => {
                *report
                    .refused
                    .entry(format!("exchange failed: {e}"))
                    .or_default() += 1;
                conn = None;
            }
        }
    }
    report
}

/// The event id of a 200 `{"status":"accepted","id":ID}`, else how the answer differs.
fn accepted_id(status: StatusCode, body: &[u8]) -> Result<String, String> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let word = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    match (status, word("status"), word("id")) {
        (StatusCode::OK, Some(s), Some(id)) if s == "accepted" => Ok(id),
        (StatusCode::OK, Some(s), _) => Err(format!("200 {s}")),
        (status, _, _) => Err(format!(
            "{} {}",
            status.as_u16(),
            word("error").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_200_accepted_counts() {
        let ok = br#"{"status":"accepted","id":"01J"}"#;
        assert_eq!(accepted_id(StatusCode::OK, ok), Ok("01J".into()));
        let dup = br#"{"status":"duplicate","id":"01J"}"#;
        assert_eq!(
            accepted_id(StatusCode::OK, dup),
            Err("200 duplicate".into())
        );
        let busy = br#"{"error":"store_unavailable","message":"retry"}"#;
        assert_eq!(
            accepted_id(StatusCode::SERVICE_UNAVAILABLE, busy),
            Err("503 store_unavailable".into())
        );
    }
}
