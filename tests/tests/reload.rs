//! Live reload: SIGHUP and `switchyard reload` apply a valid configuration without dropping a
//! request or a queued event, refuse an invalid one with every problem and keep the running
//! one, and keep a removed sink's queue as an orphan until the sink returns.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_e2e::*;

const TOKEN: &str = "reload-admin-token-e2e";
const SECRET: &str = "reload-secret-for-e2e";
const WITHIN: Duration = Duration::from_secs(30);

fn acme() -> Workspace {
    Workspace::new("acme")
        .vendor(Vendor::new("watsi", &[SECRET]))
        .file_sink("events")
        .route(Route::new("*", &["events"]))
}

fn reload_cli(server: &Server, dir: &TestDir) -> Run {
    run(switchyard_command([
        "reload",
        "--config",
        &dir.path().join("routes.yaml").to_string_lossy(),
        "--url",
        &server.admin_url(""),
        "--token",
        TOKEN,
    ]))
}

/// acme with its file sink plus `crm`, an http sink whose receiver fails every request.
fn serve_with_failing_crm() -> (Receiver, Config, TestDir, Server) {
    let receiver = Receiver::start(Mode::Fail(503));
    let with_crm = Config::new().admin_token(TOKEN).workspace(
        acme()
            .http_sink("crm", HttpSink::new(receiver.url()))
            .route(Route::new("*", &["crm"])),
    );
    let dir = TestDir::new();
    let server = dir.serve(&with_crm);
    (receiver, with_crm, dir, server)
}

