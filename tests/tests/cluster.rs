//! Cluster mode: switchyard instances sharing NATS JetStream (real nats-server processes on
//! loopback, each with its own temporary store directory).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use switchyard_e2e::*;

const SECRET: &str = "cluster-secret-for-e2e";
const TOKEN: &str = "cluster-admin-token-e2e";

fn config(servers: &[String], replicas: usize, receiver: &Receiver) -> Config {
    Config::new()
        .admin_token(TOKEN)
        .nats_store(servers, replicas)
        .workspace(
            Workspace::new("acme")
                .vendor(Vendor::new("watsi", &[SECRET]))
                .http_sink("crm", HttpSink::new(receiver.url()))
                .route(Route::new("*", &["crm"])),
        )
}

fn body(tag: &str, n: usize) -> String {
    format!(r#"{{"id":"evt_{tag}_{n}","type":"message.received","data":{{"text":"hello {n}"}}}}"#)
}

/// Sends events tagged `tag` to `server` until `target` are accepted, the server cannot be
/// reached, or `within` has passed; returns the ids answered `accepted`. A 503 (NATS failing
/// over under it) is not an acknowledgement: nothing is owed for it.
fn keep_sending(server: &Server, tag: &str, target: usize, within: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + within;
    let mut accepted = Vec::new();
    let mut n = 0;
    while accepted.len() < target && std::time::Instant::now() < deadline {
        n += 1;
        match server.try_deliver("acme", &WATSI, SECRET, &body(tag, n)) {
            Ok(reply) if reply.status == 200 => accepted.push(reply.expect_accepted()),
            Ok(reply) if reply.status == 503 => {}
            Ok(reply) => reply.fail("expected accepted, or 503 while NATS fails over"),
            Err(_) => break,
        }
    }
    accepted
}

fn all_delivered(receiver: &Receiver, accepted: &[String], within: Duration) {
    let landed: HashSet<String> = receiver
        .wait_for_delivered(accepted, within)
        .into_iter()
        .collect();
    let missing: Vec<&String> = accepted.iter().filter(|id| !landed.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events never arrived: {missing:?}",
        missing.len(),
        accepted.len()
    );
}

#[test]
fn two_instances_share_dedupe_and_a_killed_one_loses_no_acknowledged_event() {
    let nats = NatsServer::start();
    let receiver = Receiver::start(Mode::Accept);
    let config = config(&[nats.url()], 1, &receiver);
    let (dir_a, dir_b) = (TestDir::new(), TestDir::new());
    let mut a = dir_a.serve(&config);
    let b = dir_b.serve(&config);

    // A vendor retry that lands on the other instance is a duplicate of the first.
    let shared = body("shared", 0);
    let first = a
        .deliver("acme", &WATSI, SECRET, &shared, &[])
        .expect_accepted();
    let again = b.deliver("acme", &WATSI, SECRET, &shared, &[]);
    assert_eq!(again.expect_ok("duplicate"), first);
    let third = a.deliver("acme", &WATSI, SECRET, &shared, &[]);
    assert_eq!(third.expect_ok("duplicate"), first);

    // Load on both; A is killed while it holds deliveries in flight.
    let accepted = Mutex::new(vec![first]);
    std::thread::scope(|scope| {
        let on_a = scope.spawn(|| keep_sending(&a, "a", 5000, Duration::from_secs(120)));
        let on_b = scope.spawn(|| keep_sending(&b, "b", 400, Duration::from_secs(120)));
        wait_until(Duration::from_secs(60), || {
            (receiver.delivered().len() >= 150).then_some(())
        });
        a.signal("KILL");
        accepted.lock().unwrap().extend(on_a.join().unwrap());
        accepted.lock().unwrap().extend(on_b.join().unwrap());
    });
    let accepted = accepted.into_inner().unwrap();
    assert!(
        accepted.len() > 200,
        "too little load to mean anything: {} accepted",
        accepted.len()
    );
    // What A held goes to B once A's lease (3 s) runs out.
    all_delivered(&receiver, &accepted, Duration::from_secs(60));
    assert!(a.wait_exit(Duration::from_secs(10)).is_some());
    let queues = b.operator_request(
        "GET",
        "/admin/queues",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    );
    assert_eq!(queues.status, 200, "{}", queues.body);
}

#[test]
fn copies_of_one_delivery_sent_at_once_are_stored_once() {
    let nats = NatsServer::start();
    let receiver = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let server = dir.serve(&config(&[nats.url()], 1, &receiver));
    // Sixteen copies at the same moment share the writer's batches (or race it across two):
    // one is accepted, every other names it, or is asked to retry while it is being stored.
    let copy = body("copy", 0);
    let barrier = std::sync::Barrier::new(16);
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    server.deliver("acme", &WATSI, SECRET, &copy, &[])
                })
            })
            .collect();
        senders.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let accepted: Vec<String> = replies
        .iter()
        .filter(|r| r.status == 200 && r.json()["status"] == "accepted")
        .map(Reply::expect_accepted)
        .collect();
    assert_eq!(accepted.len(), 1, "one copy accepted, not {accepted:?}");
    for reply in &replies {
        match reply.status {
            200 if reply.json()["status"] == "accepted" => {}
            200 => assert_eq!(reply.expect_ok("duplicate"), accepted[0]),
            503 => {
                reply.expect_error(503, "store_unavailable");
            }
            _ => reply.fail("expected accepted, duplicate, or 503 while the first is stored"),
        }
    }
    let again = server.deliver("acme", &WATSI, SECRET, &copy, &[]);
    assert_eq!(again.expect_ok("duplicate"), accepted[0]);
    all_delivered(&receiver, &accepted, Duration::from_secs(60));
}

