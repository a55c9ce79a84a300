//! `retention`: steady load of unique events at a fixed rate against a server whose dedupe window
//! and event retention are both 5 s (so its sweeper runs every 1.25 s), sampling what it occupies
//! every few seconds: sled's own size, the data directory on disk, and the process's RSS. With
//! everything older than 5 s swept, all three should level off once the first windows have passed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{self, Poster, Spec};
use crate::payload;
use crate::server::{self, disk_usage, Server, Site};
use crate::stats;
use crate::{machine, BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
const WINDOW: &str = "5s";
const WINDOW_SECS: f64 = 5.0;
/// Four windows. Removal keeps pace with the load after one window, but sled's file keeps
/// filling its segments for a few more (in a 5-minute run the size reached its band after
/// ~25 s). Samples from here to the end of the load are the steady state.
const WARM_UP: Duration = Duration::from_secs(20);
/// Growth of the steady state's second half over its first, above which a series does not count
/// as levelled off.
const PLATEAU_TOLERANCE: f64 = 0.10;
/// Fewer steady samples than this say nothing about a trend.
const CONCLUSIVE_SAMPLES: usize = 6;

struct Params {
    load: Duration,
    idle_after: Duration,
    every: Duration,
    rate: f64,
    connections: usize,
}

impl Params {
    fn new(quick: bool) -> Params {
        Params {
            load: Duration::from_secs(if quick { 15 } else { 60 }),
            idle_after: Duration::from_secs(if quick { 0 } else { 10 }),
            every: Duration::from_secs(5),
            rate: 500.0,
            connections: 16,
        }
    }
}

/// One point of the series.
struct Sample {
    at: Duration,
    accepted: u64,
    store: u64,
    dir_apparent: u64,
    dir_allocated: u64,
    rss: u64,
    queued: u64,
}

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let p = Params::new(env.quick);
    println!(
        "== retention: steady unique load, dedupe_window {WINDOW}, server.retention {WINDOW} =="
    );
    println!(
        "settings: {:.0} events/s (open loop over {} keep-alive connections, 1 KB signed watsi events) for {} s, then {} s idle; sampled every {} s: switchyard_store_size_bytes, the data dir (sum of file sizes / blocks allocated), VmRSS, sink queue depth; one workspace, one file sink outside the data dir; server RUST_LOG={}; {} cores",
        p.rate,
        p.connections,
        p.load.as_secs(),
        p.idle_after.as_secs(),
        p.every.as_secs(),
        server::LOG_LEVEL,
        machine::cores()
    );
    let site = Site::new()?;
    let sink = site.sink_path(WORKSPACE, "events");
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    dedupe_window: {WINDOW}\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      events: {{ type: file, path: {} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [events]\n",
        site.server_section(env, &[&format!("retention: {WINDOW}")]),
        server::quote(&sink)
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let accepted = Arc::new(AtomicU64::new(0));
    let poster = Arc::new(Poster::new(WORKSPACE, payload::watsi(), SECRET));
    let spec = Spec::rate(p.connections, p.load, p.rate);
    let started = Instant::now();
    let (report, samples) = tokio::join!(
        load::run(server.addr(), poster, spec, accepted.clone()),
        sample_series(&server, site.data_dir(), &p, started, accepted),
    );
    let samples = samples?;

    println!(
        "{:>6} {:>9} {:>12} {:>12} {:>14} {:>10} {:>8}",
        "t", "accepted", "sled size", "data dir", "dir allocated", "RSS", "queued"
    );
    for s in &samples {
        println!(
            "{:>5}s {:>9} {:>12} {:>12} {:>14} {:>10} {:>8}{}",
            s.at.as_secs(),
            s.accepted,
            stats::bytes(s.store),
            stats::bytes(s.dir_apparent),
            stats::bytes(s.dir_allocated),
            stats::bytes(s.rss),
            s.queued,
            if s.at > p.load { "  (idle)" } else { "" }
        );
    }
    let envelope = std::fs::metadata(&sink)
        .map(|m| m.len() / report.accepted.max(1))
        .unwrap_or(0);
    println!(
        "load: {} sent, {} accepted, {:.0}/s achieved, latency p50 {} p99 {} max {}; envelope ~{} B, so the live window holds ~{} of events",
        report.sent,
        report.accepted,
        report.per_second(),
        stats::ms(stats::Distribution::new(report.latencies.clone()).percentile(50.0)),
        stats::ms(stats::Distribution::new(report.latencies.clone()).percentile(99.0)),
        stats::ms(stats::Distribution::new(report.latencies.clone()).max()),
        envelope,
        stats::bytes((p.rate * WINDOW_SECS) as u64 * envelope),
    );
    let (log, first_problems) = server.log_summary();
    println!("server log: {log}");
    for l in first_problems {
        println!("  {l}");
    }

    let under_load: Vec<&Sample> = samples.iter().filter(|s| s.at <= p.load).collect();
    let series: [(&str, Measure); 4] = [
        ("sled size", |s| s.store),
        ("data dir", |s| s.dir_apparent),
        ("dir allocated", |s| s.dir_allocated),
        ("RSS", |s| s.rss),
    ];
    for (name, value) in series {
        let Some(steady) = Steady::of(&under_load, value) else {
            println!(
                "{name}: too few samples after the {}s warm-up to judge",
                WARM_UP.as_secs()
            );
            continue;
        };
        let verdict = format!(
            "{name} from {}s to the end of the load: {} to {}; mean of the first half {}, of the second half {} ({:+.0}%); trend {}{}/min",
            WARM_UP.as_secs(),
            stats::bytes(steady.min),
            stats::bytes(steady.max),
            stats::bytes(steady.first_half as u64),
            stats::bytes(steady.second_half as u64),
            steady.growth() * 100.0,
            if steady.per_minute < 0.0 { "-" } else { "+" },
            stats::bytes(steady.per_minute.abs() as u64),
        );
        if steady.samples < CONCLUSIVE_SAMPLES {
            println!(
                "{verdict}: only {} samples, not conclusive (run without --quick)",
                steady.samples
            );
        } else if steady.growth() <= PLATEAU_TOLERANCE {
            println!("{verdict}: levels off");
        } else {
            problems.add("retention", format!("{verdict}: keeps growing"));
        }
    }
    if report.refused_total() > 0 {
        problems.add(
            "retention",
            format!(
                "{} answers were not 200 accepted: {}",
                report.refused_total(),
                report.refused_summary()
            ),
        );
    }
    if report.per_second() < p.rate * 0.95 {
        problems.add(
            "retention",
            format!(
                "the server kept up with only {:.0} of the {:.0} events/s offered",
                report.per_second(),
                p.rate
            ),
        );
    }
    Ok(())
}

/// Samples at 0, every, 2 x every, ... until the load and the idle tail are over.
async fn sample_series(
    server: &Server,
    data_dir: PathBuf,
    p: &Params,
    started: Instant,
    accepted: Arc<AtomicU64>,
) -> BenchResult<Vec<Sample>> {
    let end = p.load + p.idle_after;
    let mut samples = Vec::new();
    let mut at = Duration::ZERO;
    while at <= end {
        tokio::time::sleep_until((started + at).into()).await;
        let metrics = server.metrics().await?;
        let (dir_apparent, dir_allocated) = disk_usage(&data_dir);
        samples.push(Sample {
            at,
            accepted: accepted.load(Ordering::Relaxed),
            store: metrics.sum("switchyard_store_size_bytes", &[]) as u64,
            dir_apparent,
            dir_allocated,
            rss: server.rss_bytes().unwrap_or(0),
            queued: metrics.sum("switchyard_sink_queue_depth", &[]) as u64,
        });
        at += p.every;
    }
    Ok(samples)
}

/// Which figure of a sample a series follows.
type Measure = fn(&Sample) -> u64;

/// A series after the warm-up, while the load runs.
struct Steady {
    samples: usize,
    min: u64,
    max: u64,
    /// Means of the first and the second half of the samples: robust to the saw-tooth of a
    /// log-structured store compacting, unlike first-versus-last.
    first_half: f64,
    second_half: f64,
    /// Least-squares slope, bytes per minute.
    per_minute: f64,
}

impl Steady {
    fn of(samples: &[&Sample], value: Measure) -> Option<Steady> {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.at >= WARM_UP)
            .map(|s| (s.at.as_secs_f64() / 60.0, value(s) as f64))
            .collect();
        if points.len() < 2 {
            return None;
        }
        let n = points.len();
        let mean = |part: &[(f64, f64)]| part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64;
        let (mx, my) = (
            points.iter().map(|p| p.0).sum::<f64>() / n as f64,
            mean(&points),
        );
        let covariance: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
        let variance: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
        Some(Steady {
            samples: n,
            min: points.iter().map(|p| p.1 as u64).min()?,
            max: points.iter().map(|p| p.1 as u64).max()?,
            first_half: mean(&points[..n / 2]),
            second_half: mean(&points[n - n / 2..]),
            per_minute: covariance / variance.max(f64::MIN_POSITIVE),
        })
    }

    /// The second half's mean over the first's, minus one.
    fn growth(&self) -> f64 {
        self.second_half / self.first_half.max(1.0) - 1.0
    }
}
