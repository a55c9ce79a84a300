//! Delivery under the everyday faults of a shared service: a receiver down for a while, a slow
//! receiver, a tenant whose receiver never answers, a client that hangs up at once, logrotate
//! and SIGHUP, a full disk, and SIGTERM.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_e2e::*;

const SECRET: &str = "recovery-secret-for-e2e";
const WITHIN: Duration = Duration::from_secs(30);

fn body(n: usize, tag: &str) -> String {
    format!(r#"{{"id":"evt_{tag}_{n}","type":"message.received","data":{{"text":"hi {n}"}}}}"#)
}

fn one_http_sink(sink: HttpSink) -> (TestDir, Config) {
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[SECRET]))
            .http_sink("crm", sink)
            .route(Route::new("*", &["crm"])),
    );
    (TestDir::new(), config)
}

/// A server whose one workspace sends every event to the file sink `events`.
fn serve_one_file_sink() -> (TestDir, Server) {
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[SECRET]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    );
    let dir = TestDir::new();
    let server = dir.serve(&config);
    (dir, server)
}

fn accept_many(server: &Server, tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            server
                .deliver("acme", &WATSI, SECRET, &body(i, tag), &[])
                .expect_accepted()
        })
        .collect()
}

/// How long the receiver of the backoff test stays down: a sink that tried every event (each
/// retried every 20 ms) would send far more than the backlog's 200 requests in it.
const DOWN_FOR: Duration = Duration::from_secs(5);

#[test]
fn a_receiver_down_for_a_while_is_probed_not_flooded_and_gets_its_backlog_once_back() {
    let receiver = Receiver::start(Mode::Fail(503));
    let (dir, config) = one_http_sink(HttpSink::new(receiver.url()));
    let server = dir.serve(&config);
    let down_since = Instant::now();
    let backlog = accept_many(&server, "down", 200);
    receiver.wait_until("refused attempts", WITHIN, |r| r.len() >= 3);
    // The scenario: the receiver stays down a while from the first accept.
    std::thread::sleep(DOWN_FOR.saturating_sub(down_since.elapsed()));
    let tried_while_down = receiver.received().len();
    assert!(
        tried_while_down < 200,
        "a down sink backs off as a whole and probes, it does not try every event: {tried_while_down} requests"
    );
    receiver.set_mode(Mode::Accept);
    receiver.wait_for_delivered(&backlog, WITHIN);
    let fresh = accept_many(&server, "after", 1);
    receiver.wait_for_delivered(&fresh, WITHIN);
    // How fast the backlog drains is measured by `switchyard-bench recovery`.
}

#[test]
fn a_receiver_taking_100_ms_a_request_gets_every_event() {
    let receiver = Receiver::start(Mode::Slow(Duration::from_millis(100)));
    let (dir, config) = one_http_sink(HttpSink::new(receiver.url()));
    let server = dir.serve(&config);
    let ids = accept_many(&server, "slow", 300);
    receiver.wait_for_delivered(&ids, WITHIN);
    // Its delivery rate is measured by `switchyard-bench recovery`.
}

#[test]
fn a_tenant_whose_receiver_never_answers_costs_another_nothing() {
    let hung = Receiver::start(Mode::Hang);
    let healthy = Receiver::start(Mode::Accept);
    let config = Config::new()
        .workspace(
            Workspace::new("stuck")
                .vendor(Vendor::new("watsi", &[SECRET]))
                .http_sink("crm", HttpSink::new(hung.url()).timeout("60s"))
                .route(Route::new("*", &["crm"])),
        )
        .workspace(
            Workspace::new("acme")
                .vendor(Vendor::new("watsi", &[SECRET]))
                .http_sink("crm", HttpSink::new(healthy.url()))
                .route(Route::new("*", &["crm"])),
        );
    let dir = TestDir::new();
    let server = dir.serve(&config);
    for n in 0..20 {
        server
            .deliver("stuck", &WATSI, SECRET, &body(n, "stuck"), &[])
            .expect_accepted();
    }
    hung.wait_until("the stuck tenant's sink to hang", WITHIN, |r| r.len() >= 8);
    // Every event of the other tenant arrives while the stuck tenant's deliveries hang (how
    // fast is measured by `switchyard-bench isolation`).
    for n in 0..20 {
        let id = server
            .deliver("acme", &WATSI, SECRET, &body(n, "acme"), &[])
            .expect_accepted();
        healthy.wait_for_delivered(&[id], WITHIN);
    }
    assert!(hung.received().iter().all(|r| r.answered.is_none()));
}

