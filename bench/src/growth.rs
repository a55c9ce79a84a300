//! `growth`: issue 18's sustained load. One workspace with a file sink and an http sink to a
//! local receiver that answers 200 at once; a million unique signed 600-byte Watsi events over
//! 128 keep-alive connections as fast as the server takes them; RSS, disk, both sinks' progress
//! and the queues sampled while it runs. Then the drain, what the store occupies once every
//! event is delivered; then a tenth as many events on a fresh server whose `retention` and
//! dedupe window are short, to show the sweep give the disk back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{self, Poster, Spec};
use crate::payload;
use crate::receiver::Receiver;
use crate::sample::{self, Sample, Watched};
use crate::server::{self, disk_usage, Server, Site};
use crate::sink::SinkTail;
use crate::stats::{bytes, ms};
use crate::{machine, BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
const CONNECTIONS: usize = 128;
pub const BODY_BYTES: usize = 600;
/// The load stops here even if the events are not all sent.
const LOAD_LIMIT: Duration = Duration::from_secs(40 * 60);
const DRAIN_DEADLINE: Duration = Duration::from_secs(20 * 60);
/// The retention and dedupe window of the run that shows the sweep give the disk back.
const SHORT_WINDOW: &str = "10s";
const GIVE_BACK_DEADLINE: Duration = Duration::from_secs(120);
/// The disk counts as given back when what the events added is below this share.
const GIVEN_BACK: f64 = 0.10;

/// Issue 18's targets.
const DELIVERED_DURING_LOAD: f64 = 0.95;
const OLDEST_AT_END: f64 = 2.0;
/// The span the worst stretch is measured over, and the warm-up left out before it.
const STRETCH: Duration = Duration::from_secs(10);
const QUICK_STRETCH: Duration = Duration::from_secs(2);
const SUSTAINED_RATE: f64 = 5_000.0;
pub const RSS_TARGET_MB: f64 = 150.0;
const DISK_PER_EVENT: f64 = 1_200.0;

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let events: u64 = if env.quick { 30_000 } else { 1_000_000 };
    let every = Duration::from_secs(if env.quick { 1 } else { 5 });
    println!("== growth: {events} events, a file sink and an http sink, sampled ==");
    println!(
        "settings: closed loop, {CONNECTIONS} keep-alive HTTP/1.1 connections until {events} unique signed Watsi events of {BODY_BYTES} B are sent; one workspace, a file sink and an http sink (a local receiver answering 200 at once, default concurrency) on every event; server defaults (retention 7d, dedupe_window 72h); sampled every {} s",
        every.as_secs()
    );
    let receiver = Receiver::start()?;
    let site = Site::new()?;
    let file = site.sink_path(WORKSPACE, "audit");
    let yaml = format!(
            "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      audit: {{ type: file, path: {} }}\n      crm: {{ type: http, url: \"http://{}/events\" }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [audit, crm]\n",
            site.server_section(env, &[]),
            server::quote(&file),
            receiver.addr
        );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut watched = Watched {
        server: &server,
        data_dir: site.data_dir(),
        file: Some(SinkTail::new(file.clone())),
        receiver: Some(&receiver),
        accepted: accepted.clone(),
        started,
        sinks: [Some("audit"), Some("crm")],
    };
    let poster = Arc::new(Poster::new(
        WORKSPACE,
        payload::watsi_of(BODY_BYTES),
        SECRET,
    ));
    let spec = Spec::closed(CONNECTIONS, LOAD_LIMIT).events(events);
    let stop = AtomicBool::new(false);
    let cpu_before = machine::cpu_time(Some(server.pid()));
    let (report, samples) = tokio::join!(
        async {
            let report = load::run(server.addr(), poster, spec, accepted.clone()).await;
            stop.store(true, Ordering::Relaxed);
            report
        },
        watched.series(every, &stop),
    );
    let mut samples = samples?;
    let cpu_used = cpu_before
        .zip(machine::cpu_time(Some(server.pid())))
        .map(|(before, after)| after.saturating_sub(before));
    let busy = server.metrics().await?;
    // The sample taken as the load ended.
    let end = samples.last().copied().unwrap_or_default();
    let stretch = if env.quick { QUICK_STRETCH } else { STRETCH };
    let loading = samples.clone();
    let n = report.accepted;

    let (file_done, http_done, drained) = drain(&mut watched, n, every).await?;
    samples.extend(drained);
    // A checkpoint (every second) has flushed sled by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = watched.sample().await?;
    samples.push(after);
    let peak = server
        .peak_rss_bytes()
        .unwrap_or(sample::peak_rss(&samples));
    let (log, first_problems) = server.log_summary();
    server.stop().await;

    println!();
    sample::print(&samples, 40);
    println!();
    let rate = report.accepted_per_second();
    println!(
        "load: {} sent, {n} accepted in {:.1} s = {rate:.0} events/s (target >= {SUSTAINED_RATE:.0}); {} not taken{}",
        report.sent,
        report.elapsed.as_secs_f64(),
        report.refused_total(),
        if report.refused_total() > 0 { format!(": {}", report.refused_summary()) } else { String::new() }
    );
    if let Some(cpu) = cpu_used {
        println!(
            "server CPU during the load: {:.1} s = {:.0} us per accepted event",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n.max(1) as f64
        );
    }
    let busy_of = |labels: &[&str]| busy.sum("switchyard_busy_seconds_total", labels);
    println!(
        "busy during the load (switchyard_busy_seconds_total): accept {:.1} s, apply {:.1} s, deliver to audit {:.1} s, to crm {:.1} s",
        busy_of(&["work=\"accept\""]),
        busy_of(&["work=\"apply\""]),
        busy_of(&["work=\"deliver\"", "sink=\"audit\""]),
        busy_of(&["work=\"deliver\"", "sink=\"crm\""]),
    );
    if rate < SUSTAINED_RATE {
        problems.add(
            "growth",
            format!("sustained rate {rate:.0} events/s (target {SUSTAINED_RATE:.0})"),
        );
    }
    for (name, delivered) in [("file", end.file), ("http", end.http)] {
        let share = delivered as f64 / n.max(1) as f64;
        println!("{name} sink: delivered during the load / accepted = {delivered} / {n} = {share:.2} (target >= {DELIVERED_DURING_LOAD})");
        if share < DELIVERED_DURING_LOAD {
            problems.add("growth", format!("{name} sink delivered {share:.2} of the accepted events during the load (target {DELIVERED_DURING_LOAD})"));
        }
    }
    for (name, delivered, oldest) in [
        (
            "file",
            (|s: &Sample| s.file) as fn(&Sample) -> u64,
            (|s: &Sample| s.file_oldest) as fn(&Sample) -> f64,
        ),
        ("http", |s: &Sample| s.http, |s: &Sample| s.http_oldest),
    ] {
        let worst_age = loading.iter().map(oldest).fold(0.0, f64::max);
        match worst_stretch(&loading, stretch, delivered) {
            Some((share, at)) => {
                println!("{name} sink: worst {} s stretch of the load after {} s of warm-up: delivered / accepted = {share:.2} from {} s (target >= {DELIVERED_DURING_LOAD}); oldest queued seen while loading {worst_age:.1} s", stretch.as_secs(), stretch.as_secs(), at.as_secs());
                if share < DELIVERED_DURING_LOAD {
                    problems.add("growth", format!("{name} sink fell behind: {share:.2} of the accepted events delivered over the {} s from {} s (target {DELIVERED_DURING_LOAD} in every stretch)", stretch.as_secs(), at.as_secs()));
                }
            }
            None => println!("{name} sink: the load was too short for a {} s stretch after warm-up; oldest queued seen while loading {worst_age:.1} s", stretch.as_secs()),
        }
    }
    println!(
        "at the end of the load: {} queued, oldest queued {:.1} s (target <= {OLDEST_AT_END} s)",
        end.queued, end.oldest
    );
    if end.oldest > OLDEST_AT_END {
        problems.add(
            "growth",
            format!(
                "oldest queued event {:.1} s old at the end of the load (target {OLDEST_AT_END} s)",
                end.oldest
            ),
        );
    }
    for (name, done) in [("file", file_done), ("http", http_done)] {
        match done {
            Some(d) => println!("{name} sink: every accepted event delivered {} after the last answer", ms(d)),
            None => problems.add("growth", format!("{name} sink did not get every event within {DRAIN_DEADLINE:?} of the load's end")),
        }
    }
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "RSS: peak {} ({:.0} MB; target < {RSS_TARGET_MB:.0} MB), after the drain {}",
        bytes(peak),
        mb(peak),
        bytes(after.rss)
    );
    if mb(peak) >= RSS_TARGET_MB {
        problems.add(
            "growth",
            format!(
                "peak RSS {:.0} MB over {n} events (target < {RSS_TARGET_MB:.0} MB)",
                mb(peak)
            ),
        );
    }
    let per_event = after.disk as f64 / n.max(1) as f64;
    // The split says which part to work on: the log holds the envelopes, sled the rest.
    let wal = disk_usage(&site.data_dir().join("wal")).1;
    let per = |b: u64| b as f64 / n.max(1) as f64;
    println!(
        "data dir after delivery: {} = {per_event:.0} B per event (target <= {DISK_PER_EVENT:.0} B): log {:.0} B, sled and the rest {:.0} B",
        bytes(after.disk),
        per(wal),
        per(after.disk.saturating_sub(wal))
    );
    if per_event > DISK_PER_EVENT {
        problems.add(
            "growth",
            format!(
                "{per_event:.0} B on disk per event after delivery (target {DISK_PER_EVENT:.0} B)"
            ),
        );
    }
    println!("server log: {log}");
    for line in first_problems {
        println!("  {line}");
    }

    give_back(env, events / 10, problems).await
}

