//! `traces`: intake with OpenTelemetry traces at `sample_ratio: 1.0` against a local OTLP/HTTP
//! collector (this process, answering 200 to every export) vs the same server with traces off:
//! the same closed-loop load as `ingest` at 32 clients, the two alternating, each three times.
//! Target: traced intake within 10% of untraced, best against best; each round's own ratio
//! (traced over the untraced run just before it) is shown too, for the noise. Beside the
//! rates, the server process's CPU time (user + system, from /proc) per accepted request, and
//! its ratio traced over untraced: robust to other load on the machine, which the rates are
//! not. The collector only counts what it is sent: it costs this process, not the server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::load::{self, Poster, Spec};
use crate::machine::{self, Cpu};
use crate::payload;
use crate::server::{self, Server, Site};
use crate::stats::{self, Distribution};
use crate::{BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
const CONCURRENCY: usize = 32;
/// Traced intake must keep at least this share of untraced intake.
const TARGET: f64 = 0.90;
/// Off/on pairs, one after the other.
const ROUNDS: usize = 3;

/// What the local collector took.
#[derive(Default)]
struct Taken {
    exports: AtomicU64,
    bytes: AtomicU64,
}

struct Run {
    traced: bool,
    per_second: f64,
    latency: Distribution,
    refused: u64,
    /// The server's CPU time per accepted request, in µs.
    cpu: Option<f64>,
}

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let duration = Duration::from_secs(if env.quick { 3 } else { 10 });
    let taken = Arc::new(Taken::default());
    let collector = collector(taken.clone()).await?;
    println!("== traces: intake with server.telemetry at sample_ratio 1.0 vs off ==");
    println!(
        "settings: {} s per run at concurrency {CONCURRENCY}, closed loop, signed unique 1 KB Watsi events, one file sink; off/on alternating, {ROUNDS} rounds; collector: this process on {collector} answering 200; server RUST_LOG={}",
        duration.as_secs(),
        server::LOG_LEVEL
    );
    let mut runs = Vec::new();
    for _ in 0..ROUNDS {
        for traced in [false, true] {
            runs.push(one(env, traced.then_some(collector), duration).await?);
        }
    }
    let best = |traced: bool| {
        runs.iter()
            .filter(|r| r.traced == traced)
            .map(|r| r.per_second)
            .fold(0.0, f64::max)
    };
    // The least CPU per request: the run the machine's other load disturbed least.
    let least_cpu = |traced: bool| {
        (runs.iter())
            .filter(|r| r.traced == traced)
            .filter_map(|r| r.cpu)
            .reduce(f64::min)
    };
    for r in &runs {
        println!(
            "{:<12} {:>8.0} req/s   p50 {:>9}   p99 {:>9}   server CPU {:>9}/request   not accepted {}",
            if r.traced { "traces 1.0" } else { "traces off" },
            r.per_second,
            stats::ms(r.latency.percentile(50.0)),
            stats::ms(r.latency.percentile(99.0)),
            machine::micros(r.cpu),
            r.refused
        );
    }
    let rounds: Vec<String> = (runs.chunks(2))
        .map(|pair| {
            let cpu = match (pair[0].cpu, pair[1].cpu) {
                (Some(off), Some(on)) => format!("{:.1}%", 100.0 * on / off.max(1e-9)),
                _ => "?".into(),
            };
            format!(
                "rate {:.1}% CPU/request {cpu}",
                100.0 * pair[1].per_second / pair[0].per_second.max(1.0)
            )
        })
        .collect();
    println!("each round, traced / untraced: {}", rounds.join("; "));
    let (off, on) = (best(false), best(true));
    let ratio = on / off.max(1.0);
    let cpu_ratio = match (least_cpu(false), least_cpu(true)) {
        (Some(off), Some(on)) => format!(
            "{} traced vs {} off: {:.1}% of untraced",
            machine::micros(Some(on)),
            machine::micros(Some(off)),
            100.0 * on / off.max(1e-9)
        ),
        _ => "not read".into(),
    };
    println!(
        "best of {ROUNDS}: off {off:.0} req/s, traced {on:.0} req/s: {:.1}% of untraced (target at least {:.0}%); server CPU per accepted request, least of {ROUNDS}: {cpu_ratio}; collector took {} exports, {}",
        ratio * 100.0,
        TARGET * 100.0,
        taken.exports.load(Ordering::Relaxed),
        stats::bytes(taken.bytes.load(Ordering::Relaxed))
    );
    if ratio < TARGET {
        problems.add(
            "traces",
            format!("traced intake is {:.1}% of untraced", ratio * 100.0),
        );
    }
    if taken.exports.load(Ordering::Relaxed) == 0 {
        problems.add("traces", "the collector received no export".to_owned());
    }
    for r in runs.iter().filter(|r| r.refused > 0) {
        problems.add(
            "traces",
            format!("{} answers were not 200 accepted", r.refused),
        );
    }
    Ok(())
}

async fn one(env: &Env, collector: Option<SocketAddr>, duration: Duration) -> BenchResult<Run> {
    let site = Site::new()?;
    let sink = site.sink_path(WORKSPACE, "events");
    let telemetry = collector.map(|addr| {
        format!("telemetry: {{ otlp_endpoint: \"http://{addr}\", sample_ratio: 1.0 }}")
    });
    let extra: Vec<&str> = telemetry.iter().map(String::as_str).collect();
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      events: {{ type: file, path: {} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [events]\n",
        site.server_section(env, &extra),
        server::quote(&sink)
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET));
    let spec = Spec::closed(CONCURRENCY, duration);
    let cpu = Cpu::start(server.pid());
    let report = load::run(server.addr(), poster, spec, Arc::default()).await;
    let (_, server_cpu) = cpu.per_request(report.accepted);
    drop(server);
    Ok(Run {
        traced: collector.is_some(),
        per_second: report.per_second(),
        refused: report.refused_total(),
        latency: Distribution::new(report.latencies),
        cpu: server_cpu,
    })
}

/// A collector that takes every export: reads the body (counting its bytes, never decoding
/// it), answers 200.
async fn collector(taken: Arc<Taken>) -> BenchResult<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let taken = taken.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let taken = taken.clone();
                    async move {
                        let body = request.into_body().collect().await.map(|b| b.to_bytes());
                        let len = body.map_or(0, |b| b.len() as u64);
                        taken.exports.fetch_add(1, Ordering::Relaxed);
                        taken.bytes.fetch_add(len, Ordering::Relaxed);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
