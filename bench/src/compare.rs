//! `compare`: the headline figures in one run. The same closed-loop load (32 keep-alive
//! connections, unique signed Watsi events) against a bare hyper server, the Watsi document's
//! Node handler (when `node` is installed) and switchyard with a file sink and an http sink
//! on a local receiver; then switchyard at a fixed rate of half its own maximum, latency
//! measured from each request's intended send time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::baseline::{self, Baseline};
use crate::load::{self, Pace, Poster, Report, Spec};
use crate::payload;
use crate::server::{self, Server, Site};
use crate::sink::SinkTail;
use crate::stats::{bytes, ms, Distribution};
use crate::{BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
const CONNECTIONS: usize = 32;
/// How long the sinks may take to catch up after the load before the figure is called a miss.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let duration = if env.quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    };
    println!("== compare: bare hyper, the Watsi document's Node handler, switchyard; same load, same run ==");
    println!(
        "settings: closed loop, {CONNECTIONS} keep-alive HTTP/1.1 connections, {} s each; unique signed Watsi events of {} B; switchyard: one workspace, a file sink and an http sink (local receiver) on every event, durable acks; load client: 1 thread on the same cores",
        duration.as_secs(),
        Poster::new(WORKSPACE, payload::watsi(), SECRET).body_len()
    );
    let closed = Spec {
        connections: CONNECTIONS,
        duration,
        pace: Pace::Closed,
    };

    let bare = Baseline::bare_hyper().await?;
    let poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET).baseline("/"));
    let bare_report = load::run(bare.addr, poster, closed, Arc::default()).await;
    drop(bare);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/webhook-server.mjs");
    let node_report = match Baseline::node(&script, SECRET).await? {
        Some(node) => {
            let poster = Arc::new(
                Poster::new(WORKSPACE, payload::watsi(), SECRET).baseline("/webhooks/watsi"),
            );
            Some(load::run(node.addr, poster, closed, Arc::default()).await)
        }
        None => None,
    };

    // The http sink's receiver: its own thread and runtime, so it does not share the load
    // client's thread.
    let received = Arc::new(AtomicU64::new(0));
    let receiver = receiver(received.clone())?;
    let site = Site::new()?;
    let file = site.sink_path(WORKSPACE, "audit");
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      audit: {{ type: file, path: {} }}\n      crm: {{ type: http, url: \"http://{receiver}/events\" }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [audit, crm]\n",
        site.server_section(env, &[]),
        server::quote(&file)
    );
    let config = site.write_config(&yaml)?;
    let spawned = Instant::now();
    let server = Server::start(env, &config).await?;
    let ready = spawned.elapsed();

    let poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET));
    let started = Instant::now();
    let report = load::run(server.addr(), poster.clone(), closed, Arc::default()).await;
    let ended = report.ended.unwrap_or_else(Instant::now);
    let (file_done, http_done) = drain(&file, &received, report.accepted).await?;
    let metrics = server.metrics().await?;
    let depth = metrics.sum("switchyard_sink_queue_depth", &[]);
    let (_, allocated) = server::disk_usage(&site.data_dir());

    let max_rate = report.per_second();
    let half = Spec {
        connections: CONNECTIONS,
        duration,
        pace: Pace::Rate {
            per_second: (max_rate / 2.0).max(1.0),
        },
    };
    let fixed = load::run(server.addr(), poster, half, Arc::default()).await;
    let peak_rss = server.peak_rss_bytes().unwrap_or(0);
    let (log, _) = server.log_summary();
    drop(server);

    let rate = |r: &Report| r.accepted as f64 / r.elapsed.as_secs_f64().max(1e-9);
    let (bare_rate, sy_rate) = (rate(&bare_report), rate(&report));
    println!();
    println!("| server | requests/s | not taken |");
    println!("| --- | --- | --- |");
    println!(
        "| bare hyper (read body, 200) | {bare_rate:.0} | {} |",
        bare_report.refused_total()
    );
    match &node_report {
        Some(r) => println!(
            "| Watsi document's Node handler | {:.0} | {} |",
            rate(r),
            r.refused_total()
        ),
        None => println!("| Watsi document's Node handler | not run: `node` is not installed | |"),
    }
    println!(
        "| switchyard (durable accept) | {sy_rate:.0} | {} |",
        report.refused_total()
    );
    println!();
    let vs_bare = sy_rate / bare_rate.max(1e-9);
    println!("switchyard / bare hyper: {:.1} %", vs_bare * 100.0);
    if vs_bare < 0.40 {
        problems.add(
            "compare",
            format!(
                "switchyard is {:.1} % of bare hyper (target 40 %)",
                vs_bare * 100.0
            ),
        );
    }
    if let Some(r) = &node_report {
        let vs_node = sy_rate / rate(r).max(1e-9);
        println!("switchyard / Node handler: {vs_node:.2}x");
        if vs_node < 1.5 {
            problems.add(
                "compare",
                format!("switchyard is {vs_node:.2}x the Node handler (target 1.5x)"),
            );
        }
    }
    let closed_latency = Distribution::new(report.latencies.clone());
    println!(
        "switchyard closed loop latency: p50 {}  p99 {}  p99.9 {}",
        ms(closed_latency.percentile(50.0)),
        ms(closed_latency.percentile(99.0)),
        ms(closed_latency.percentile(99.9))
    );
    let fixed_latency = Distribution::new(fixed.latencies.clone());
    println!(
        "switchyard at a fixed {:.0}/s (half its maximum), from intended send time: p50 {}  p99 {}  p99.9 {}  ({} not taken)",
        max_rate / 2.0,
        ms(fixed_latency.percentile(50.0)),
        ms(fixed_latency.percentile(99.0)),
        ms(fixed_latency.percentile(99.9)),
        fixed.refused_total()
    );
    if fixed_latency.percentile(99.0) > Duration::from_millis(5) {
        problems.add(
            "compare",
            format!(
                "p99 at half the maximum rate is {} (target 5 ms)",
                ms(fixed_latency.percentile(99.0))
            ),
        );
    }
    for (name, done) in [("file", file_done), ("http", http_done)] {
        match done {
            Some(at) => {
                let behind = at.saturating_duration_since(ended);
                let per_second = report.accepted as f64 / at.duration_since(started).as_secs_f64();
                println!("{name} sink: every accepted event delivered {} after the last answer; {per_second:.0} events/s delivered", ms(behind));
                if behind > Duration::from_secs(5) {
                    problems.add(
                        "compare",
                        format!(
                            "{name} sink drained {} after the load (target 5 s)",
                            ms(behind)
                        ),
                    );
                }
            }
            None => problems.add(
                "compare",
                format!("{name} sink did not get every event within {DRAIN_DEADLINE:?}"),
            ),
        }
    }
    println!("queue depth at the end (all sinks): {depth}");
    let per_event = allocated as f64 / report.accepted.max(1) as f64;
    println!(
        "store on disk: {} for {} events = {per_event:.0} B per event",
        bytes(allocated),
        report.accepted
    );
    if per_event > 2048.0 {
        problems.add(
            "compare",
            format!("{per_event:.0} B on disk per event (target 2 KB)"),
        );
    }
    println!("peak RSS: {}", bytes(peak_rss));
    println!(
        "time to ready (spawn to /readyz 200, five plugins): {}",
        ms(ready)
    );
    println!("server log: {log}");
    Ok(())
}

/// When the file sink and the receiver each had every accepted event.
async fn drain(
    file: &Path,
    received: &AtomicU64,
    accepted: u64,
) -> BenchResult<(Option<Instant>, Option<Instant>)> {
    let mut tail = SinkTail::new(file.to_path_buf());
    let (mut file_done, mut http_done) = (None, None);
    let deadline = Instant::now() + DRAIN_DEADLINE;
    while (file_done.is_none() || http_done.is_none()) && Instant::now() < deadline {
        tail.poll()?;
        let now = Instant::now();
        if file_done.is_none() && tail.lines() >= accepted {
            file_done = Some(now);
        }
        if http_done.is_none() && received.load(Ordering::Relaxed) >= accepted {
            http_done = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((file_done, http_done))
}

/// The http sink's receiver, on its own thread; stops with the process.
fn receiver(count: Arc<AtomicU64>) -> BenchResult<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(runtime) = runtime {
            runtime.block_on(async move {
                if let Ok(listener) = TcpListener::from_std(listener) {
                    let _ = baseline::serve(listener, count).await;
                }
            });
        }
    });
    Ok(addr)
}