#[test]
fn an_event_whose_client_hangs_up_at_once_is_delivered_without_more_traffic() {
    let (dir, server) = serve_one_file_sink();
    let payload = body(0, "hangup");
    let signature = WATSI.signature(SECRET, payload.as_bytes());
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{}: {signature}\r\nContent-Length: {}\r\n\r\n{payload}",
        hook("acme", "watsi"),
        WATSI.header,
        payload.len()
    );
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    drop(stream);
    let landed = dir.sink("acme", "events").wait_for_count(1);
    assert_eq!(landed[0]["vendor_event_id"], "evt_hangup_0");
}

#[test]
fn sighup_keeps_serving_and_a_rotated_file_sink_continues_in_a_new_file() {
    let (dir, server) = serve_one_file_sink();
    let before = accept_many(&server, "before", 5);
    let sink = dir.sink("acme", "events");
    sink.wait_for_count(5);

    // logrotate: move the file aside, then signal.
    let rotated = sink.path().with_extension("jsonl.1");
    std::fs::rename(sink.path(), &rotated).expect("rotate");
    server.signal("HUP");
    assert_eq!(
        server.get("/healthz").status,
        200,
        "SIGHUP must not end the server"
    );
    let after = accept_many(&server, "after", 5);
    let fresh = sink.wait_for_count(5);
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["id"].as_str().expect("an id").to_owned())
            .collect()
    };
    assert_eq!(ids(&fresh), after, "the new file holds the new events");
    let old = SinkFile::at(&rotated).events();
    assert_eq!(
        ids(&old),
        before,
        "the moved file keeps the old ones, whole"
    );
    // A second SIGHUP with nothing moved: still serving, same file.
    server.signal("HUP");
    let more = accept_many(&server, "more", 1);
    let all = sink.wait_for_count(6);
    assert_eq!(ids(&all[5..]), more);
}

#[test]
fn a_full_disk_answers_503_then_accepts_again_by_itself_and_sigterm_ends_the_process() {
    let receiver = Receiver::start(Mode::Accept);
    let (dir, config) = one_http_sink(HttpSink::new(receiver.url()));
    // Every file the server writes is held under 512 KiB (dash) or 1 MiB (bash), as on a disk
    // that fills up; freed later by raising the limit of the running process.
    let mut server = dir.serve_with_file_size_limit(&config, 1024);
    let padding: String = (0..900)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let mut accepted = Vec::new();
    let mut n = 0;
    let full = loop {
        assert!(n < 20_000, "the store never filled up");
        let payload = format!(
            r#"{{"id":"evt_full_{n}","type":"message.received","data":{{"text":"{padding}{n}"}}}}"#
        );
        n += 1;
        let reply = server.deliver("acme", &WATSI, SECRET, &payload, &[]);
        match reply.status {
            200 => accepted.push(reply.expect_accepted()),
            503 => break reply,
            _ => reply.fail("expected 200 until the disk is full, then 503"),
        }
    };
    assert_eq!(full.header("retry-after"), Some("5"));

    let freed = Command::new(tool("prlimit"))
        .args([
            "--pid",
            &server.pid().to_string(),
            "--fsize=unlimited:unlimited",
        ])
        .status()
        .expect("prlimit runs");
    assert!(freed.success(), "prlimit could not raise the limit");
    // The next attempts succeed without a restart.
    let deadline = Instant::now() + WITHIN;
    loop {
        let payload = body(n, "freed");
        n += 1;
        let reply = server.deliver("acme", &WATSI, SECRET, &payload, &[]);
        if reply.status == 200 {
            accepted.push(reply.expect_accepted());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store never took writes again: {}",
            reply.body
        );
    }
    receiver.wait_for_delivered(&accepted, WITHIN);

    server.signal("TERM");
    let status = server.wait_exit(EXIT_DEADLINE);
    assert!(status.is_some(), "SIGTERM did not end the process");
}

#[test]
fn with_few_file_descriptors_hundreds_of_idle_connections_only_delay_deliveries() {
    let receiver = Receiver::start(Mode::Accept);
    let config = Config::new().header_read_timeout("1s").workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[SECRET]))
            .http_sink("crm", HttpSink::new(receiver.url()))
            .route(Route::new("*", &["crm"])),
    );
    let dir = TestDir::new();
    // 128 descriptors: the default connection limit is half of them, so the store, the
    // plugins and the sinks keep theirs whatever clients do.
    let mut server = Server::start_with_open_files_limit(&dir.write_config(&config), 128);
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(server.addr()).expect("the backlog takes the connection"))
        .collect();
    server.wait_for_log("connection limit reached", 1, WITHIN);
    // Deliveries queue behind the idle connections until their header time limit frees slots.
    let ids = accept_many(&server, "crowded", 20);
    receiver.wait_for_delivered(&ids, WITHIN);
    assert!(
        !server.log().contains("Too many open files"),
        "the server ran out of descriptors:\n{}",
        server.log()
    );
    drop(idle);
    server.signal("TERM");
    assert!(
        server.wait_exit(EXIT_DEADLINE).is_some(),
        "SIGTERM did not end the process"
    );
}
