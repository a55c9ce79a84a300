//! A store that cannot take writes: the server answers 503 with Retry-After (so the vendor
//! retries), reports not ready, keeps serving, and loses nothing it had already accepted.

use std::time::Duration;

use switchyard_e2e::*;

#[test]
fn a_store_that_cannot_take_writes_answers_503_and_keeps_what_it_accepted() {
    let dir = TestDir::new();
    // An http sink on a receiver in this process: a file sink would be held to the same file
    // size limit as the store, and would reach it first (it holds every event uncompressed).
    let receiver = Receiver::start(Mode::Accept);
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
            .http_sink("events", HttpSink::new(receiver.url()))
            .route(Route::new("*", &["events"])),
    );
    // The store's files cannot grow past this (512 KiB with dash's 512-byte blocks, 1 MiB
    // with bash's), like a disk that fills up.
    let server = dir.serve_with_file_size_limit(&config, 1024);
    let padding = "x".repeat(800);
    let mut accepted = Vec::new();
    let mut refused = None;
    for n in 0..10_000 {
        let body = format!(
            r#"{{"id":"evt_{n}","type":"message.received","data":{{"text":"{padding}"}}}}"#
        );
        let reply = server.deliver("acme", &WATSI, "secret-one-for-e2e", &body, &[]);
        match reply.status {
            200 => accepted.push(reply.expect_accepted()),
            503 => {
                refused = Some(reply);
                break;
            }
            _ => reply.fail("expected 200 until the store is full, then 503"),
        }
    }
    let refused = refused.expect("the store never filled up");
    assert!(
        !accepted.is_empty(),
        "nothing was accepted before the store filled up"
    );
    refused.expect_error(503, "store_unavailable");
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(server.operator_get("/readyz").status, 503);
    assert_eq!(server.get("/healthz").status, 200);

    let mut landed = receiver.wait_for_delivered(&accepted, Duration::from_secs(30));
    landed.sort();
    landed.dedup();
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(landed, expected, "every accepted event delivered");
}

fn admin_get(server: &Server, path: &str) -> Value {
    let reply = server.operator_request(
        "GET",
        path,
        &[("Authorization", "Bearer store-admin-token-e2e")],
        None,
    );
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    serde_json::from_str(&reply.body).expect("JSON")
}

fn sink_counts(server: &Server, sink: &str) -> (u64, u64) {
    let queues = admin_get(server, "/admin/queues");
    let entry = queues["sinks"]
        .as_array()
        .expect("sinks")
        .iter()
        .find(|s| s["sink"] == sink)
        .cloned()
        .expect("the sink is listed");
    (
        entry["queued"].as_u64().expect("queued"),
        entry["dead"].as_u64().expect("dead"),
    )
}

