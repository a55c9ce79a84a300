//! `search`: issue 22's targets for event search and the console. A million signed Watsi events
//! stored (one workspace, a file sink; one in a hundred also to an http sink that refuses it,
//! a dead letter), then `GET /admin/events` asked again and again on one keep-alive
//! connection: pages of 50 (the newest, by workspace and type glob, a time window in the
//! middle), and searches that match nothing, which walk the whole index (the worst case); then
//! each console view on the same store ([`crate::console`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use hyper::{Method, StatusCode};

use crate::client::Conn;
use crate::console;
use crate::load::{self, Poster, Spec};
use crate::payload;
use crate::server::{Server, Site};
use crate::stats::{ms, Distribution};
use crate::{BenchResult, Env, Problems};

const WORKSPACE: &str = "bench";
const SECRET: &str = "bench-watsi-secret";
const TOKEN: &str = "bench-admin-token-0123456789";
const CONNECTIONS: usize = 128;
/// The http sink every event of which is refused for good.
const DEAD_SINK: &str = "refused";
const LOAD_LIMIT: Duration = Duration::from_secs(40 * 60);
const DRAIN_LIMIT: Duration = Duration::from_secs(10 * 60);
/// Issue 22's target for a page of 50.
const PAGE_P99: Duration = Duration::from_millis(100);

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let events: u64 = if env.quick { 30_000 } else { 1_000_000 };
    let asks = if env.quick { 20 } else { 200 };
    // A whole-index walk is far slower: fewer of them, enough for the figure.
    let walks = if env.quick { 3 } else { 10 };
    println!("== search: pages of 50 over {events} stored events ==");
    println!(
        "settings: {events} unique signed Watsi events of {} B over {CONNECTIONS} connections into one workspace with a file sink, then each page asked {asks} times in a row (each whole-index search {walks} times) on one keep-alive connection to the operator listener; server defaults",
        crate::growth::BODY_BYTES
    );
    let site = Site::new()?;
    let file = site.sink_path(WORKSPACE, "audit");
    let refuser = console::refuser().await?;
    // Event ids end in a client's sequence number: one in a hundred ends in 00.
    let yaml = format!(
        "{}workspaces:\n  {WORKSPACE}:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      audit: {{ type: file, path: {} }}\n      {DEAD_SINK}: {{ type: http, url: \"http://{refuser}/events\" }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [audit]\n      - match: {{ type: \"*\", where: {{ vendor_event_id: {{ suffix: \"00\" }} }} }}\n        to: [{DEAD_SINK}]\n",
        site.server_section(env, &[&format!("admin_token: \"{TOKEN}\"")]),
        crate::server::quote(&file),
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let poster = Arc::new(Poster::new(
        WORKSPACE,
        payload::watsi_of(crate::growth::BODY_BYTES),
        SECRET,
    ));
    let started = now_ms();
    let spec = Spec::closed(CONNECTIONS, LOAD_LIMIT).events(events);
    let report = load::run(server.addr(), poster, spec, Arc::new(AtomicU64::new(0))).await;
    let ended = now_ms();
    println!(
        "stored: {} accepted in {:.1} s",
        report.accepted,
        report.elapsed.as_secs_f64()
    );
    let mut conn = Conn::connect(server.admin_addr()).await?;
    let middle = started + (ended - started) / 2;
    let window = format!("since={}&until={}", rfc3339(middle), rfc3339(middle + 1000));
    let searches: [(&str, String, bool); 5] = [
        ("the newest page", "limit=50".into(), true),
        (
            "by workspace and type glob",
            format!("workspace={WORKSPACE}&type=message.*&limit=50"),
            true,
        ),
        (
            "a one-second window mid-load",
            format!("{window}&limit=50"),
            true,
        ),
        (
            "q matching nothing (whole index)",
            "q=nobody&limit=50".into(),
            false,
        ),
        // The refusing sink holds dead letters; the file sink none: the whole index walked.
        (
            "status=dead at audit, none (whole index)",
            "status=dead&sink=audit&limit=50".into(),
            false,
        ),
    ];
    let mut opened = None;
    for (what, query, page) in searches {
        let path = format!("/admin/events?{query}");
        let n = if page { asks } else { walks };
        let mut times = Vec::with_capacity(n);
        let mut found = 0;
        for _ in 0..n {
            let asked = Instant::now();
            let (status, body) = conn.send(Method::GET, &path, &auth(), Bytes::new()).await?;
            times.push(asked.elapsed());
            if status != StatusCode::OK {
                return Err(format!("{path}: {status}: {}", String::from_utf8_lossy(&body)).into());
            }
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            found = answer["events"].as_array().map_or(0, Vec::len);
            // The console opens an event from the middle of the store.
            if opened.is_none() && query.starts_with("since=") {
                opened = answer["events"][0]["id"].as_str().map(str::to_owned);
            }
        }
        let d = Distribution::new(times);
        let (p50, p99) = (d.percentile(50.0), d.percentile(99.0));
        let target = if page {
            format!(" (target p99 < {})", ms(PAGE_P99))
        } else {
            String::new()
        };
        println!(
            "{what}: {found} found, p50 {}, p99 {}{target}",
            ms(p50),
            ms(p99)
        );
        if page && found == 50 && p99 >= PAGE_P99 {
            problems.add(
                "search",
                format!(
                    "{what}: p99 {} over {events} events (target < {})",
                    ms(p99),
                    ms(PAGE_P99)
                ),
            );
        }
        if page && found < 50 && report.accepted >= 50 {
            problems.add(
                "search",
                format!("{what}: {found} events found, a full page expected"),
            );
        }
    }
    let dead = dead_letters(&mut conn).await?;
    println!("console: {DEAD_SINK} holds {dead} dead letters");
    // Without them, the dead-letter view would be timed on an empty page.
    if dead == 0 {
        problems.add(
            "search",
            format!("{DEAD_SINK} holds no dead letter to show"),
        );
    }
    let event = opened.ok_or("the window search found no event to open")?;
    let on = console::Subjects {
        workspace: WORKSPACE,
        event: &event,
        dead_sink: DEAD_SINK,
    };
    console::run(server.admin_addr(), TOKEN, asks, on, problems).await?;
    server.stop().await;
    Ok(())
}

/// The dead sink's dead letters once its queue is empty (it drains behind the load).
async fn dead_letters(conn: &mut Conn) -> BenchResult<u64> {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        let (_, body) = (conn.send(Method::GET, "/admin/queues", &auth(), Bytes::new())).await?;
        let queues: serde_json::Value = serde_json::from_slice(&body)?;
        let sink = (queues["sinks"].as_array().into_iter().flatten())
            .find(|s| s["sink"] == DEAD_SINK)
            .ok_or("no dead sink in /admin/queues")?;
        if sink["queued"] == 0 && sink["in_flight"] == 0 {
            return Ok(sink["dead"].as_u64().unwrap_or(0));
        }
        if Instant::now() > deadline {
            return Err(format!("{DEAD_SINK} did not drain within {DRAIN_LIMIT:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn auth() -> [(HeaderName, HeaderValue); 1] {
    [(
        AUTHORIZATION,
        HeaderValue::from_static("Bearer bench-admin-token-0123456789"),
    )]
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
