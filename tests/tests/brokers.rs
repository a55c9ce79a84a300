//! Broker sinks against real servers: a `nats` sink publishes each event to JetStream on its
//! subject, once per envelope id even when the same envelope is handed over twice; one whose
//! server is down at start neither blocks start-up nor other sinks, and delivers once the
//! server is up; a `redis` sink adds one stream entry per envelope id, trimmed near `max_len`;
//! and configuration mistakes name their file, line and key.
//!
//! "Handed over twice" is made certain, not left to the timing of a SIGKILL: the data directory
//! is copied while the events are still queued, and put back after they were delivered, so
//! the next start delivers the very same envelopes again.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use switchyard_e2e::*;

const WS: &str = "acme";
const KEY: &str = "secret-one-for-e2e";
const TOKEN: &str = "e2e-admin-token-0123";
const WITHIN: Duration = Duration::from_secs(30);
const TYPES: [&str; 3] = ["message.received", "message.status", "call.missed"];

fn body(n: usize, tag: &str) -> String {
    let event_type = TYPES[n % TYPES.len()];
    json!({"id": format!("evt_{tag}_{n}"), "type": event_type, "data": {"n": n}}).to_string()
}

fn config(sink: impl FnOnce(Workspace) -> Workspace) -> Config {
    let ws = Workspace::new(WS).vendor(Vendor::new("watsi", &[KEY]));
    Config::new()
        .admin_token(TOKEN)
        .workspace(sink(ws).route(Route::new("*", &["out"])))
}

/// Accepts `n` events tagged `tag`; their envelope ids, with the type each was sent as.
fn send(server: &Server, n: usize, tag: &str) -> Vec<(String, &'static str)> {
    (0..n)
        .map(|i| {
            let id = server
                .deliver(WS, &WATSI, KEY, &body(i, tag), &[])
                .expect_accepted();
            (id, TYPES[i % TYPES.len()])
        })
        .collect()
}

