//! `compare`: the headline figures in one run. The same closed-loop load (32 keep-alive
//! connections, unique signed Watsi events) against a bare hyper server, the Watsi document's
//! Node handler (when `node` is installed) and switchyard with a file sink (durable accepts);
//! then switchyard at a fixed rate of half its own maximum, latency measured from each
//! request's intended send time. Bare hyper must reach 3x the Node handler in the same run,
//! or the ratios are flagged: the load client would then be their limit.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::baseline::Baseline;
use crate::load::{self, Poster, Spec, LOAD_THREADS};
use crate::machine::{self, Cpu};
use crate::payload;
use crate::server::{self, Server, Site};
use crate::sink::SinkTail;
use crate::stats::{bytes, ms, Distribution};
use crate::{BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
const CONNECTIONS: usize = 32;
/// Bare hyper must reach this multiple of the Node handler in the same run, or the load client
/// may be what limits the ratios (issue 18).
const CLIENT_HEADROOM: f64 = 3.0;
/// Issue 18's targets: intake at least the Node handler's; p99 at half the maximum rate.
const VS_NODE_TARGET: f64 = 1.0;
const P99_TARGET: Duration = Duration::from_millis(3);
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
        "settings: closed loop, {CONNECTIONS} keep-alive HTTP/1.1 connections, {} s each; unique signed Watsi events of {} B; switchyard: one workspace, a file sink on every event, durable acks; load client: {LOAD_THREADS} thread(s) of its own on the same {} cores",
        duration.as_secs(),
        Poster::new(WORKSPACE, payload::watsi(), SECRET).body_len(),
        machine::cores()
    );
    let closed = Spec::closed(CONNECTIONS, duration);

    let bare = Baseline::bare_hyper().await?;
    let poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET).baseline("/"));
    let cpu = Cpu::start(bare.pid());
    let bare_report = load::run(bare.addr, poster, closed, Arc::default()).await;
    let bare_cpu = cpu.per_request(bare_report.sent);
    drop(bare);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/webhook-server.mjs");
    let node_report = match Baseline::node(&script, SECRET).await? {
        Some(node) => {
            let poster = Arc::new(
                Poster::new(WORKSPACE, payload::watsi(), SECRET).baseline("/webhooks/watsi"),
            );
            let cpu = Cpu::start(node.pid());
            let report = load::run(node.addr, poster, closed, Arc::default()).await;
            let used = cpu.per_request(report.sent);
            Some((report, used))
        }
        None => None,
    };

    let site = Site::new()?;
    let file = site.sink_path(WORKSPACE, "audit");
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      audit: {{ type: file, path: {} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [audit]\n",
        site.server_section(env, &[]),
        server::quote(&file)
    );
    let config = site.write_config(&yaml)?;
    let spawned = Instant::now();
    let server = Server::start(env, &config).await?;
    let ready = spawned.elapsed();

    let poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET));
    let started = Instant::now();
    let cpu = Cpu::start(server.pid());
    let report = load::run(server.addr(), poster.clone(), closed, Arc::default()).await;
    let sy_cpu = cpu.per_request(report.sent);
    let ended = report.ended.unwrap_or_else(Instant::now);
    let file_done = drain(&file, report.accepted).await?;
    let metrics = server.metrics().await?;
    let depth = metrics.sum("switchyard_sink_queue_depth", &[]);
    let (_, allocated) = server::disk_usage(&site.data_dir());

    let max_rate = report.accepted_per_second();
    let half = Spec::rate(CONNECTIONS, duration, (max_rate / 2.0).max(1.0));
    let fixed = load::run(server.addr(), poster, half, Arc::default()).await;
    let peak_rss = server.peak_rss_bytes().unwrap_or(0);
    let (log, _) = server.log_summary();
    drop(server);

    let (bare_rate, sy_rate) = (
        bare_report.accepted_per_second(),
        report.accepted_per_second(),
    );
    println!();
    println!("| server | requests/s | not taken |");
    println!("| --- | --- | --- |");
    println!(
        "| bare hyper (read body, 200) | {bare_rate:.0} | {} |",
        bare_report.refused_total()
    );
    let (node_report, node_cpu) = match node_report {
        Some((r, cpu)) => (Some(r), Some(cpu)),
        None => (None, None),
    };
    match &node_report {
        Some(r) => println!(
            "| Watsi document's Node handler | {:.0} | {} |",
            r.accepted_per_second(),
            r.refused_total()
        ),
        None => println!("| Watsi document's Node handler | not run: `node` is not installed | |"),
    }
    println!(
        "| switchyard (file sink, durable accept) | {sy_rate:.0} | {} |",
        report.refused_total()
    );
    println!();
    println!("CPU time per request (user + system), load client / server:");
    for (name, used) in [
        ("bare hyper", Some(bare_cpu)),
        ("Node handler", node_cpu),
        ("switchyard", Some(sy_cpu)),
    ] {
        if let Some((client, server)) = used {
            println!(
                "  {name}: {} / {}",
                machine::micros(client),
                machine::micros(server)
            );
        }
    }
    println!();
    // The ratios mean something only if the client could drive a far faster server.
    let client_ok = match &node_report {
        Some(r) => {
            let headroom = bare_rate / r.accepted_per_second().max(1e-9);
            println!("load client headroom: bare hyper / Node handler = {headroom:.2}x (needs >= {CLIENT_HEADROOM:.0}x, or the client may be the limit of the ratios)");
            if headroom < CLIENT_HEADROOM {
                problems.add(
                    "compare",
                    format!("bare hyper reached only {headroom:.2}x the Node handler (needs {CLIENT_HEADROOM:.0}x): the load client may be the limit, the ratios below are upper bounds"),
                );
            }
            headroom >= CLIENT_HEADROOM
        }
        None => false,
    };
    println!(
        "switchyard / bare hyper: {:.1} % (no target)",
        sy_rate / bare_rate.max(1e-9) * 100.0
    );
    if let Some(r) = &node_report {
        let vs_node = sy_rate / r.accepted_per_second().max(1e-9);
        let mark = if !client_ok { " (client-limited)" } else { "" };
        println!("switchyard / Node handler: {vs_node:.2}x{mark} (target >= {VS_NODE_TARGET:.1}x)");
        if vs_node < VS_NODE_TARGET {
            problems.add(
                "compare",
                format!(
                    "switchyard is {vs_node:.2}x the Node handler (target {VS_NODE_TARGET:.1}x)"
                ),
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
        "switchyard at a fixed {:.0}/s (half its maximum), open loop, from intended send time: p50 {}  p99 {}  p99.9 {}  ({} not taken; target p99 <= {})",
        max_rate / 2.0,
        ms(fixed_latency.percentile(50.0)),
        ms(fixed_latency.percentile(99.0)),
        ms(fixed_latency.percentile(99.9)),
        fixed.refused_total(),
        ms(P99_TARGET)
    );
    if fixed_latency.percentile(99.0) > P99_TARGET {
        problems.add(
            "compare",
            format!(
                "p99 at half the maximum rate is {} (target {})",
                ms(fixed_latency.percentile(99.0)),
                ms(P99_TARGET)
            ),
        );
    }
    match file_done {
        Some(at) => {
            let behind = at.saturating_duration_since(ended);
            let per_second = report.accepted as f64 / at.duration_since(started).as_secs_f64();
            println!("file sink: every accepted event delivered {} after the last answer; {per_second:.0} events/s delivered", ms(behind));
            if behind > Duration::from_secs(5) {
                problems.add(
                    "compare",
                    format!(
                        "the file sink drained {} after the load (target 5 s)",
                        ms(behind)
                    ),
                );
            }
        }
        None => problems.add(
            "compare",
            format!("the file sink did not get every event within {DRAIN_DEADLINE:?}"),
        ),
    }
    println!("queue depth at the end: {depth}");
    println!(
        "store on disk: {} for {} events = {:.0} B per event",
        bytes(allocated),
        report.accepted,
        allocated as f64 / report.accepted.max(1) as f64
    );
    println!("peak RSS: {}", bytes(peak_rss));
    println!(
        "time to ready (spawn to /readyz 200, five plugins): {}",
        ms(ready)
    );
    println!("server log: {log}");
    Ok(())
}

/// When the file sink had every accepted event.
async fn drain(file: &Path, accepted: u64) -> BenchResult<Option<Instant>> {
    let mut tail = SinkTail::new(file.to_path_buf());
    let deadline = Instant::now() + DRAIN_DEADLINE;
    while Instant::now() < deadline {
        tail.count()?;
        if tail.lines() >= accepted {
            return Ok(Some(Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(None)
}
