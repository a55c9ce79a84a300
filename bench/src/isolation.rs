//! `isolation`: workspace A's only sink is an HTTP endpoint that accepts connections and never
//! answers (timeout 30 s, so A's delivery worker is stuck on its first event); workspace B's is a
//! file. B is probed at a steady rate, once with A idle and once while A is posted to over
//! several connections: B's ingest latency (request to 200) and delivery latency (200 to its line
//! in B's file) should stay within a small factor of idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::load::{self, Poster, Spec};
use crate::payload;
use crate::server::{self, Server, Site};
use crate::sink::SinkWatch;
use crate::stats::{self, Distribution};
use crate::{machine, BenchResult, Env, Problems};

const SECRET_A: &str = "bench-a-watsi-secret";
const SECRET_B: &str = "bench-b-watsi-secret";
/// How often B's file is polled: the resolution of the delivery latency.
const WATCH_EVERY: Duration = Duration::from_micros(250);
/// How long B's accepted events may take to appear in its file after its probe ends.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);
/// B is probed this long, unmeasured, before the idle phase.
const WARM_UP: Duration = Duration::from_secs(1);
/// Loaded/idle ratio above which B is reported as not isolated.
const ISOLATION_FACTOR: f64 = 3.0;

struct Params {
    phase: Duration,
    b_rate: f64,
    a_rate: f64,
    a_connections: usize,
}

impl Params {
    fn new(quick: bool) -> Params {
        Params {
            phase: Duration::from_secs(if quick { 3 } else { 10 }),
            b_rate: 50.0,
            a_rate: 250.0,
            a_connections: 8,
        }
    }
}