/// Polls the operator API until the sink `out` owes nothing.
fn wait_for_empty_queue(server: &Server) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let reply = server.operator_request(
            "GET",
            "/admin/queues",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
        );
        let queues = reply.json();
        let out = queues["sinks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["sink"] == "out"))
            .cloned()
            .unwrap_or(Value::Null);
        if out["queued"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "acme/out still owes events: {out}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Replaces the data directory with `snapshot`'s copy (the server must not run).
fn restore(dir: &TestDir, snapshot: &Path) {
    std::fs::remove_dir_all(dir.data_dir()).unwrap();
    copy_dir(snapshot, &dir.data_dir());
}

/// How many times each `Nats-Msg-Id` is in the stream.
fn nats_counts(messages: &[NatsMessage]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in messages {
        *counts
            .entry(m.msg_id.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    counts
}

#[track_caller]
fn assert_each_once_in_nats(messages: &[NatsMessage], sent: &[(String, &str)]) {
    let counts = nats_counts(messages);
    for (id, event_type) in sent {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "{id} should be in the stream once"
        );
        let message = messages
            .iter()
            .find(|m| m.msg_id.as_deref() == Some(id))
            .unwrap();
        assert_eq!(message.subject, format!("webhooks.{WS}.{event_type}"));
        assert_eq!(message.payload["id"], id.as_str());
        assert_eq!(message.payload["type"], *event_type);
        assert_eq!(message.payload["workspace"], WS);
    }
    assert_eq!(
        messages.len(),
        counts.len(),
        "no message without an id, none twice"
    );
}

fn all_ids_in(messages: &[NatsMessage], sent: &[(String, &str)]) -> bool {
    let counts = nats_counts(messages);
    sent.iter().all(|(id, _)| counts.contains_key(id))
}

#[test]
fn a_nats_sink_publishes_each_event_once_on_its_subject_even_when_handed_over_twice() {
    let mut nats = NatsServer::start();
    let urls = vec![nats.url()];
    let dir = TestDir::new();
    let config = config(|ws| {
        ws.nats_sink(
            "out",
            NatsSink::new(&urls, "webhooks.{workspace}.{type}").stream("WEBHOOKS"),
        )
    });
    let mut server = dir.serve(&config);

    // Several types, each on its own subject.
    let mut sent = send(&server, 9, "first");
    let messages = wait_for_nats_messages(&urls, "WEBHOOKS", WITHIN, |m| all_ids_in(m, &sent));
    assert_each_once_in_nats(&messages, &sent);

    // SIGKILL right after the accepts, with publishes in flight; the restart delivers the rest.
    sent.extend(send(&server, 20, "killed"));
    server.kill();
    server.restart();
    wait_for_empty_queue(&server);
    let messages = nats_stream_messages(&urls, "WEBHOOKS");
    assert_each_once_in_nats(&messages, &sent);

    // The same envelopes handed over twice: queued while NATS is down, the queue copied,
    // delivered, then the copy put back and delivered again.
    nats.kill();
    let again = send(&server, 6, "twice");
    server.kill();
    let snapshot = tempfile::tempdir().unwrap();
    copy_dir(&dir.data_dir(), snapshot.path());
    nats.restart();
    server.restart();
    wait_for_empty_queue(&server);
    server.kill();
    restore(&dir, snapshot.path());
    server.restart();
    wait_for_empty_queue(&server);
    sent.extend(again);
    let messages = nats_stream_messages(&urls, "WEBHOOKS");
    assert_each_once_in_nats(&messages, &sent);
    assert_eq!(messages.len(), 35);
}

#[test]
fn a_nats_sink_whose_server_is_down_at_start_delivers_once_it_is_up() {
    let port = free_port();
    let urls = vec![format!("nats://127.0.0.1:{port}")];
    let dir = TestDir::new();
    let config = Config::new().admin_token(TOKEN).workspace(
        Workspace::new(WS)
            .vendor(Vendor::new("watsi", &[KEY]))
            .nats_sink(
                "out",
                NatsSink::new(&urls, "webhooks.{workspace}.{type}").stream("WEBHOOKS"),
            )
            .file_sink("events")
            .route(Route::new("*", &["out", "events"])),
    );
    // Ready (/readyz 200) although the NATS server does not exist yet.
    let server = dir.serve(&config);
    let sent = send(&server, 6, "down");
    // The other sink is not held back.
    let last = &sent.last().unwrap().0;
    let events = dir.sink(WS, "events").wait_for(last);
    assert_eq!(events.len(), 6);

    let nats = NatsServer::start_on(port);
    let messages = wait_for_nats_messages(&urls, "WEBHOOKS", WITHIN, |m| all_ids_in(m, &sent));
    assert_each_once_in_nats(&messages, &sent);
    wait_for_empty_queue(&server);
    drop(nats);
}

#[test]
fn a_nats_sink_publishes_over_tls_trusting_the_ca_it_is_given() {
    let certs = TestCerts::new();
    let nats = NatsServer::start_tls(&certs);
    let urls = vec![nats.tls_url()];
    let dir = TestDir::new();
    let server = dir.serve(&config(|ws| {
        ws.nats_sink(
            "out",
            NatsSink::new(&urls, "webhooks.{workspace}.{type}")
                .stream("WEBHOOKS")
                .tls_ca(&certs.ca),
        )
    }));
    send(&server, 4, "tls");
    wait_for_empty_queue(&server);
    assert_eq!(nats.stream_messages("WEBHOOKS"), 4);
}

/// How many times each envelope id is in the stream's entries.
fn redis_counts(entries: &[StreamEntry]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in entries {
        *counts
            .entry(e.field("id").unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

#[track_caller]
fn assert_entry_matches(entry: &StreamEntry) {
    let id = entry.field("id").expect("an id field");
    let envelope: Value = serde_json::from_str(entry.field("envelope").expect("an envelope"))
        .expect("the envelope is JSON");
    assert_eq!(envelope["id"], id);
    assert_eq!(envelope["workspace"], WS);
}

#[test]
fn a_redis_sink_adds_each_event_once_and_trims_near_max_len() {
    let redis = RedisServer::start();
    // Approximate trimming drops whole nodes of the stream: small nodes make it show soon.
    assert_eq!(
        redis.command(&["CONFIG", "SET", "stream-node-max-entries", "10"]),
        Resp::Simple("OK".into())
    );
    let dir = TestDir::new();
    let config = config(|ws| {
        ws.redis_sink(
            "out",
            RedisSink::new(&redis.url(), "webhooks:{workspace}").max_len(20),
        )
    });
    let server = dir.serve(&config);
    let sent = send(&server, 60, "capped");
    let last = sent.last().unwrap().0.clone();
    let key = format!("webhooks:{WS}");
    let entries = redis.wait_for_entries(&key, WITHIN, |e| {
        e.iter().any(|e| e.field("id") == Some(last.as_str()))
    });
    wait_for_empty_queue(&server);
    let entries = if entries.len() > 30 {
        redis.xrange(&key)
    } else {
        entries
    };
    // `MAXLEN ~ 20` keeps at least 20, and at most 20 plus one node (10) more.
    assert!(
        (20..=30).contains(&entries.len()),
        "{} entries in a stream capped near 20",
        entries.len()
    );
    let counts = redis_counts(&entries);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    // The newest are kept, in the order they were accepted.
    let kept: Vec<&str> = entries.iter().filter_map(|e| e.field("id")).collect();
    let newest: Vec<&str> = sent[sent.len() - kept.len()..]
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(kept, newest);
    entries.iter().for_each(assert_entry_matches);
}

#[test]
fn a_redis_sink_adds_no_second_entry_when_the_same_envelope_is_handed_over_twice() {
    let mut redis = RedisServer::start();
    let dir = TestDir::new();
    let config = config(|ws| {
        ws.redis_sink(
            "out",
            RedisSink::new(&redis.url(), "webhooks:{workspace}:{vendor}"),
        )
    });
    let key = format!("webhooks:{WS}:watsi");
    let mut server = dir.serve(&config);

    // SIGKILL right after the accepts; the restart delivers the rest.
    let mut sent = send(&server, 20, "killed");
    server.kill();
    server.restart();
    wait_for_empty_queue(&server);

    // Queued while Redis is down, the queue copied, delivered, put back, delivered again.
    redis.kill();
    let again = send(&server, 6, "twice");
    server.kill();
    let snapshot = tempfile::tempdir().unwrap();
    copy_dir(&dir.data_dir(), snapshot.path());
    // Redis keeps nothing across a restart here: the stream starts again from empty.
    redis.restart();
    server.restart();
    wait_for_empty_queue(&server);
    let first = redis.xrange(&key);
    assert_eq!(
        first.len(),
        again.len(),
        "only the queued events: {first:?}"
    );
    server.kill();
    restore(&dir, snapshot.path());
    server.restart();
    wait_for_empty_queue(&server);

    let entries = redis.xrange(&key);
    let counts = redis_counts(&entries);
    assert_eq!(entries.len(), again.len(), "no second entry: {counts:?}");
    for (id, _) in &again {
        assert_eq!(counts.get(id), Some(&1), "{id} once");
    }
    // The seen key shares the stream's hash slot: `{<stream>}` is its hash tag.
    let seen = format!("{{{key}}}:seen:{}", again[0].0);
    assert_eq!(redis.command(&["EXISTS", &seen]), Resp::Integer(1));
    let ttl = redis.command(&["TTL", &seen]);
    assert!(
        matches!(ttl, Resp::Integer(t) if t > 71 * 3600 && t <= 72 * 3600),
        "the default dedupe_ttl is 72h: {ttl:?}"
    );
    entries.iter().for_each(assert_entry_matches);
    sent.extend(again);
    assert_eq!(sent.len(), 26);
}

#[test]
fn broker_sink_mistakes_name_file_line_and_key() {
    let dir = TestDir::new();
    let text = format!(
        "\
server:
  data_dir: {data}
workspaces:
  acme:
    vendors:
      watsi: {{ secrets: [\"{KEY}\"] }}
    sinks:
      bus:
        type: nats
        servers: [\"nats://127.0.0.1:4222\"]
        subject: \"webhooks.{{tenant}}.{{type}}\"
      stream:
        type: redis
        stream: \"webhooks:{{workspace}}\"
    routes:
      - match: {{ type: \"*\" }}
        to: [bus, stream]
",
        data = dir.data_dir().display()
    );
    let path = dir.write("routes.yaml", text);
    let shown = path.display().to_string();
    check(&path).expect_failure(
        "check",
        &[
            &format!(
                "{shown}:11: workspaces.acme.sinks.bus.subject: invalid template: unknown \
                 placeholder `{{tenant}}`"
            ),
            &format!(
                "{shown}:12: workspaces.acme.sinks.stream.url: missing: a redis sink needs a `url`"
            ),
        ],
    );
}

#[test]
fn a_nats_sink_publishes_through_a_three_node_jetstream_cluster() {
    let mut cluster = NatsCluster::start(3);
    let urls = cluster.urls();
    let dir = TestDir::new();
    let config = config(|ws| {
        ws.nats_sink(
            "out",
            NatsSink::new(&urls, "webhooks.{workspace}.{type}").stream("WEBHOOKS"),
        )
    });
    let server = dir.serve(&config);
    let sent = send(&server, 6, "cluster");
    let messages = wait_for_nats_messages(&urls, "WEBHOOKS", WITHIN, |m| all_ids_in(m, &sent));
    assert_each_once_in_nats(&messages, &sent);
    wait_for_empty_queue(&server);
    // A node that goes away leaves a cluster that still has a meta leader.
    cluster.kill_node(2);
    cluster.wait_for_leader();
}
