//! Replaying a window (`POST /admin/workspaces/{ws}/sinks/{sink}/replay`, `switchyard
//! replay`): every event accepted in the window that went to the sink is delivered to it once
//! more, delivered before or not; other sinks and events outside the window are untouched;
//! and a replay answered survives a restart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchyard_e2e::*;

const TOKEN: &str = "e2e-admin-token-0123";
const SECRET: &str = "secret-one-for-e2e";
const WITHIN: Duration = Duration::from_secs(30);

fn admin(server: &Server, method: &str, path: &str) -> Reply {
    server.operator_request(
        method,
        path,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    )
}

fn accepted_ms(id: &str) -> u64 {
    ulid::Ulid::from_string(id).expect("a ULID").timestamp_ms()
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// How many times each id was delivered (answered 2xx).
fn counts(receiver: &Receiver) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in receiver.delivered() {
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// Waits until acme's sink has nothing queued or in flight.
fn wait_settled(server: &Server, sink: &str) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let queues = admin(server, "GET", "/admin/queues").json();
        let settled = queues["sinks"].as_array().is_some_and(|sinks| {
            sinks
                .iter()
                .filter(|s| s["sink"] == sink)
                .all(|s| s["queued"] == 0 && s["in_flight"] == 0)
        });
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sink} never settled: {queues}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_replayed_window_reaches_exactly_that_sink_once_more_even_after_a_restart() {
    let crm = Receiver::start(Mode::Accept);
    let audit = Receiver::start(Mode::Accept);
    let config = Config::new().admin_token(TOKEN).workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[SECRET]))
            .http_sink("crm", HttpSink::new(crm.url()).max_backoff("50ms"))
            .http_sink("audit", HttpSink::new(audit.url()))
            .route(Route::new("*", &["crm", "audit"])),
    );
    let dir = TestDir::new();
    let mut server = dir.serve(&config);
    let ids: Vec<String> = (0..9)
        .map(|n| {
            let body = format!(
                r#"{{"id":"evt_{n}","type":"{}","data":{{"text":"event {n}"}}}}"#,
                if n % 3 == 2 {
                    "message.status"
                } else {
                    "message.received"
                }
            );
            server
                .deliver("acme", &WATSI, SECRET, &body, &[])
                .expect_accepted()
        })
        .collect();
    crm.wait_for_delivered(&ids, WITHIN);
    audit.wait_for_delivered(&ids, WITHIN);

    // The window: from the third event's acceptance to the seventh's, received messages only.
    let (since, until) = (accepted_ms(&ids[2]), accepted_ms(&ids[6]));
    let in_window: Vec<&String> = (ids.iter().enumerate())
        .filter(|(n, id)| n % 3 != 2 && (since..=until).contains(&accepted_ms(id)))
        .map(|(_, id)| id)
        .collect();
    assert!(in_window.len() >= 3, "{in_window:?}");

    // The sink is down while the replay is answered and the server restarts: what brings the
    // events to it afterwards is the replay as stored.
    crm.set_mode(Mode::Fail(503));
    let path = format!(
        "/admin/workspaces/acme/sinks/crm/replay?since={}&until={}&type=message.received",
        rfc3339(since),
        rfc3339(until)
    );
    let answer = admin(&server, "POST", &path);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json(), json!({"queued": in_window.len(), "gone": 0}));
    // Stopped cleanly, so that the events delivered before are not repeated: only the replay
    // (kept in the store, no longer in memory) brings anything to the sink again.
    server.signal("TERM");
    assert!(
        server.wait_exit(WITHIN).is_some(),
        "the server did not stop"
    );
    server.restart();
    crm.set_mode(Mode::Accept);

    let deadline = Instant::now() + WITHIN;
    while in_window.iter().any(|id| counts(&crm).get(*id) < Some(&2)) {
        assert!(
            Instant::now() < deadline,
            "not delivered again: {:?}\n{}",
            counts(&crm),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_settled(&server, "crm");
    wait_settled(&server, "audit");
    let crm_counts = counts(&crm);
    for id in &ids {
        let twice = in_window.contains(&id);
        assert_eq!(
            crm_counts.get(id),
            Some(&(1 + usize::from(twice))),
            "crm, {id}: {crm_counts:?}"
        );
    }
    let audit_counts = counts(&audit);
    assert!(
        ids.iter().all(|id| audit_counts.get(id) == Some(&1)),
        "audit: {audit_counts:?}"
    );

    // A window is required, and an unknown sink is named.
    admin(
        &server,
        "POST",
        "/admin/workspaces/acme/sinks/crm/replay?since=2026-01-01T00:00:00Z",
    )
    .expect_error(400, "invalid_query");
    admin(&server, "POST", &path.replace("/crm/", "/nowhere/")).expect_error(404, "unknown_sink");
}