/// `/admin/queues`' entry for acme's `crm` sink (null when it is not listed).
fn crm_queue(server: &Server) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let queues = server
        .operator_request("GET", "/admin/queues", &[("Authorization", &auth)], None)
        .json();
    queues["sinks"]
        .as_array()
        .expect("sinks")
        .iter()
        .find(|s| s["workspace"] == "acme" && s["sink"] == "crm")
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn reloads_under_load_lose_nothing_refuse_bad_files_and_add_workspaces() {
    let dir = TestDir::new();
    let config = Config::new().admin_token(TOKEN).workspace(acme());
    let server = Arc::new(dir.serve(&config));

    // A steady stream of deliveries to acme for the whole test: every one must be accepted.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let (server, stop, accepted) = (server.clone(), stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = format!(r#"{{"id":"evt_load_{n}","type":"message.received"}}"#);
                let id = server
                    .deliver("acme", &WATSI, SECRET, &body, &[])
                    .expect_accepted();
                accepted.lock().unwrap().push(id);
                n += 1;
            }
        })
    };
    let beta_body = r#"{"id":"evt_beta_1","type":"message.received"}"#;
    server
        .deliver("beta", &WATSI, SECRET, beta_body, &[])
        .expect_error(404, "unknown_workspace");

    // An invalid file is refused with its problems; the running configuration stays.
    dir.write(
        "routes.yaml",
        config
            .render(&dir)
            .replace("workspaces:", "colour: red\nworkspaces:"),
    );
    let refused = reload_cli(&server, &dir);
    assert!(!refused.status.success(), "a bad file must be refused");
    assert!(
        refused.stdout.contains("colour") || refused.stderr.contains("colour"),
        "the refusal names the key:\n{}\n{}",
        refused.stdout,
        refused.stderr
    );
    server
        .deliver("beta", &WATSI, SECRET, beta_body, &[])
        .expect_error(404, "unknown_workspace");

    // A valid file adding a workspace, by SIGHUP.
    let two = Config::new()
        .admin_token(TOKEN)
        .workspace(acme())
        .workspace(
            Workspace::new("beta")
                .vendor(Vendor::new("watsi", &[SECRET]))
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        );
    dir.write_config(&two);
    server.signal("HUP");
    let deadline = Instant::now() + WITHIN;
    let beta_id = loop {
        let reply = server.deliver("beta", &WATSI, SECRET, beta_body, &[]);
        if reply.status == 200 {
            break reply.expect_accepted();
        }
        assert!(
            Instant::now() < deadline,
            "beta never appeared: {}",
            reply.body
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    dir.sink("beta", "events").wait_for(&beta_id);

    // And by the CLI, which says what changed: nothing, this time.
    let again = reload_cli(&server, &dir);
    again.expect_success("switchyard reload");
    let answer: Value = serde_json::from_str(&again.stdout).expect("JSON");
    assert_eq!(answer["workspaces"], 2);
    assert_eq!(answer["started"], json!([]));
    assert_eq!(answer["stopped"], json!([]));

    // One more reload while the load runs, then let it go on a little.
    server.signal("HUP");
    let deadline = Instant::now() + WITHIN;
    while accepted.lock().unwrap().len() < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    load.join()
        .expect("every delivery during the reloads was accepted");
    let ids = accepted.lock().unwrap().clone();
    assert!(ids.len() >= 200, "the load ran: {} deliveries", ids.len());
    let landed = dir.sink("acme", "events").wait_for_count(ids.len());
    let landed: Vec<&str> = landed.iter().filter_map(|e| e["id"].as_str()).collect();
    for id in &ids {
        assert!(
            landed.contains(&id.as_str()),
            "{id} was accepted but not delivered"
        );
    }
}

#[test]
fn a_removed_sink_keeps_its_queue_as_an_orphan_until_it_returns() {
    let (receiver, with_crm, dir, server) = serve_with_failing_crm();
    let ids: Vec<String> = (0..5)
        .map(|n| {
            let body = format!(r#"{{"id":"evt_orphan_{n}","type":"message.received"}}"#);
            server
                .deliver("acme", &WATSI, SECRET, &body, &[])
                .expect_accepted()
        })
        .collect();
    let crm = |server: &Server| crm_queue(server);
    assert_eq!(crm(&server)["queued"], 5);

    dir.write_config(&Config::new().admin_token(TOKEN).workspace(acme()));
    let removed = reload_cli(&server, &dir);
    removed.expect_success("reload without crm");
    let answer: Value = serde_json::from_str(&removed.stdout).expect("JSON");
    assert_eq!(answer["stopped"], json!(["acme/crm"]));
    let orphan = crm(&server);
    assert_eq!(orphan["orphaned"], true, "{orphan}");
    assert_eq!(orphan["queued"], 5, "{orphan}");

    receiver.set_mode(Mode::Accept);
    dir.write_config(&with_crm);
    reload_cli(&server, &dir).expect_success("reload with crm again");
    receiver.wait_for_delivered(&ids, WITHIN);
    assert_eq!(crm(&server)["orphaned"], false);
}

#[test]
fn an_orphaned_queue_can_be_dropped_a_running_one_cannot_and_sinks_show_latency_and_age() {
    let (_receiver, _, dir, server) = serve_with_failing_crm();
    for n in 0..3 {
        let body = format!(r#"{{"id":"evt_drop_{n}","type":"message.received"}}"#);
        server
            .deliver("acme", &WATSI, SECRET, &body, &[])
            .expect_accepted();
    }
    dir.sink("acme", "events").wait_for_count(3);
    let auth = format!("Bearer {TOKEN}");
    let operator = |method: &str, path: &str| {
        server.operator_request(method, path, &[("Authorization", &auth)], None)
    };
    // A line is in the file before its batch counts as delivered (after the file's sync).
    let delivered = r#"switchyard_sink_delivery_seconds_count{workspace="acme",sink="events"} 3"#;
    let deadline = Instant::now() + WITHIN;
    let metrics = loop {
        let metrics = server.operator_get("/metrics").body;
        if metrics.contains(delivered) || Instant::now() >= deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(metrics.contains(delivered), "{metrics}");
    assert!(
        metrics.contains(r#"switchyard_sink_oldest_queued_seconds{workspace="acme",sink="crm"}"#),
        "{metrics}"
    );
    assert_eq!(operator("DELETE", "/admin/queues/acme/crm").status, 409);

    dir.write_config(&Config::new().admin_token(TOKEN).workspace(acme()));
    reload_cli(&server, &dir).expect_success("reload without crm");
    let dropped = operator("DELETE", "/admin/queues/acme/crm");
    assert_eq!(dropped.status, 200, "{}", dropped.body);
    assert_eq!(dropped.json()["dropped"], 3);
    // Emptied, with no dead letters, it is gone: from the queues and from the metrics.
    assert_eq!(crm_queue(&server), Value::Null);
    let metrics = server.operator_get("/metrics").body;
    for gauge in ["queue_depth", "dead_letters", "oldest_queued_seconds"] {
        let series = format!(r#"switchyard_sink_{gauge}{{workspace="acme",sink="crm"}}"#);
        assert!(!metrics.contains(&series), "{metrics}");
    }
}

#[test]
fn a_request_in_flight_during_a_reload_finishes_on_the_configuration_it_started_with() {
    const NEW_SECRET: &str = "reload-secret-after-rotation";
    let dir = TestDir::new();
    let config = Config::new().admin_token(TOKEN).workspace(acme());
    let server = dir.serve(&config);
    let body = r#"{"id":"evt_in_flight","type":"message.received"}"#;

    // A delivery signed with the secret of today's configuration, its body held back: the
    // `100 Continue` says the server has admitted the head and is reading the body.
    let signature = WATSI.signature(SECRET, body.as_bytes());
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n{}: {signature}\r\n\r\n",
        hook("acme", "watsi"),
        body.len(),
        WATSI.header,
    );
    let mut connection = server.connect();
    connection.send(head.as_bytes()).expect("send the head");
    connection
        .expect_continue(WITHIN)
        .unwrap_or_else(|got| panic!("no 100 Continue to a signed head: {got}"));

    // The secret is rotated while the body is in flight.
    let rotated = Config::new().admin_token(TOKEN).workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[NEW_SECRET]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    );
    dir.write_config(&rotated);
    reload_cli(&server, &dir).expect_success("reload with the rotated secret");

    // The request began under the old secret and is verified with it.
    connection.send(body.as_bytes()).expect("send the body");
    let id = match connection.read_reply(WITHIN) {
        Received::Reply(reply) => reply.expect_accepted(),
        other => panic!("no answer to the delivery in flight: {other:?}"),
    };
    dir.sink("acme", "events").wait_for(&id);

    // Requests that begin after the reload use the new secret.
    let after = r#"{"id":"evt_after_rotation","type":"message.received"}"#;
    server
        .deliver("acme", &WATSI, SECRET, after, &[])
        .expect_error(401, "signature_mismatch");
    server
        .deliver("acme", &WATSI, NEW_SECRET, after, &[])
        .expect_accepted();
}

#[test]
fn twenty_reloads_during_ordered_delivery_to_a_slow_receiver_deliver_every_event_once_in_order() {
    const EVENTS: usize = 60;
    const RELOADS: usize = 20;
    // Slow enough that a delivery is almost always in flight when a reload lands.
    let receiver = Receiver::start(Mode::Slow(Duration::from_millis(100)));
    // Each reload changes the sink (its timeout), so its worker is replaced every time.
    let with_timeout = |seconds: usize| {
        Config::new().admin_token(TOKEN).workspace(
            acme()
                .http_sink(
                    "crm",
                    HttpSink::new(receiver.url())
                        .ordered()
                        .timeout(&format!("{seconds}s")),
                )
                .route(Route::new("*", &["crm"])),
        )
    };
    let dir = TestDir::new();
    let server = dir.serve(&with_timeout(5));
    let ids: Vec<String> = (0..EVENTS)
        .map(|n| {
            let body = format!(r#"{{"id":"evt_ordered_{n}","type":"message.received"}}"#);
            server
                .deliver("acme", &WATSI, SECRET, &body, &[])
                .expect_accepted()
        })
        .collect();

    for reload in 0..RELOADS {
        // Each reload lands in the middle of the stream: two more deliveries since the last.
        receiver.wait_until("deliveries between reloads", WITHIN, |received| {
            received.len() >= 2 * (reload + 1)
        });
        dir.write_config(&with_timeout(6 + reload));
        let reloaded = reload_cli(&server, &dir);
        reloaded.expect_success("reload with the sink changed");
        let answer: Value = serde_json::from_str(&reloaded.stdout).expect("JSON");
        assert_eq!(answer["started"], json!(["acme/crm"]), "{answer}");
        assert_eq!(answer["stopped"], json!(["acme/crm"]), "{answer}");
    }

    receiver.wait_for_delivered(&ids, WITHIN);
    // Every event exactly once and in accept order: the full list of requests received.
    let received: Vec<String> = receiver
        .received()
        .iter()
        .map(SinkRequest::event_id)
        .collect();
    assert_eq!(received, ids, "deliveries in order, none repeated");
}

/// Whether the process holds SIGHUP blocked in its main thread (`SigBlk` in /proc).
fn holds_sighup(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigBlk:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & 1 != 0)
}

#[test]
fn a_sighup_during_start_up_does_not_end_the_server_and_reloads_once_it_is_up() {
    let dir = TestDir::new();
    let path = dir.write_config(&Config::new().admin_token(TOKEN).workspace(acme()));
    let (ready, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut hangups = None;
    let server = Server::start_and(&path, |pid| {
        let (ready, sent) = (ready.clone(), sent.clone());
        hangups = Some(std::thread::spawn(move || {
            // From the first instant the process holds SIGHUP (the top of main; before that
            // the dynamic loader runs, which no program can guard), until /readyz answers.
            while !holds_sighup(pid) && !ready.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            while !ready.load(Ordering::Relaxed) {
                let _ = std::process::Command::new(tool("kill"))
                    .args(["-s", "HUP", &pid.to_string()])
                    .status();
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    });
    ready.store(true, Ordering::Relaxed);
    hangups
        .expect("spawned")
        .join()
        .expect("the signalling thread");
    assert!(
        sent.load(Ordering::Relaxed) > 0,
        "no SIGHUP was sent during start-up: the process never held SIGHUP before /readyz"
    );
    // The held SIGHUP was not lost: once the handler runs it reloads.
    server.wait_for_log("SIGHUP received; reloading", 1, WITHIN);
    server.wait_for_log("configuration reloaded", 1, WITHIN);
    let body = r#"{"id":"evt_after_early_hangup","type":"message.received"}"#;
    let id = server
        .deliver("acme", &WATSI, SECRET, body, &[])
        .expect_accepted();
    dir.sink("acme", "events").wait_for(&id);
}
