//! `quota`: workspace A is limited to a rate (`limits: { rate, burst }`) and flooded far above
//! it over many connections; workspace B sends at a steady rate. B's achieved ingest rate while
//! A floods should stay within 10 % of B's rate alone: one tenant's flood never starves
//! another's ingest.

use std::sync::Arc;
use std::time::Duration;

use crate::load::{self, Poster, Report, Spec};
use crate::payload;
use crate::server::{self, Server, Site};
use crate::stats::{ms, Distribution};
use crate::{machine, BenchResult, Env, Problems};

const SECRET_A: &str = "bench-a-watsi-secret";
const SECRET_B: &str = "bench-b-watsi-secret";
/// B is sent to this long, unmeasured, before the first phase.
const WARM_UP: Duration = Duration::from_secs(1);
/// B's rate with A flooding over B's rate alone, below which B is reported as starved.
const TARGET: f64 = 0.90;

struct Params {
    phase: Duration,
    a_limit: u32,
    a_connections: usize,
    b_rate: f64,
    b_connections: usize,
}

impl Params {
    fn new(quick: bool) -> Params {
        Params {
            phase: Duration::from_secs(if quick { 3 } else { 8 }),
            a_limit: 200,
            a_connections: 16,
            b_rate: 400.0,
            b_connections: 4,
        }
    }
}

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let p = Params::new(env.quick);
    println!("== quota: workspace A floods above its rate; workspace B's achieved ingest rate ==");
    println!(
        "settings: after a {} s unmeasured warm-up of B, two phases of {} s; B sends at {:.0} events/s over {} keep-alive connections (1 KB signed watsi events); phase 2 adds A, limited to {}/s (burst {}), flooded in a closed loop over {} connections (a 429 closes its connection: the body was never read); file sinks; server RUST_LOG={}; {} cores",
        WARM_UP.as_secs(),
        p.phase.as_secs(),
        p.b_rate,
        p.b_connections,
        p.a_limit,
        p.a_limit,
        p.a_connections,
        server::LOG_LEVEL,
        machine::cores()
    );
    let site = Site::new()?;
    let yaml = format!(
        "{}workspaces:\n  a:\n    limits: {{ rate: {limit}/s, burst: {limit} }}\n    vendors:\n      watsi:\n        secrets: [\"{SECRET_A}\"]\n    sinks:\n      events: {{ type: file, path: {} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [events]\n  b:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET_B}\"]\n    sinks:\n      events: {{ type: file, path: {} }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [events]\n",
        site.server_section(env, &[]),
        server::quote(&site.sink_path("a", "events")),
        server::quote(&site.sink_path("b", "events")),
        limit = p.a_limit,
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let a_poster = Arc::new(Poster::new("a", payload::watsi(), SECRET_A));
    let b_poster = Arc::new(Poster::new("b", payload::watsi(), SECRET_B));
    let steady = Spec::rate(p.b_connections, p.phase, p.b_rate);
    let warm_up = Spec {
        duration: WARM_UP,
        ..steady
    };
    load::run(server.addr(), b_poster.clone(), warm_up, Arc::default()).await;

    let alone = load::run(server.addr(), b_poster.clone(), steady, Arc::default()).await;
    let flood = Spec::closed(p.a_connections, p.phase);
    let (a, flooded) = tokio::join!(
        load::run(server.addr(), a_poster, flood, Arc::default()),
        load::run(server.addr(), b_poster, steady, Arc::default()),
    );
    let metrics = server.metrics().await?;
    let limited = metrics.sum(
        "switchyard_hook_refusals_total",
        &["workspace=\"a\"", "reason=\"rate_limited\""],
    );
    let (log, first_problems) = server.log_summary();
    drop(server);

    let rate = |r: &Report| r.accepted as f64 / r.elapsed.as_secs_f64().max(1e-9);
    println!();
    println!(
        "| phase | B accepted/s | B p50 | B p99 | B not taken | A accepted/s | A answered 429 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, b, a) in [
        ("B alone", &alone, None),
        ("A flooding", &flooded, Some(&a)),
    ] {
        let latency = Distribution::new(b.latencies.clone());
        let (a_rate, a_429) = match a {
            Some(a) => (format!("{:.0}", rate(a)), too_many(a).to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {name} | {:.0} | {} | {} | {} | {a_rate} | {a_429} |",
            rate(b),
            ms(latency.percentile(50.0)),
            ms(latency.percentile(99.0)),
            b.refused_total(),
        );
    }
    let kept = rate(&flooded) / rate(&alone).max(1e-9);
    println!();
    println!(
        "B's rate with A flooding / alone: {:.1} % (target {:.0} %)",
        kept * 100.0,
        TARGET * 100.0
    );
    println!(
        "A: {} sent, {} accepted, {} answered 429 ({limited} counted in switchyard_hook_refusals_total{{reason=\"rate_limited\"}}); other: {}",
        a.sent,
        a.accepted,
        too_many(&a),
        other_refusals(&a)
    );
    println!("server log: {log}");
    for line in first_problems {
        println!("  {line}");
    }
    if kept < TARGET {
        problems.add(
            "quota",
            format!(
                "B kept {:.1} % of its rate while A flooded (target {:.0} %)",
                kept * 100.0,
                TARGET * 100.0
            ),
        );
    }
    if flooded.refused_total() > 0 {
        problems.add(
            "quota",
            format!(
                "B had answers other than accepted while A flooded: {}",
                flooded.refused_summary()
            ),
        );
    }
    // The bucket starts full: at most a burst plus the rate over the phase, with a second's
    // slack for the time the load takes to stop.
    let allowed = u64::from(p.a_limit) * (p.phase.as_secs() + 2);
    if a.accepted > allowed {
        problems.add(
            "quota",
            format!(
                "A had {} accepted in {} s, more than its quota allows ({allowed})",
                a.accepted,
                p.phase.as_secs()
            ),
        );
    }
    if too_many(&a) == 0 {
        problems.add("quota", "A was never answered 429".to_owned());
    }
    Ok(())
}

/// Answers 429 `rate_limited`.
fn too_many(report: &Report) -> u64 {
    report.refused.get("429 rate_limited").copied().unwrap_or(0)
}

/// Everything else that was not accepted: connections closed after a 429 show up here when the
/// next request finds them closed.
fn other_refusals(report: &Report) -> String {
    let other: Vec<String> = (report.refused.iter())
        .filter(|(kind, _)| kind.as_str() != "429 rate_limited")
        .map(|(kind, n)| format!("{n} x {kind}"))
        .collect();
    if other.is_empty() {
        "none".to_owned()
    } else {
        other.join(", ")
    }
}
