//! `recovery`: how fast an http sink's backlog reaches its receiver after the everyday faults
//! the e2e tests check only for behaviour (tests/tests/recovery.rs): a receiver that answers
//! every request after 100 ms, and a receiver down (503) for a while then back. Figures: the
//! slow receiver's delivery rate; the attempts made while down (a sink-wide backoff probes, it
//! does not try every event); how long the backlog takes to drain once the receiver is back,
//! and how long a new event then takes.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::load::{self, Poster, Spec};
use crate::payload;
use crate::server::{self, Server, Site};
use crate::{machine, BenchResult, Env, Problems};

const SECRET: &str = "bench-recovery-watsi-secret";
/// How long a backlog may take to reach the receiver before the scenario gives up.
const DEADLINE: Duration = Duration::from_secs(120);
/// How often the receiver's count is read: the resolution of the figures.
const POLL: Duration = Duration::from_millis(5);
/// What the e2e tests used to assert, kept as the figures' bounds.
const SLOW_BOUND: Duration = Duration::from_secs(15);
const DRAIN_BOUND: Duration = Duration::from_secs(15);
const FRESH_BOUND: Duration = Duration::from_secs(5);

/// An http sink's receiver: 503 (`Retry-After: 0`) while down, else 204 after `delay`.
struct Receiver {
    down: AtomicBool,
    delay: Duration,
    attempts: AtomicU64,
    delivered: AtomicU64,
}

impl Receiver {
    async fn start(delay: Duration, down: bool) -> BenchResult<(Arc<Receiver>, String)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/events", listener.local_addr()?);
        let receiver = Arc::new(Receiver {
            down: AtomicBool::new(down),
            delay,
            attempts: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        });
        tokio::spawn(serve(listener, receiver.clone()));
        Ok((receiver, url))
    }

    /// Waits until `n` deliveries were answered 204; how long after `since` that was, or
    /// `None` past the deadline.
    async fn wait_delivered(&self, n: u64, since: Instant) -> Option<Duration> {
        while self.delivered.load(Ordering::Relaxed) < n {
            if since.elapsed() > DEADLINE {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
        Some(since.elapsed())
    }
}

async fn serve(listener: TcpListener, receiver: Arc<Receiver>) {
    while let Ok((stream, _)) = listener.accept().await {
        let receiver = receiver.clone();
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let receiver = receiver.clone();
            async move {
                let _ = request.into_body().collect().await;
                receiver.attempts.fetch_add(1, Ordering::Relaxed);
                let mut answer = Response::new(Full::new(Bytes::new()));
                if receiver.down.load(Ordering::Relaxed) {
                    *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    answer
                        .headers_mut()
                        .insert("retry-after", hyper::header::HeaderValue::from_static("0"));
                } else {
                    tokio::time::sleep(receiver.delay).await;
                    receiver.delivered.fetch_add(1, Ordering::Relaxed);
                    *answer.status_mut() = StatusCode::NO_CONTENT;
                }
                Ok::<_, Infallible>(answer)
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The server with one workspace whose events all go to the http sink at `url` (its defaults:
/// concurrency 8, the sink-wide backoff capped at 5 s).
async fn serve_to(env: &Env, site: &Site, url: &str) -> BenchResult<Server> {
    let yaml = format!(
        "{}workspaces:\n  acme:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      crm: {{ type: http, url: \"{url}\" }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [crm]\n",
        site.server_section(env, &[]),
    );
    Server::start(env, &site.write_config(&yaml)?).await
}

/// Posts `events` deliveries evenly over one second (one alone is posted at once, and this
/// returns with its answer); how many were accepted.
async fn post(server: &Server, events: u64) -> BenchResult<u64> {
    let poster = Arc::new(Poster::new("acme", payload::watsi(), SECRET));
    let connections = if events == 1 { 1 } else { 4 };
    let spec = Spec::rate(connections, Duration::from_secs(1), events as f64);
    let report = load::run(server.addr(), poster, spec, Arc::default()).await;
    if report.refused_total() > 0 {
        return Err(format!("deliveries refused: {}", report.refused_summary()).into());
    }
    Ok(report.accepted)
}

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let down_for = Duration::from_secs(if env.quick { 10 } else { 45 });
    println!("== recovery: an http sink's backlog after a slow and a down receiver ==");
    println!(
        "settings: one http sink with its defaults (concurrency 8, sink-wide backoff capped at 5 s); 1 KB signed watsi events posted at a steady rate for 1 s over 4 connections; (1) a receiver answering 204 after 100 ms, 300 events; (2) a receiver answering 503 (Retry-After: 0) for {} s from the first post, 200 events, then 204 at once; server RUST_LOG={}; {} cores",
        down_for.as_secs(),
        server::LOG_LEVEL,
        machine::cores()
    );

    let site = Site::new()?;
    let (slow, url) = Receiver::start(Duration::from_millis(100), false).await?;
    let server = serve_to(env, &site, &url).await?;
    let started = Instant::now();
    let accepted = post(&server, 300).await?;
    match slow.wait_delivered(accepted, started).await {
        Some(took) => {
            println!(
                "slow receiver: {accepted} events delivered {:.1} s after the first post ({:.0} events/s)",
                took.as_secs_f64(),
                accepted as f64 / took.as_secs_f64()
            );
            if took > SLOW_BOUND {
                problems.add(
                    "recovery",
                    format!("the slow receiver got its events in {took:.1?}, over {SLOW_BOUND:?}"),
                );
            }
        }
        None => problems.add(
            "recovery",
            format!("the slow receiver did not get {accepted} events within {DEADLINE:?}"),
        ),
    }
    drop(server);

    let site = Site::new()?;
    let (down, url) = Receiver::start(Duration::ZERO, true).await?;
    let server = serve_to(env, &site, &url).await?;
    let down_since = Instant::now();
    let backlog = post(&server, 200).await?;
    tokio::time::sleep(down_for.saturating_sub(down_since.elapsed())).await;
    let tried = down.attempts.load(Ordering::Relaxed);
    down.down.store(false, Ordering::Relaxed);
    let drained = down.wait_delivered(backlog, Instant::now()).await;
    let posted = Instant::now();
    let fresh = post(&server, 1).await?;
    let fresh_took = down.wait_delivered(backlog + fresh, posted).await;
    println!(
        "down receiver: {tried} attempts in {} s down for a backlog of {backlog} events",
        down_for.as_secs()
    );
    if tried >= backlog {
        problems.add("recovery", format!("a down sink tried {tried} times for {backlog} events: it does not back off as a whole"));
    }
    match (drained, fresh_took) {
        (Some(drained), Some(fresh_took)) => {
            println!(
                "back: the backlog drained {:.2} s after the receiver came back; a new event then arrived {:.0} ms after it was posted",
                drained.as_secs_f64(),
                fresh_took.as_secs_f64() * 1e3
            );
            if drained > DRAIN_BOUND {
                problems.add(
                    "recovery",
                    format!("the backlog drained in {drained:.1?}, over {DRAIN_BOUND:?}"),
                );
            }
            if fresh_took > FRESH_BOUND {
                problems.add(
                    "recovery",
                    format!("a new event took {fresh_took:.1?}, over {FRESH_BOUND:?}"),
                );
            }
        }
        _ => problems.add(
            "recovery",
            format!("the backlog did not reach the receiver within {DEADLINE:?} of its return"),
        ),
    }
    Ok(())
}
