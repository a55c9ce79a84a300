//! `burst`: 300 vendor clients each deliver one signed 1 MiB event at the same moment; the
//! server's peak RSS during the burst and its RSS after it. The body budget
//! (`server.max_inflight_body_bytes`, 64 MiB by default) answers what does not fit 503 with
//! Retry-After; each client retries as a vendor would (sooner than the 5 s it is told, to keep
//! the run short) until its event is accepted. Run twice, on fresh servers: with the events
//! routed to a file sink (the whole server), and kept unrouted (the front door and the store
//! alone, without delivery).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use tokio::sync::Barrier;

use crate::client::Conn;
use crate::payload::{self, Template};
use crate::server::{self, Server, Site};
use crate::stats::{bytes, ms};
use crate::{machine, BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
const CLIENTS: usize = 300;
const BODY_BYTES: usize = 1024 * 1024;
/// The target for the peak, in MB (10^6 bytes).
const PEAK_TARGET_MB: f64 = 150.0;
/// A refused client tries again after this (plus its index in microseconds, to spread them).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Attempts per client before its event is called lost.
const MAX_ATTEMPTS: u32 = 200;
/// How long RSS is watched after the burst for the memory to be given back.
const SETTLE: Duration = Duration::from_secs(3);
const RSS_POLL: Duration = Duration::from_millis(5);

/// What one client saw.
#[derive(Default)]
struct Outcome {
    accepted: bool,
    /// 503 answers (the budget, or the store).
    busy: u32,
    /// Connections reset or closed before an answer was read (a refusal racing the body).
    broken: u32,
    other: Vec<String>,
}

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    println!("== burst: {CLIENTS} clients each POST one signed 1 MiB watsi event at once ==");
    println!(
        "settings: {CLIENTS} connections opened first, then every request sent at the same moment; body {} B; server defaults (max_inflight_body_bytes 64 MiB), max_body_bytes 2 MiB; a client answered 503 (or cut off) retries on a new connection after {} ms; server RUST_LOG={}; load client on the same {} cores",
        BODY_BYTES,
        RETRY_PAUSE.as_millis(),
        server::LOG_LEVEL,
        machine::cores()
    );
    for routed in [true, false] {
        burst(env, routed, problems).await?;
    }
    Ok(())
}