/// B's figures in one phase.
struct Phase {
    b: load::Report,
    ingest: Distribution,
    delivery: Distribution,
    undelivered: usize,
}

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let p = Params::new(env.quick);
    println!("== isolation: workspace A's HTTP sink never answers; workspace B's latencies ==");
    println!(
        "settings: after a {} s unmeasured warm-up of B, two phases of {} s; B probed at {:.0} events/s over 1 keep-alive connection (1 KB signed watsi events); phase 2 adds A at {:.0} events/s over {} connections; A's sink: http to a local listener that accepts and never answers (timeout 30s); B's sink: a file polled every {} µs (delivery = B's 200 to its line in the file); server RUST_LOG={}; {} cores",
        WARM_UP.as_secs(),
        p.phase.as_secs(),
        p.b_rate,
        p.a_rate,
        p.a_connections,
        WATCH_EVERY.as_micros(),
        server::LOG_LEVEL,
        machine::cores()
    );
    let blackhole = TcpListener::bind("127.0.0.1:0").await?;
    let blackhole_addr = blackhole.local_addr()?;
    let _blackhole = AbortOnDrop(tokio::spawn(never_answer(blackhole)));

    let site = Site::new()?;
    let b_sink = site.sink_path("b", "events");
    let yaml = format!(
        "{}workspaces:\n  a:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET_A}\"]\n    sinks:\n      slow: {{ type: http, url: \"http://{blackhole_addr}/events\", timeout: 30s }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [slow]\n  b:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET_B}\"]\n    sinks:\n      events: {{ type: file, path: {} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [events]\n",
        site.server_section(env, &[]),
        server::quote(&b_sink)
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let watch = SinkWatch::spawn(b_sink, WATCH_EVERY);
    let b_poster = Arc::new(Poster::new("b", payload::watsi(), SECRET_B));
    let a_poster = Arc::new(Poster::new("a", payload::watsi(), SECRET_A));
    let probe = Spec::rate(1, p.phase, p.b_rate).keep_ids();

    // Unmeasured: the first requests to a fresh server pay for opening files and waking threads.
    let warm_up = Spec {
        duration: WARM_UP,
        ..probe
    };
    let warmed = load::run(server.addr(), b_poster.clone(), warm_up, Arc::default()).await;
    settle(warmed, &watch).await;

    let idle_b = load::run(server.addr(), b_poster.clone(), probe, Arc::default()).await;
    let idle = settle(idle_b, &watch).await;

    let a_load = Spec::rate(p.a_connections, p.phase, p.a_rate);
    let (a, loaded_b) = tokio::join!(
        load::run(server.addr(), a_poster, a_load, Arc::default()),
        load::run(server.addr(), b_poster, probe, Arc::default()),
    );
    let loaded = settle(loaded_b, &watch).await;
    let metrics = server.metrics().await?;
    let a_queue = metrics.sum("switchyard_sink_queue_depth", &["workspace=\"a\""]);
    let a_delivered = metrics.sum(
        "switchyard_sink_attempts_total",
        &["workspace=\"a\"", "outcome=\"delivered\""],
    );
    let (log, first_problems) = server.log_summary();

    let line = |label: &str, idle: Duration, loaded: Duration| {
        let ratio = loaded.as_secs_f64() / idle.as_secs_f64().max(1e-9);
        println!(
            "{label:<28}{:>14}{:>14}{:>12}",
            stats::ms(idle),
            stats::ms(loaded),
            format!("{ratio:.2}x")
        );
        ratio
    };
    println!(
        "{:<28}{:>14}{:>14}{:>12}",
        "", "A idle", "A loaded", "ratio"
    );
    println!(
        "{:<28}{:>14}{:>14}",
        "B accepted / sent",
        format!("{} / {}", idle.b.accepted, idle.b.sent),
        format!("{} / {}", loaded.b.accepted, loaded.b.sent)
    );
    let ratios = [
        line(
            "B ingest p50",
            idle.ingest.percentile(50.0),
            loaded.ingest.percentile(50.0),
        ),
        line(
            "B ingest p99",
            idle.ingest.percentile(99.0),
            loaded.ingest.percentile(99.0),
        ),
        line(
            "B delivery p50",
            idle.delivery.percentile(50.0),
            loaded.delivery.percentile(50.0),
        ),
        line(
            "B delivery p99",
            idle.delivery.percentile(99.0),
            loaded.delivery.percentile(99.0),
        ),
    ];
    line("B delivery max", idle.delivery.max(), loaded.delivery.max());
    println!(
        "{:<28}{:>14}{:>14}",
        "A accepted / sent",
        "-",
        format!("{} / {}", a.accepted, a.sent)
    );
    println!(
        "A's sink at the end: {a_queue:.0} events queued, {a_delivered:.0} delivered (its worker is stuck on the first)"
    );
    println!("server log: {log}");
    for l in first_problems {
        println!("  {l}");
    }

    for (name, phase) in [("idle", &idle), ("loaded", &loaded)] {
        if phase.b.refused_total() > 0 {
            problems.add(
                "isolation",
                format!(
                    "B ({name}): {} answers were not 200 accepted: {}",
                    phase.b.refused_total(),
                    phase.b.refused_summary()
                ),
            );
        }
        if phase.undelivered > 0 {
            problems.add(
                "isolation",
                format!(
                    "B ({name}): {} accepted events never reached B's file within {DELIVERY_DEADLINE:?}",
                    phase.undelivered
                ),
            );
        }
    }
    if a.refused_total() > 0 {
        problems.add(
            "isolation",
            format!(
                "A: {} answers were not 200 accepted: {}",
                a.refused_total(),
                a.refused_summary()
            ),
        );
    }
    let labels = ["ingest p50", "ingest p99", "delivery p50", "delivery p99"];
    for (label, ratio) in labels.iter().zip(ratios) {
        if ratio > ISOLATION_FACTOR {
            problems.add(
                "isolation",
                format!("B's {label} is {ratio:.1}x its idle value while A's sink is stuck"),
            );
        }
    }
    Ok(())
}

/// Waits until B's accepted events are all in its file (or the deadline), then measures.
async fn settle(b: load::Report, watch: &SinkWatch) -> Phase {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while b.accepted_at.iter().any(|(id, _)| watch.seen(id).is_none()) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut delivery = Vec::new();
    let mut undelivered = 0;
    for (id, answered) in &b.accepted_at {
        match watch.seen(id) {
            // The line may be written before the answer reaches the client: that counts as 0.
            Some(seen) => delivery.push(seen.saturating_duration_since(*answered)),
            None => undelivered += 1,
        }
    }
    Phase {
        ingest: Distribution::new(b.latencies.clone()),
        delivery: Distribution::new(delivery),
        undelivered,
        b,
    }
}

/// Accepts connections and holds them open without ever reading or answering.
async fn never_answer(listener: TcpListener) {
    let mut held = Vec::new();
    while let Ok((stream, _)) = listener.accept().await {
        held.push(stream);
    }
}

/// Stops a background task when the scenario ends, however it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
