//! `backlog`: an http sink whose receiver is down (nothing listens on its port) while a million
//! events are accepted, RSS sampled; then the receiver comes up on that port and the backlog
//! drains with no load: how soon the first event arrives, the drain rate and time, and RSS.
//! The drain rate is the idle drain figure: an http sink to a local receiver at its
//! default concurrency, nothing else running.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::growth::{BODY_BYTES, RSS_TARGET_MB};
use crate::load::{self, Poster, Spec};
use crate::payload;
use crate::receiver::{reserve_addr, Receiver};
use crate::sample::{self, Watched};
use crate::server::{Server, Site};
use crate::stats::{bytes, ms};
use crate::{BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
const CONNECTIONS: usize = 128;
const LOAD_LIMIT: Duration = Duration::from_secs(40 * 60);
const DRAIN_DEADLINE: Duration = Duration::from_secs(20 * 60);
/// Issue 18's idle drain target.
const DRAIN_TARGET: f64 = 20_000.0;

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let events: u64 = if env.quick { 30_000 } else { 1_000_000 };
    let every = Duration::from_secs(if env.quick { 1 } else { 5 });
    println!("== backlog: {events} events for an http sink whose receiver is down, then up ==");
    println!(
        "settings: closed loop, {CONNECTIONS} keep-alive HTTP/1.1 connections until {events} unique signed Watsi events of {BODY_BYTES} B are sent; one workspace, one http sink (default concurrency) whose receiver's port has no listener during the load; then a receiver answering 200 at once starts on that port; server defaults; sampled every {} s",
        every.as_secs()
    );
    let addr = reserve_addr()?;
    let site = Site::new()?;
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      crm: {{ type: http, url: \"http://{addr}/events\" }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [crm]\n",
        site.server_section(env, &[]),
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut watched = Watched {
        server: &server,
        data_dir: site.data_dir(),
        file: None,
        receiver: None,
        accepted: accepted.clone(),
        started,
        sinks: [None, Some("crm")],
    };
    let poster = Arc::new(Poster::new(
        WORKSPACE,
        payload::watsi_of(BODY_BYTES),
        SECRET,
    ));
    let spec = Spec::closed(CONNECTIONS, LOAD_LIMIT).events(events);
    let stop = AtomicBool::new(false);
    let (report, samples) = tokio::join!(
        async {
            let report = load::run(server.addr(), poster, spec, accepted.clone()).await;
            stop.store(true, Ordering::Relaxed);
            report
        },
        watched.series(every, &stop),
    );
    let mut samples = samples?;
    let n = report.accepted;
    let loaded_peak = sample::peak_rss(&samples);
    let queued = samples.last().map_or(0, |s| s.queued);

    let receiver = Receiver::start_at(addr, false)?;
    let up = Instant::now();
    watched.receiver = Some(&receiver);
    let mut first = None;
    let mut next_sample = up + every;
    while receiver.posts() < n && up.elapsed() < DRAIN_DEADLINE {
        if first.is_none() && receiver.posts() > 0 {
            first = Some(Instant::now());
        }
        if Instant::now() >= next_sample {
            samples.push(watched.sample().await?);
            next_sample += every;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = Instant::now();
    samples.push(watched.sample().await?);
    let peak = server
        .peak_rss_bytes()
        .unwrap_or(sample::peak_rss(&samples));
    let final_rss = server.rss_bytes().unwrap_or(0);
    let (log, first_problems) = server.log_summary();
    drop(server);

    println!();
    sample::print(&samples, 40);
    println!();
    println!(
        "load: {} sent, {n} accepted in {:.1} s = {:.0} events/s; {} queued at its end; {} not taken{}",
        report.sent,
        report.elapsed.as_secs_f64(),
        report.accepted_per_second(),
        queued,
        report.refused_total(),
        if report.refused_total() > 0 { format!(": {}", report.refused_summary()) } else { String::new() }
    );
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "RSS with the backlog: peak during the load {} ({:.0} MB), peak overall {} ({:.0} MB; target < {RSS_TARGET_MB:.0} MB), at the end {}",
        bytes(loaded_peak),
        mb(loaded_peak),
        bytes(peak),
        mb(peak),
        bytes(final_rss)
    );
    if mb(peak) >= RSS_TARGET_MB {
        problems.add(
            "backlog",
            format!(
                "peak RSS {:.0} MB with a backlog of {n} events (target < {RSS_TARGET_MB:.0} MB)",
                mb(peak)
            ),
        );
    }
    match first {
        Some(first) if receiver.posts() >= n => {
            let rate = n as f64 / (done - first).as_secs_f64().max(1e-9);
            println!(
                "receiver up: first event after {}, all {n} after {}; idle drain {rate:.0} events/s from the first to the last (target >= {DRAIN_TARGET:.0})",
                ms(first - up),
                ms(done - up)
            );
            if rate < DRAIN_TARGET {
                problems.add(
                    "backlog",
                    format!("idle drain {rate:.0} events/s (target {DRAIN_TARGET:.0})"),
                );
            }
        }
        _ => problems.add(
            "backlog",
            format!(
                "the receiver got {} of {n} events within {DRAIN_DEADLINE:?}",
                receiver.posts()
            ),
        ),
    }
    println!("server log: {log}");
    for line in first_problems {
        println!("  {line}");
    }
    Ok(())
}