/// One burst on a fresh server; `routed`: every event goes to a file sink.
async fn burst(env: &Env, routed: bool, problems: &mut Problems) -> BenchResult<()> {
    let site = Site::new()?;
    let (label, sinks) = if routed {
        let sink = server::quote(&site.sink_path(WORKSPACE, "audit"));
        (
            "routed to a file sink",
            format!("    sinks:\n      audit: {{ type: file, path: {sink} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [audit]\n"),
        )
    } else {
        ("unrouted (no delivery)", String::new())
    };
    println!("-- events {label}");
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n{sinks}",
        site.server_section(env, &["max_body_bytes: 2097152"]),
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let idle = server.rss_bytes().unwrap_or(0);

    let template = payload::watsi();
    let deliveries: Vec<(Bytes, HeaderValue)> = (0..CLIENTS)
        .map(|client| delivery(&template, client))
        .collect::<BenchResult<_>>()?;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for (index, (body, signature)) in deliveries.into_iter().enumerate() {
        let conn = Conn::connect(server.addr()).await?;
        let barrier = barrier.clone();
        let addr = server.addr();
        clients.push(tokio::spawn(async move {
            barrier.wait().await;
            deliver(addr, conn, body, signature, index).await
        }));
    }
    // Sampled while the clients run; VmHWM gives the true peak whatever the sampling misses.
    let mut sampled_peak = 0;
    while !clients.iter().all(|c| c.is_finished()) {
        sampled_peak = sampled_peak.max(server.rss_bytes().unwrap_or(0));
        tokio::time::sleep(RSS_POLL).await;
    }
    let elapsed = started.elapsed();
    let mut outcomes = Vec::with_capacity(CLIENTS);
    for client in clients {
        outcomes.push(client.await?);
    }
    let peak = server.peak_rss_bytes().unwrap_or(sampled_peak);
    let after = server.rss_bytes().unwrap_or(0);
    tokio::time::sleep(SETTLE).await;
    let settled = server.rss_bytes().unwrap_or(0);

    let accepted = outcomes.iter().filter(|o| o.accepted).count();
    let first_try = outcomes
        .iter()
        .filter(|o| o.accepted && o.busy + o.broken == 0)
        .count();
    let busy: u32 = outcomes.iter().map(|o| o.busy).sum();
    let broken: u32 = outcomes.iter().map(|o| o.broken).sum();
    println!(
        "accepted: {accepted}/{CLIENTS} in {} ({first_try} on the first try); 503 answers: {busy}; connections cut before an answer: {broken}",
        ms(elapsed)
    );
    let mb = |n: u64| n as f64 / 1e6;
    println!(
        "server RSS: idle {} | peak during the burst {} ({:.0} MB; target < {PEAK_TARGET_MB:.0} MB) | right after {} | {} s later {}",
        bytes(idle),
        bytes(peak),
        mb(peak),
        bytes(after),
        SETTLE.as_secs(),
        bytes(settled)
    );
    let (log, first_problems) = server.log_summary();
    println!("server log: {log}");
    for line in first_problems {
        println!("  {line}");
    }
    for other in outcomes.iter().flat_map(|o| o.other.iter()).take(3) {
        problems.add("burst", format!("unexpected answer: {other}"));
    }
    if accepted < CLIENTS {
        problems.add(
            "burst",
            format!(
                "{} events never accepted after {MAX_ATTEMPTS} attempts",
                CLIENTS - accepted
            ),
        );
    }
    if mb(peak) >= PEAK_TARGET_MB {
        problems.add(
            "burst",
            format!(
                "events {label}: peak RSS {:.0} MB is over the {PEAK_TARGET_MB:.0} MB target",
                mb(peak)
            ),
        );
    }
    Ok(())
}

/// One client's body (1 MiB exactly) and its signature.
fn delivery(template: &Template, client: usize) -> BenchResult<(Bytes, HeaderValue)> {
    let id = format!("evt_burst_{client:06}");
    let empty = serde_json::json!({"id": id, "type": "message.received", "data": {"text": ""}});
    let padding = BODY_BYTES - empty.to_string().len();
    let body = serde_json::json!({
        "id": id,
        "type": "message.received",
        "data": {"text": payload::prose(padding)},
    })
    .to_string();
    debug_assert_eq!(body.len(), BODY_BYTES);
    let signature = HeaderValue::from_str(&template.signature(SECRET.as_bytes(), body.as_bytes()))?;
    Ok((Bytes::from(body), signature))
}

async fn deliver(
    addr: std::net::SocketAddr,
    first: Conn,
    body: Bytes,
    signature: HeaderValue,
    index: usize,
) -> Outcome {
    let path = format!("/hooks/{WORKSPACE}/watsi");
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (HeaderName::from_static("x-watsi-signature"), signature),
    ];
    let mut outcome = Outcome::default();
    let mut conn = Some(first);
    for _ in 0..MAX_ATTEMPTS {
        let mut current = match conn.take() {
            Some(conn) => conn,
            None => match Conn::connect(addr).await {
                Ok(conn) => conn,
                Err(_) => {
                    outcome.broken += 1;
                    pause(index).await;
                    continue;
                }
            },
        };
        match current
            .send(Method::POST, &path, &headers, body.clone())
            .await
        {
            Ok((StatusCode::OK, _)) => {
                outcome.accepted = true;
                return outcome;
            }
            Ok((StatusCode::SERVICE_UNAVAILABLE, _)) => outcome.busy += 1,
            Ok((status, answer)) => {
                outcome
                    .other
                    .push(format!("{status}: {}", String::from_utf8_lossy(&answer)));
                return outcome;
            }
            Err(_) => outcome.broken += 1,
        }
        pause(index).await;
    }
    outcome
}

async fn pause(index: usize) {
    tokio::time::sleep(RETRY_PAUSE + Duration::from_micros(index as u64 * 100)).await;
}
