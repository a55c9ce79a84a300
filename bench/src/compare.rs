//! `compare`: the headline figures in one run. The same closed-loop load (32 keep-alive
//! connections, unique signed Watsi events) against a bare hyper server, the Watsi document's
//! Node handler (when `node` is installed) and switchyard with a file sink (durable accepts),
//! in alternating rounds: on a shared machine whose speed drifts during a run, each server
//! meets the drift alike, and the ratios are the medians of the rounds' ratios. Then
//! switchyard at a fixed rate of half its own maximum, latency measured from each request's
//! intended send time. Bare hyper must reach 3x the Node handler, or the ratios are flagged:
//! the load client would then be their limit.

use std::net::SocketAddr;
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
/// Closed-loop rounds of the three servers (one with `--quick`).
const ROUNDS: usize = 3;
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
    let rounds = if env.quick { 1 } else { ROUNDS };

    let bare = Baseline::bare_hyper().await?;
    let bare_poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET).baseline("/"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/webhook-server.mjs");
    let node = Baseline::node(&script, SECRET).await?;
    let node_poster =
        Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET).baseline("/webhooks/watsi"));

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

    let mut results = Vec::new();
    let mut sy_reports = Vec::new();
    let started = Instant::now();
    for _ in 0..rounds {
        let (bare_run, _) = measure(bare.addr, bare.pid(), &bare_poster, closed).await;
        let node_run = match &node {
            Some(node) => Some(measure(node.addr, node.pid(), &node_poster, closed).await.0),
            None => None,
        };
        let (sy_run, report) = measure(server.addr(), server.pid(), &poster, closed).await;
        results.push(Round {
            bare: bare_run,
            node: node_run,
            switchyard: sy_run,
        });
        sy_reports.push(report);
    }
    drop((bare, node));
    // The rounds' loads as one: every answer's latency, every accept, the last round's end.
    let report = sy_reports
        .into_iter()
        .reduce(|mut all, r| {
            all.latencies.extend(r.latencies);
            all.accepted += r.accepted;
            all.ended = r.ended;
            all
        })
        .ok_or("compare ran no round")?;
    let ended = report.ended.unwrap_or_else(Instant::now);
    let file_done = drain(&file, report.accepted).await?;
    let metrics = server.metrics().await?;
    let depth = metrics.sum("switchyard_sink_queue_depth", &[]);
    let (_, allocated) = server::disk_usage(&site.data_dir());

    let max_rate = median(results.iter().map(|r| r.switchyard.rate));
    let half = Spec::rate(CONNECTIONS, duration, (max_rate / 2.0).max(1.0));
    let fixed = load::run(server.addr(), poster, half, Arc::default()).await;
    let peak_rss = server.peak_rss_bytes().unwrap_or(0);
    let (log, _) = server.log_summary();
    drop(server);

    println!();
    println!("| round | server | requests/s | not taken | CPU per request, load client / server |");
    println!("| --- | --- | --- | --- | --- |");
    for (i, round) in results.iter().enumerate() {
        let n = i + 1;
        println!(
            "| {n} | bare hyper (read body, 200) | {} |",
            round.bare.row()
        );
        match &round.node {
            Some(node) => println!("| {n} | Watsi document's Node handler | {} |", node.row()),
            None => println!(
                "| {n} | Watsi document's Node handler | not run: `node` is not installed | | |"
            ),
        }
        println!(
            "| {n} | switchyard (file sink, durable accept) | {} |",
            round.switchyard.row()
        );
    }
    println!();
    let bare_rate = median(results.iter().map(|r| r.bare.rate));
    let node_rate = (results.iter())
        .map(|r| r.node.as_ref().map(|n| n.rate))
        .collect::<Option<Vec<f64>>>()
        .map(|rates| median(rates.into_iter()));
    // The ratios mean something only if the client could drive a far faster server.
    let client_ok = match node_rate {
        Some(node_rate) => {
            let headroom = bare_rate / node_rate.max(1e-9);
            println!("load client headroom: bare hyper / Node handler = {headroom:.2}x, medians (needs >= {CLIENT_HEADROOM:.0}x, or the client may be the limit of the ratios)");
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
    let per_round = |f: &dyn Fn(&Round) -> Option<f64>| -> Option<(f64, String)> {
        let ratios = results.iter().map(f).collect::<Option<Vec<f64>>>()?;
        let listed = (ratios.iter())
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>();
        Some((median(ratios.into_iter()), listed.join(", ")))
    };
    if let Some((vs_bare, listed)) = per_round(&|r| Some(r.switchyard.rate / r.bare.rate.max(1e-9)))
    {
        println!(
            "switchyard / bare hyper: {vs_bare:.3}, median of the rounds' {listed} (no target)"
        );
    }
    let vs_node = per_round(&|r| (r.node.as_ref()).map(|n| r.switchyard.rate / n.rate.max(1e-9)));
    if let Some((vs_node, listed)) = vs_node {
        let mark = if !client_ok { " (client-limited)" } else { "" };
        println!("switchyard / Node handler: {vs_node:.3}x{mark}, median of the rounds' {listed} (target >= {VS_NODE_TARGET:.1}x)");
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
            // The rounds' baselines ran in between: this is a floor, not the sink's speed.
            let per_second = report.accepted as f64 / at.duration_since(started).as_secs_f64();
            println!("file sink: every accepted event delivered {} after the last answer; {per_second:.0} events/s delivered over all rounds", ms(behind));
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

/// One server's closed-loop figures in one round.
struct Run {
    rate: f64,
    refused: u64,
    /// Load client, server.
    cpu: (Option<f64>, Option<f64>),
}

impl Run {
    /// The table's cells after the server's name.
    fn row(&self) -> String {
        format!(
            "{:.0} | {} | {} / {}",
            self.rate,
            self.refused,
            machine::micros(self.cpu.0),
            machine::micros(self.cpu.1)
        )
    }
}

struct Round {
    bare: Run,
    node: Option<Run>,
    switchyard: Run,
}

/// One server's round, and the load's report.
async fn measure(
    addr: SocketAddr,
    pid: u32,
    poster: &Arc<Poster>,
    spec: Spec,
) -> (Run, load::Report) {
    let cpu = Cpu::start(pid);
    let report = load::run(addr, poster.clone(), spec, Arc::default()).await;
    let run = Run {
        rate: report.accepted_per_second(),
        refused: report.refused_total(),
        cpu: cpu.per_request(report.sent),
    };
    (run, report)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
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
