//! `ingest`: the release server with one workspace (watsi, one file sink), driven by N
//! keep-alive clients posting unique, signed 1 KB Watsi events as fast as answers come back.
//! One fresh server and store per concurrency, so each run's counters start at zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{self, Poster, Spec};
use crate::payload;
use crate::server::{self, Metrics, Server, Site};
use crate::sink::SinkTail;
use crate::stats::{self, Distribution};
use crate::{machine, BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
/// How long every accepted event may take to reach the sink once the load stops.
const SINK_DEADLINE: Duration = Duration::from_secs(120);
const SINK_POLL: Duration = Duration::from_millis(1);

struct Params {
    duration: Duration,
    concurrencies: [usize; 2],
}

impl Params {
    fn new(quick: bool) -> Params {
        Params {
            duration: Duration::from_secs(if quick { 3 } else { 10 }),
            concurrencies: [1, 32],
        }
    }
}

/// One concurrency's figures.
struct Run {
    concurrency: usize,
    report: load::Report,
    latency: Distribution,
    flushes: f64,
    store_bytes: f64,
    sink_lines: u64,
    /// From the last answer until every accepted event was in the sink file.
    caught_up: Option<Duration>,
    log: String,
}

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let p = Params::new(env.quick);
    let body_len = Poster::new(WORKSPACE, payload::watsi(), SECRET).body_len();
    println!("== ingest: POST /hooks/{WORKSPACE}/watsi, signed unique 1 KB events, closed loop ==");
    println!(
        "settings: {} s per run at concurrency {} (keep-alive HTTP/1.1 connections, each sending its next request when the previous answer is in); body {body_len} B; one workspace, watsi, one file sink; a fresh server and store per run; server RUST_LOG={}; load client: 1 thread on the same {} cores",
        p.duration.as_secs(),
        p.concurrencies.map(|c| c.to_string()).join(" and "),
        server::LOG_LEVEL,
        machine::cores()
    );
    let mut runs = Vec::new();
    for concurrency in p.concurrencies {
        runs.push(one(env, concurrency, p.duration).await?);
    }
    print_table(&runs);
    for r in &runs {
        let c = r.concurrency;
        if r.report.refused_total() > 0 {
            problems.add(
                "ingest",
                format!(
                    "c={c}: {} of {} answers were not 200 accepted: {}",
                    r.report.refused_total(),
                    r.report.sent,
                    r.report.refused_summary()
                ),
            );
        }
        match r.caught_up {
            None => problems.add(
                "ingest",
                format!(
                    "c={c}: only {} of {} accepted events reached the sink within {SINK_DEADLINE:?}",
                    r.sink_lines, r.report.accepted
                ),
            ),
            Some(_) if r.sink_lines != r.report.accepted => problems.add(
                "ingest",
                format!(
                    "c={c}: the sink holds {} lines for {} accepted events",
                    r.sink_lines, r.report.accepted
                ),
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

async fn one(env: &Env, concurrency: usize, duration: Duration) -> BenchResult<Run> {
    let site = Site::new()?;
    let sink = site.sink_path(WORKSPACE, "events");
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      events: {{ type: file, path: {} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [events]\n",
        site.server_section(env, &[]),
        server::quote(&sink)
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let before = server.metrics().await?;
    let poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET));
    let spec = Spec::closed(concurrency, duration);
    let report = load::run(server.addr(), poster, spec, Arc::default()).await;
    let ended = report.ended.unwrap_or_else(Instant::now);

    let mut tail = SinkTail::new(sink);
    let deadline = Instant::now() + SINK_DEADLINE;
    let caught_up = loop {
        tail.poll()?;
        let now = Instant::now();
        if tail.lines() >= report.accepted {
            break Some(now.saturating_duration_since(ended));
        }
        if now >= deadline {
            break None;
        }
        tokio::time::sleep(SINK_POLL).await;
    };
    let after = server.metrics().await?;
    let flushes = counter(&after, &before, "switchyard_store_commits_total");
    let (log, _) = server.log_summary();
    Ok(Run {
        concurrency,
        latency: Distribution::new(report.latencies.clone()),
        report,
        flushes,
        store_bytes: after.sum("switchyard_store_size_bytes", &[]),
        sink_lines: tail.lines(),
        caught_up,
        log,
    })
}

fn counter(after: &Metrics, before: &Metrics, name: &str) -> f64 {
    after.sum(name, &[]) - before.sum(name, &[])
}

fn print_table(runs: &[Run]) {
    let header: Vec<String> = runs
        .iter()
        .map(|r| format!("c={}", r.concurrency))
        .collect();
    row("", &header);
    let each = |f: &dyn Fn(&Run) -> String| runs.iter().map(f).collect::<Vec<_>>();
    row("requests answered", &each(&|r| r.report.sent.to_string()));
    row(
        "requests/s",
        &each(&|r| format!("{:.0}", r.report.per_second())),
    );
    for (label, p) in [
        ("latency p50", 50.0),
        ("latency p90", 90.0),
        ("latency p99", 99.0),
    ] {
        row(label, &each(&|r| stats::ms(r.latency.percentile(p))));
    }
    row("latency max", &each(&|r| stats::ms(r.latency.max())));
    row(
        "not 200 accepted",
        &each(&|r| r.report.refused_total().to_string()),
    );
    row(
        "group commits (flushes)",
        &each(&|r| format!("{:.0}", r.flushes)),
    );
    row(
        "events per flush",
        &each(&|r| format!("{:.2}", r.report.accepted as f64 / r.flushes.max(1.0))),
    );
    row(
        "store size (sled)",
        &each(&|r| stats::bytes(r.store_bytes as u64)),
    );
    row(
        "all in sink after",
        &each(&|r| match r.caught_up {
            Some(d) => format!("+{}", stats::ms(d)),
            None => "never".into(),
        }),
    );
    row(
        "sink lines / accepted",
        &each(&|r| format!("{} / {}", r.sink_lines, r.report.accepted)),
    );
    for r in runs {
        println!("server log at c={}: {}", r.concurrency, r.log);
    }
}

fn row(label: &str, cells: &[String]) {
    let cells: Vec<String> = cells.iter().map(|c| format!("{c:>30}")).collect();
    println!("{label:<24}{}", cells.join(""));
}
