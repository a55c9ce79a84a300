//! `cluster`: the embedded store against cluster mode (NATS JetStream), same load, same run.
//! Three rows: one instance on the embedded store; one instance on a local `nats-server`; two
//! instances on one `nats-server`, the clients split between them. Each run gets fresh servers
//! and a fresh store (a fresh `nats-server` for each cluster run), one workspace with one file
//! sink per instance, and the same closed-loop load (unique signed Watsi events, keep-alive
//! connections). The three setups take turns for three rounds and each rate is the median
//! run: the machine is shared, and a neighbour's busy spell should not land on one row only.
//! Delivery counts the lines of every instance's sink file: in cluster mode the instances
//! share one queue, and whichever takes an event writes it to its own file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::load::{self, Poster, Report, Spec};
use crate::nats_server::{find_nats_server, NatsServer};
use crate::payload;
use crate::server::{self, Server, Site};
use crate::sink::SinkTail;
use crate::stats::{median, ms, Distribution};
use crate::{machine, BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
/// Keep-alive connections in every row, split evenly between the instances.
const CONNECTIONS: usize = 32;
/// How long the sinks may take to get every accepted event once the load stops.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);
/// Issue 18's target: cluster mode, one instance, against the embedded store.
const VS_EMBEDDED_TARGET: f64 = 0.9;
/// How often the sink files are read.
const SINK_POLL: Duration = Duration::from_millis(2);

/// One row of the table.
struct Row {
    label: &'static str,
    /// Every instance's load, merged.
    accepted: u64,
    sent: u64,
    refused: Vec<String>,
    /// Accepted per second, summed over the instances (each instance's accepted / its load's
    /// first request to last answer).
    ingest_rate: f64,
    latencies: Vec<Duration>,
    /// Lines in all the sink files when the drain ended.
    delivered: u64,
    /// From the first accepted answer to the moment the sinks held every accepted event.
    delivery: Option<Duration>,
    /// From the last answer to the moment the sinks held every accepted event.
    behind: Option<Duration>,
    logs: Vec<(String, Vec<String>)>,
}

impl Row {
    fn delivery_rate(&self) -> Option<f64> {
        self.delivery
            .map(|d| self.accepted as f64 / d.as_secs_f64().max(1e-9))
    }
}

/// The three setups, in the order each round runs them.
const SETUPS: [(&str, bool, usize); 3] = [
    ("embedded store", false, 1),
    ("cluster, 1 instance", true, 1),
    ("cluster, 2 instances", true, 2),
];

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    // Rounds alternate the setups (A B C, A B C, ...), so a neighbour's burst of CPU on this
    // shared machine lands on all of them rather than on one; each figure is the median.
    let (rounds, duration) = if env.quick {
        (1, Duration::from_secs(3))
    } else {
        (3, Duration::from_secs(6))
    };
    // Before anything starts: a missing nats-server fails the scenario at once.
    let nats_binary = find_nats_server()?;
    let nats_version = Command::new(&nats_binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "version unknown".into());
    println!(
        "== cluster: embedded store vs cluster mode (NATS JetStream), one and two instances =="
    );
    println!(
        "settings: closed loop, {CONNECTIONS} keep-alive HTTP/1.1 connections in every row (split evenly between the instances), {} s per run, {rounds} round(s) of the three setups in turn (rates: the median run; latency: every request of the row's runs); unique signed Watsi events of {} B; one workspace, one file sink per instance, every event to it; fresh servers and store per run; cluster rows: a fresh local {} ({}) with -js per run, store replicas 1, lease 30s; server RUST_LOG={}; everything (load client, nats-server, instances) on the same {} cores",
        duration.as_secs(),
        Poster::new(WORKSPACE, payload::watsi(), SECRET).body_len(),
        nats_binary.display(),
        nats_version,
        server::LOG_LEVEL,
        machine::cores()
    );

    let mut runs: Vec<Vec<Row>> = SETUPS.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, (label, cluster, instances)) in SETUPS.iter().enumerate() {
            let nats = if *cluster {
                Some(NatsServer::start(&nats_binary).await?)
            } else {
                None
            };
            let url = nats.as_ref().map(NatsServer::url);
            runs[i].push(row(env, label, url, *instances, duration).await?);
            drop(nats);
        }
    }
    let summaries: Vec<Summary> = runs.iter().map(|r| Summary::of(r)).collect();

    println!();
    println!("| setup | instances | accepted/s | p50 | p99 | delivered/s | ingest vs embedded | delivery vs embedded |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let base = &summaries[0];
    for (i, s) in summaries.iter().enumerate() {
        let delivery = s
            .delivery_rate
            .map_or_else(|| "not all delivered".into(), |d| format!("{d:.0}"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}x", a / b.max(1e-9)),
            _ => "n/a".into(),
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {delivery} | {} | {} |",
            SETUPS[i].0,
            SETUPS[i].2,
            s.ingest_rate,
            ms(s.latency.percentile(50.0)),
            ms(s.latency.percentile(99.0)),
            ratio(Some(s.ingest_rate), Some(base.ingest_rate)),
            ratio(s.delivery_rate, base.delivery_rate),
        );
    }
    let one = &summaries[1];
    let vs_embedded = one.ingest_rate / base.ingest_rate.max(1e-9);
    println!();
    println!("cluster, 1 instance / embedded, accepted/s: {vs_embedded:.2}x (target >= {VS_EMBEDDED_TARGET}x)");
    if vs_embedded < VS_EMBEDDED_TARGET {
        problems.add(
            "cluster",
            format!("cluster mode, one instance, takes {vs_embedded:.2}x the embedded store (target {VS_EMBEDDED_TARGET}x)"),
        );
    }
    println!();
    for (i, rows) in runs.iter().enumerate() {
        let rates: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{:.0} / {}",
                    r.ingest_rate,
                    r.delivery_rate()
                        .map_or_else(|| "-".into(), |d| format!("{d:.0}"))
                )
            })
            .collect();
        println!(
            "{}: each run, accepted/s / delivered/s: {}",
            SETUPS[i].0,
            rates.join(", ")
        );
    }
    for r in runs.iter().flatten() {
        println!(
            "{}: {} sent, {} accepted, {} not taken; sinks hold {} lines; all delivered {}",
            r.label,
            r.sent,
            r.accepted,
            r.sent - r.accepted,
            r.delivered,
            match r.behind {
                Some(b) => format!("{} after the last answer", ms(b)),
                None => format!("never (deadline {DRAIN_DEADLINE:?})"),
            }
        );
        for (i, (summary, first)) in r.logs.iter().enumerate() {
            println!("  instance {}: {summary}", i + 1);
            for line in first {
                println!("    {line}");
            }
        }
        for what in &r.refused {
            problems.add("cluster", format!("{}: not taken: {what}", r.label));
        }
        match r.delivery {
            None => problems.add(
                "cluster",
                format!(
                    "{}: only {} of {} accepted events reached the sinks within {DRAIN_DEADLINE:?}",
                    r.label, r.delivered, r.accepted
                ),
            ),
            Some(_) if r.delivered > r.accepted => println!(
                "  note: {} more lines than accepted events (delivered twice: at least once)",
                r.delivered - r.accepted
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// One setup's runs: the median rates, every request's latency.
struct Summary {
    ingest_rate: f64,
    /// `None` when a run did not deliver everything.
    delivery_rate: Option<f64>,
    latency: Distribution,
}

impl Summary {
    fn of(rows: &[Row]) -> Summary {
        let ingest: Vec<f64> = rows.iter().map(|r| r.ingest_rate).collect();
        let delivery: Option<Vec<f64>> = rows.iter().map(Row::delivery_rate).collect();
        Summary {
            ingest_rate: median(&ingest),
            delivery_rate: delivery.map(|d| median(&d)),
            latency: Distribution::new(rows.iter().flat_map(|r| r.latencies.clone()).collect()),
        }
    }
}

/// One row: `instances` fresh servers (on `nats`, or each on its own embedded store), the
/// load split between them, then the drain.
async fn row(
    env: &Env,
    label: &'static str,
    nats: Option<String>,
    instances: usize,
    duration: Duration,
) -> BenchResult<Row> {
    let mut sites = Vec::new();
    let mut servers = Vec::new();
    let mut sinks = Vec::new();
    for _ in 0..instances {
        let site = Site::new()?;
        let sink = site.sink_path(WORKSPACE, "events");
        let store = nats.as_ref().map(|url| {
            format!("store: {{ type: nats, servers: [\"{url}\"], replicas: 1, lease: 30s }}")
        });
        let extra: Vec<&str> = store.iter().map(String::as_str).collect();
        let yaml = format!(
            "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      events: {{ type: file, path: {} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [events]\n",
            site.server_section(env, &extra),
            server::quote(&sink)
        );
        let config = site.write_config(&yaml)?;
        servers.push(Server::start(env, &config).await?);
        sinks.push(sink);
        sites.push(site);
    }
    let watch = SinkCount::spawn(sinks.clone());
    let poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET));
    // Every instance's load at the same moment: 32 over 2 instances is 16 each.
    let loads: Vec<_> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let share = CONNECTIONS / instances + usize::from(i < CONNECTIONS % instances);
            let spec = Spec::closed(share, duration);
            tokio::spawn(load::run(s.addr(), poster.clone(), spec, Arc::default()))
        })
        .collect();
    let mut reports: Vec<Report> = Vec::new();
    for load in loads {
        reports.push(load.await?);
    }

    let accepted: u64 = reports.iter().map(|r| r.accepted).sum();
    let sent: u64 = reports.iter().map(|r| r.sent).sum();
    let ingest_rate: f64 = reports
        .iter()
        .map(|r| r.accepted as f64 / r.elapsed.as_secs_f64().max(1e-9))
        .sum();
    let first_accept = reports.iter().filter_map(|r| r.first_accept).min();
    let last_answer = reports.iter().filter_map(|r| r.ended).max();
    let per_instance_accepted: Vec<u64> = reports.iter().map(|r| r.accepted).collect();
    let mut refused = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        if r.refused_total() > 0 {
            refused.push(format!(
                "instance {}: {} of {}: {}",
                i + 1,
                r.refused_total(),
                r.sent,
                r.refused_summary()
            ));
        }
    }
    let latencies: Vec<Duration> = reports.into_iter().flat_map(|r| r.latencies).collect();

    let deadline = Instant::now() + DRAIN_DEADLINE;
    let done_at = loop {
        let (lines, last_change) = watch.state();
        if lines >= accepted {
            break last_change;
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (delivered, _) = watch.state();
    drop(watch);
    let per_instance: Vec<u64> = sinks.iter().map(|p| count_lines(p)).collect();
    let logs = servers
        .iter()
        .zip(per_instance_accepted.iter().zip(&per_instance))
        .map(|(server, (accepted, lines))| {
            let (summary, first) = server.log_summary();
            (
                format!("accepted {accepted}, wrote {lines} sink lines; server log: {summary}"),
                first,
            )
        })
        .collect();
    drop(servers);
    drop(sites);
    let delivery = match (done_at, first_accept) {
        (Some(done), Some(first)) => Some(done.saturating_duration_since(first)),
        _ => None,
    };
    let behind = match (done_at, last_answer) {
        (Some(done), Some(last)) => Some(done.saturating_duration_since(last)),
        _ => None,
    };
    Ok(Row {
        label,
        accepted,
        sent,
        refused,
        ingest_rate,
        latencies,
        delivered,
        delivery,
        behind,
        logs,
    })
}

/// A thread counting the lines of several sink files: the total, and when it last grew.
struct SinkCount {
    state: Arc<Mutex<(u64, Option<Instant>)>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SinkCount {
    fn spawn(paths: Vec<PathBuf>) -> SinkCount {
        let state = Arc::new(Mutex::new((0, None)));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stop) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut tails: Vec<SinkTail> = paths.into_iter().map(SinkTail::new).collect();
            let mut seen = 0;
            while !thread_stop.load(Ordering::Relaxed) {
                for tail in &mut tails {
                    let _ = tail.poll();
                }
                let lines: u64 = tails.iter().map(SinkTail::lines).sum();
                if lines != seen {
                    seen = lines;
                    if let Ok(mut s) = thread_state.lock() {
                        *s = (lines, Some(Instant::now()));
                    }
                }
                std::thread::sleep(SINK_POLL);
            }
        });
        SinkCount {
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Lines so far in all the files, and when the count last changed.
    fn state(&self) -> (u64, Option<Instant>) {
        self.state.lock().map(|s| *s).unwrap_or((0, None))
    }
}

impl Drop for SinkCount {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Lines in a sink file (0 when it does not exist).
fn count_lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
        .unwrap_or(0)
}