#[test]
fn queue_and_dead_letter_counts_are_rebuilt_after_a_sigkill_and_restart() {
    let down = Receiver::start(Mode::Fail(503));
    let refuses = Receiver::start(Mode::Fail(422));
    let config = Config::new()
        .admin_token("store-admin-token-e2e")
        .workspace(
            Workspace::new("acme")
                .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
                .http_sink("down", HttpSink::new(down.url()))
                .http_sink("refuses", HttpSink::new(refuses.url()))
                .route(Route::new("*", &["down", "refuses"])),
        );
    let dir = TestDir::new();
    let mut server = dir.serve(&config);
    for n in 0..7 {
        let body = format!(r#"{{"id":"evt_{n}","type":"message.received"}}"#);
        server
            .deliver("acme", &WATSI, "secret-one-for-e2e", &body, &[])
            .expect_accepted();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sink_counts(&server, "refuses") != (0, 7) {
        assert!(
            std::time::Instant::now() < deadline,
            "the 422s never became dead letters"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sink_counts(&server, "down"), (7, 0));

    server.kill();
    server.restart();
    assert_eq!(
        sink_counts(&server, "down"),
        (7, 0),
        "queued, counted again at start-up"
    );
    assert_eq!(
        sink_counts(&server, "refuses"),
        (0, 7),
        "dead letters, counted again"
    );
}

/// Bytes in the data directory's write-ahead log.
fn log_bytes(dir: &TestDir) -> u64 {
    std::fs::read_dir(dir.data_dir().join("wal"))
        .expect("the log directory")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn retention_bounds_the_store_events_leave_and_their_log_segments_are_retired() {
    let config = Config::new()
        .admin_token("store-admin-token-e2e")
        .retention("2s")
        .workspace(
            Workspace::new("acme")
                .dedupe_window("1s")
                .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        );
    let dir = TestDir::new();
    let server = dir.serve(&config);
    let padding = "y".repeat(2000);
    let deliver = |tag: &str, n: usize| {
        let body = format!(
            r#"{{"id":"evt_{tag}_{n}","type":"message.received","data":{{"text":"{padding}{n}"}}}}"#
        );
        server
            .deliver("acme", &WATSI, "secret-one-for-e2e", &body, &[])
            .expect_accepted()
    };
    let first: Vec<String> = (0..300).map(|n| deliver("old", n)).collect();
    dir.sink("acme", "events").wait_for_count(first.len());
    let full = log_bytes(&dir);
    assert!(full > 0);
    let lookup = |id: &str| {
        server
            .operator_request(
                "GET",
                &format!("/admin/events/{id}"),
                &[("Authorization", "Bearer store-admin-token-e2e")],
                None,
            )
            .status
    };
    // Within retention an event is found (the newest: on a busy machine the 300 accepts can
    // take longer than the 2 s retention, and the first ones may already be gone).
    let newest = first.last().expect("events");
    assert_eq!(lookup(newest), 200);

    // Past retention the events leave, and once a new segment has started the old ones are
    // retired: the log holds what retention allows, not everything that ever passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        deliver("new", n);
        n += 1;
        if lookup(&first[0]) == 404 && log_bytes(&dir) < full / 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not shrink past retention: {} log bytes (was {full}), old event lookup {}",
            log_bytes(&dir),
            lookup(&first[0])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A repeat of an old event after its window is new again, not a duplicate.
    let again =
        format!(r#"{{"id":"evt_old_0","type":"message.received","data":{{"text":"{padding}0"}}}}"#);
    let id = server
        .deliver("acme", &WATSI, "secret-one-for-e2e", &again, &[])
        .expect_accepted();
    assert_ne!(id, first[0]);
}

#[test]
fn a_backup_taken_under_load_restores_with_nothing_missing() {
    let receiver = Receiver::start(Mode::Fail(503));
    let config = Config::new()
        .admin_token("store-admin-token-e2e")
        .workspace(
            Workspace::new("acme")
                .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
                .http_sink("crm", HttpSink::new(receiver.url()))
                .route(Route::new("*", &["crm"])),
        );
    let dir = TestDir::new();
    let server = std::sync::Arc::new(dir.serve(&config));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let load = {
        let (server, stop, accepted) = (server.clone(), stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!(r#"{{"id":"evt_backup_{n}","type":"message.received"}}"#);
                let id = server
                    .deliver("acme", &WATSI, "secret-one-for-e2e", &body, &[])
                    .expect_accepted();
                accepted.lock().unwrap().push(id);
                n += 1;
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while accepted.lock().unwrap().len() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Everything accepted before the backup starts must be in it.
    let before: Vec<String> = accepted.lock().unwrap().clone();
    let copy = dir.path().join("backup");
    run(switchyard_command([
        "backup",
        "--to",
        &copy.to_string_lossy(),
        "--url",
        &server.admin_url(""),
        "--token",
        "store-admin-token-e2e",
    ]))
    .expect_success("switchyard backup");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().expect("the load ran");
    drop(server);

    // Restore: a server whose data directory is the copy delivers every one of them.
    let restored = TestDir::new();
    std::fs::rename(&copy, restored.data_dir()).expect("move the copy into place");
    receiver.set_mode(Mode::Accept);
    let _server = restored.serve(&config);
    receiver.wait_for_delivered(&before, Duration::from_secs(30));
}

/// The value of one sink's sample of a metric on `/metrics`.
fn sink_metric(server: &Server, name: &str, sink: &str) -> f64 {
    let page = server.operator_get("/metrics");
    let labels = format!(r#"{name}{{workspace="acme",sink="{sink}"}} "#);
    page.body
        .lines()
        .find_map(|line| line.strip_prefix(&labels))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} for {sink} is not on /metrics:\n{}", page.body))
}

#[test]
fn a_sigkill_with_cursors_mid_segment_resumes_exactly_and_a_slow_sink_never_shows_in_a_fast_one() {
    let fast = Receiver::start(Mode::Accept);
    let slow = Receiver::start(Mode::Fail(503));
    let config = Config::new()
        .admin_token("store-admin-token-e2e")
        .workspace(
            Workspace::new("acme")
                .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
                .http_sink("fast", HttpSink::new(fast.url()))
                .http_sink(
                    "slow",
                    HttpSink::new(slow.url())
                        .retry(&["1s"; 100])
                        .max_backoff("1s"),
                )
                .route(Route::new("*", &["fast", "slow"])),
        );
    let dir = TestDir::new();
    let mut server = dir.serve(&config);
    let deliver = |server: &Server, n: &str| {
        let body = format!(r#"{{"id":"evt_{n}","type":"message.received"}}"#);
        server
            .deliver("acme", &WATSI, "secret-one-for-e2e", &body, &[])
            .expect_accepted()
    };
    let mut accepted: Vec<String> = (0..200).map(|n| deliver(&server, &n.to_string())).collect();
    fast.wait_for_delivered(&accepted, Duration::from_secs(30));
    let wait_for_empty = |server: &Server, sink: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sink_counts(server, sink).0 != 0 {
            assert!(std::time::Instant::now() < deadline, "{sink} never emptied");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for_empty(&server, "fast");
    // The slow sink holds every segment; the fast one's figures are its own.
    assert_eq!(sink_counts(&server, "slow"), (200, 0));
    assert_eq!(
        sink_metric(&server, "switchyard_sink_oldest_queued_seconds", "fast"),
        0.0
    );
    assert_eq!(
        sink_metric(&server, "switchyard_sink_queue_depth", "fast"),
        0.0
    );

    // Once the fast queue shows empty its cursor is with the writer, so the frame of the
    // next accept carries it: after the kill, only that last event may come again.
    let last = deliver(&server, "last");
    accepted.push(last.clone());
    fast.wait_for_delivered(std::slice::from_ref(&last), Duration::from_secs(30));
    wait_for_empty(&server, "fast");
    // What the receiver had before the kill (a request a busy machine timed out and retried
    // counts here, not against the restart).
    let before = fast.delivered().len();
    server.kill();
    server.restart();
    slow.set_mode(Mode::Accept);
    slow.wait_for_delivered(&accepted, Duration::from_secs(60));
    wait_for_empty(&server, "fast");
    let received = fast.delivered();
    // Besides the last event, only an event that had failed at least once may come again: its
    // completion is a sled record (attempts removed), which a SIGKILL can lose, where a first
    // try's completion is only the cursor the next frame logged.
    let retried_before: Vec<&String> = (received[..before].iter())
        .filter(|id| {
            received[..before]
                .iter()
                .filter(|other| other == id)
                .count()
                > 1
        })
        .collect();
    let unexpected: Vec<&String> = (received[before..].iter())
        .filter(|id| **id != last && !retried_before.contains(id))
        .collect();
    assert!(
        unexpected.is_empty(),
        "deliveries repeated after the kill that were neither the last event nor retried before it: {unexpected:?} (all after the kill: {:?})",
        &received[before..]
    );
    let mut once = received.clone();
    once.sort();
    once.dedup();
    assert_eq!(
        once.len(),
        accepted.len(),
        "every event reached the fast sink"
    );
}