/// The lowest share of the accepted events one sink delivered over any `stretch` of the load
/// after the first `stretch` (warm-up), and where that stretch starts: each sample paired with
/// the first at least `stretch` later. `None` when the load is too short for one.
fn worst_stretch(
    samples: &[Sample],
    stretch: Duration,
    delivered: fn(&Sample) -> u64,
) -> Option<(f64, Duration)> {
    let mut worst: Option<(f64, Duration)> = None;
    for (i, from) in samples.iter().enumerate().filter(|(_, s)| s.at >= stretch) {
        let Some(to) = samples[i..].iter().find(|s| s.at >= from.at + stretch) else {
            break;
        };
        let accepted = to.accepted.saturating_sub(from.accepted);
        if accepted == 0 {
            continue;
        }
        let share = delivered(to).saturating_sub(delivered(from)) as f64 / accepted as f64;
        if worst.is_none_or(|(low, _)| share < low) {
            worst = Some((share, from.at));
        }
    }
    worst
}

/// Polls both sinks until each has every accepted event; how long after now each took, and
/// the samples taken meanwhile.
async fn drain(
    watched: &mut Watched<'_>,
    accepted: u64,
    every: Duration,
) -> BenchResult<(Option<Duration>, Option<Duration>, Vec<Sample>)> {
    let from = Instant::now();
    let (mut file_done, mut http_done) = (None, None);
    let mut samples = Vec::new();
    let mut next_sample = from + every;
    while (file_done.is_none() || http_done.is_none()) && from.elapsed() < DRAIN_DEADLINE {
        let now = Instant::now();
        let lines = match watched.file.as_mut() {
            Some(tail) => tail.count()?,
            None => accepted,
        };
        if file_done.is_none() && lines >= accepted {
            file_done = Some(now - from);
        }
        if http_done.is_none() && watched.receiver.map_or(0, Receiver::posts) >= accepted {
            http_done = Some(now - from);
        }
        if now >= next_sample {
            samples.push(watched.sample().await?);
            next_sample += every;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((file_done, http_done, samples))
}

/// Retention giving the disk back: a fresh server whose retention and dedupe window are
/// [`SHORT_WINDOW`] takes `events` events for the same two sinks; once they are delivered, the
/// data directory every 5 s until what the events added to the empty store is below
/// [`GIVEN_BACK`] of it.
async fn give_back(env: &Env, events: u64, problems: &mut Problems) -> BenchResult<()> {
    println!();
    println!("-- retention gives it back: a fresh server with retention and dedupe_window {SHORT_WINDOW}, {events} events, then idle; data dir every 5 s");
    let receiver = Receiver::start()?;
    let site = Site::new()?;
    let file = site.sink_path(WORKSPACE, "audit");
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    dedupe_window: {SHORT_WINDOW}\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      audit: {{ type: file, path: {} }}\n      crm: {{ type: http, url: \"http://{}/events\" }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [audit, crm]\n",
        site.server_section(env, &[&format!("retention: {SHORT_WINDOW}")]),
        server::quote(&file),
        receiver.addr
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let (_, empty) = disk_usage(&site.data_dir());
    let poster = Arc::new(Poster::new(
        WORKSPACE,
        payload::watsi_of(BODY_BYTES),
        SECRET,
    ));
    let spec = Spec::closed(CONNECTIONS, LOAD_LIMIT).events(events);
    let report = load::run(server.addr(), poster, spec, Arc::default()).await;
    let mut tail = SinkTail::new(file);
    let deadline = Instant::now() + DRAIN_DEADLINE;
    while (tail.count()? < report.accepted || receiver.posts() < report.accepted)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let from = Instant::now();
    let (_, delivered) = disk_usage(&site.data_dir());
    println!(
        "  data dir {} empty; {} accepted, every event delivered: {}",
        bytes(empty),
        report.accepted,
        bytes(delivered)
    );
    let grown = delivered.saturating_sub(empty);
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (_, disk) = disk_usage(&site.data_dir());
        println!("  +{:>3}s {}", from.elapsed().as_secs(), bytes(disk));
        let left = disk.saturating_sub(empty);
        if (left as f64) < grown as f64 * GIVEN_BACK {
            println!(
                "retention gave back {} of the {} the events took ({:.0} %) within {} s",
                bytes(grown.saturating_sub(left)),
                bytes(grown),
                (1.0 - left as f64 / grown.max(1) as f64) * 100.0,
                from.elapsed().as_secs()
            );
            break;
        }
        if from.elapsed() >= GIVE_BACK_DEADLINE {
            problems.add(
                "growth",
                format!(
                    "retention did not give the disk back: the events took {}, {} of it still used after {GIVE_BACK_DEADLINE:?} (target below {:.0} %)",
                    bytes(grown),
                    bytes(left),
                    GIVEN_BACK * 100.0
                ),
            );
            break;
        }
    }
    drop(server);
    Ok(())
}