#[test]
fn with_three_replicas_a_nats_node_killed_under_load_loses_no_acknowledged_event() {
    let mut cluster = NatsCluster::start(3);
    let receiver = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let server = dir.serve(&config(&cluster.urls(), 3, &receiver));
    let accepted = std::thread::scope(|scope| {
        // Accepting must go on once NATS has failed over: 400 accepted in all.
        let sender = scope.spawn(|| keep_sending(&server, "r3", 400, Duration::from_secs(120)));
        wait_until(Duration::from_secs(60), || {
            (receiver.delivered().len() >= 100).then_some(())
        });
        cluster.kill_node(1);
        sender.join().unwrap()
    });
    assert_eq!(
        accepted.len(),
        400,
        "acceptance did not resume after one of three NATS servers died"
    );
    all_delivered(&receiver, &accepted, Duration::from_secs(90));
}

#[test]
fn dead_letters_replay_and_event_lookups_work_in_cluster_mode() {
    let nats = NatsServer::start();
    let refuses = Receiver::start(Mode::Fail(422));
    let dir = TestDir::new();
    let server = dir.serve(&config(&[nats.url()], 1, &refuses));
    let ids: Vec<String> = (0..3)
        .map(|n| {
            server
                .deliver("acme", &WATSI, SECRET, &body("dead", n), &[])
                .expect_accepted()
        })
        .collect();
    let auth = format!("Bearer {TOKEN}");
    let get = |path: &str| {
        let reply = server.operator_request("GET", path, &[("Authorization", &auth)], None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        serde_json::from_str::<Value>(&reply.body).expect("JSON")
    };
    let letters = wait_until(Duration::from_secs(30), || {
        let page = get("/admin/workspaces/acme/sinks/crm/dead-letters");
        let found = page["dead_letters"].as_array().map_or(0, Vec::len);
        (found == 3).then_some(page)
    });
    let listed: Vec<&str> = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        letters["dead_letters"][0]["envelope"]["id"],
        ids[0].as_str()
    );
    let event = get(&format!("/admin/events/{}", ids[1]));
    assert_eq!(event["deliveries"][0]["status"], "dead", "{event}");
    // Search and window replays need the embedded store's index, and say so.
    for (method, path, code) in [
        ("GET", "/admin/events?status=dead", "search_unsupported"),
        (
            "POST",
            "/admin/workspaces/acme/sinks/crm/replay?since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z",
            "replay_unsupported",
        ),
    ] {
        let message = server
            .operator_request(method, path, &[("Authorization", &auth)], None)
            .expect_error(501, code);
        assert!(message.contains("embedded store"), "{message}");
    }

    // Replayed to the same refusing receiver, they come back as dead letters, each attempt
    // recorded.
    let replay = server.operator_request(
        "POST",
        "/admin/workspaces/acme/sinks/crm/dead-letters/replay",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(
        serde_json::from_str::<Value>(&replay.body).unwrap()["replayed"],
        3
    );
    wait_until(Duration::from_secs(30), || {
        (refuses.received().len() >= 6).then_some(())
    });
    let page = wait_until(Duration::from_secs(30), || {
        let page = get("/admin/workspaces/acme/sinks/crm/dead-letters");
        (page["dead_letters"].as_array().map_or(0, Vec::len) == 3).then_some(page)
    });
    assert_eq!(page["total"], 3);
    // Each kept its first attempt, the replay's follows it.
    for letter in page["dead_letters"].as_array().unwrap() {
        assert_eq!(
            letter["attempts"].as_array().map(Vec::len),
            Some(2),
            "{letter}"
        );
    }
    let deleted = server.operator_request(
        "DELETE",
        &format!("/admin/workspaces/acme/sinks/crm/dead-letters/{}", ids[0]),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let page = get("/admin/workspaces/acme/sinks/crm/dead-letters");
    assert_eq!(page["dead_letters"].as_array().map_or(0, Vec::len), 2);
}

#[test]
fn a_cluster_store_that_cannot_be_reached_stops_start_up_naming_it() {
    let port = free_port();
    let receiver = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let url = format!("nats://user:hunter2@127.0.0.1:{port}");
    let run = serve_expecting_exit(&dir.write_config(&config(&[url], 1, &receiver)));
    run.expect_failure(
        "no NATS server listens there",
        &[
            "cannot reach NATS JetStream at",
            &format!("127.0.0.1:{port}"),
        ],
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

/// Polls `found` until it gives a value.
fn wait_until<T>(within: Duration, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn readiness_follows_the_nats_connection_and_backups_are_left_to_jetstream() {
    let mut nats = NatsServer::start();
    let receiver = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let server = dir.serve(&config(&[nats.url()], 1, &receiver));
    assert_eq!(server.operator_get("/readyz").status, 200);
    let backup = server.operator_request(
        "POST",
        &format!("/admin/backup?to={}", dir.path().join("copy").display()),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    );
    let message = backup.expect_error(409, "backup_failed");
    assert!(message.contains("nats stream backup"), "{message}");

    nats.kill();
    wait_until(Duration::from_secs(30), || {
        (server.operator_get("/readyz").status == 503).then_some(())
    });
    let refused = server.deliver("acme", &WATSI, SECRET, &body("down", 0), &[]);
    refused.expect_error(503, "store_unavailable");

    // Same port and store directory: the client reconnects by itself.
    nats.restart();
    wait_until(Duration::from_secs(60), || {
        (server.operator_get("/readyz").status == 200).then_some(())
    });
    let id = server
        .deliver("acme", &WATSI, SECRET, &body("down", 0), &[])
        .expect_accepted();
    receiver.wait_for_delivered(&[id], Duration::from_secs(30));
}

#[test]
fn the_cluster_store_talks_tls_to_nats_and_refuses_a_server_it_cannot_verify() {
    let certs = TestCerts::new();
    let nats = NatsServer::start_tls(&certs);
    let url = nats.tls_url();
    let receiver = Receiver::start(Mode::Accept);

    let dir = TestDir::new();
    let trusting = config(std::slice::from_ref(&url), 1, &receiver).nats_tls_ca(&certs.ca);
    let server = dir.serve(&trusting);
    let id = server
        .deliver("acme", &WATSI, SECRET, &body("tls", 0), &[])
        .expect_accepted();
    receiver.wait_for_delivered(&[id], Duration::from_secs(30));

    // Without the CA, the server's certificate does not verify: start-up stops, naming it.
    let other = TestDir::new();
    let run = serve_expecting_exit(&other.write_config(&config(&[url], 1, &receiver)));
    run.expect_failure(
        "NATS's certificate is not trusted",
        &["cannot reach NATS JetStream at"],
    );
}
