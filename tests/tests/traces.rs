//! OpenTelemetry traces (`server.telemetry`) against a real OTLP/HTTP collector that decodes
//! the protobuf: the request's spans with their names, attributes and parents, the vendor's
//! `traceparent` continued, a delivery attempt in the same trace and its `traceparent` at the
//! receiver, the trace id in JSON log lines and with the stored event; and a dead collector
//! costs no request, only spans, counted; spans still waiting at shutdown are sent before the
//! process ends.

use std::time::{Duration, Instant};

use switchyard_e2e::*;

const SECRET: &str = "watsi-secret-for-traces";
const TOKEN: &str = "traces-admin-token";
/// How long spans may take to reach the collector (the exporter sends every second).
const EXPORT_DEADLINE: Duration = Duration::from_secs(20);

/// Whatsable's signature is checked by its plugin's own verify, on a blocking thread.
const WHATSABLE_SECRET: &str = "whatsable-secret-for-traces";

fn acme(receiver: &Receiver) -> Workspace {
    Workspace::new("acme")
        .vendor(Vendor::new("watsi", &[SECRET]))
        .vendor(Vendor::new("whatsable", &[WHATSABLE_SECRET]))
        .http_sink("crm", HttpSink::new(receiver.url()))
        .route(Route::new("*", &["crm"]))
}

/// `count` Watsi events to `acme`, each accepted: their ids.
fn deliver_each(server: &Server, prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|n| {
            let body = format!(r#"{{"type":"message.received","id":"{prefix}_{n}","data":{{}}}}"#);
            (server.deliver("acme", &WATSI, SECRET, &body, &[])).expect_accepted()
        })
        .collect()
}

fn named<'a>(spans: &'a [CollectedSpan], name: &str, trace: &str) -> Option<&'a CollectedSpan> {
    spans.iter().find(|s| s.name == name && s.trace_id == trace)
}

#[test]
fn a_request_continues_the_vendors_trace_through_verify_map_commit_and_the_delivery() {
    let collector = Collector::start();
    let receiver = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let config = Config::new()
        .admin_token(TOKEN)
        .telemetry(collector.url(), 1.0)
        .workspace(acme(&receiver));
    let server = Server::start_with_env(
        &dir.write_config(&config),
        &[
            ("SWITCHYARD_LOG_FORMAT", "json"),
            (
                "RUST_LOG",
                "info,switchyard::server::hooks=debug,switchyard::deliver=debug",
            ),
        ],
    );
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let vendor_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{vendor_span}-01");
    let body = r#"{"type":"message.received","id":"evt_traced_1","data":{"text":"hi"}}"#;
    let id = server
        .deliver(
            "acme",
            &WATSI,
            SECRET,
            body,
            &[("traceparent", &traceparent)],
        )
        .expect_accepted();

    let spans = collector.wait_until(
        "the request's and the delivery's spans",
        EXPORT_DEADLINE,
        |spans| {
            ["hook", "verify", "map", "commit", "deliver"]
                .iter()
                .all(|name| named(spans, name, trace).is_some())
        },
    );
    let hook = named(&spans, "hook", trace).unwrap();
    assert_eq!(
        hook.parent_span_id, vendor_span,
        "the vendor's trace goes on: {hook:#?}"
    );
    assert_eq!(hook.service, "switchyard-e2e");
    for (key, value) in [
        ("workspace", "acme"),
        ("vendor", "watsi"),
        ("event_type", "message.received"),
        ("answer", "accepted"),
        ("event_id", id.as_str()),
    ] {
        assert_eq!(hook.attribute(key), Some(value), "{key} of {hook:#?}");
    }
    for step in ["verify", "map", "commit"] {
        let span = named(&spans, step, trace).unwrap();
        assert_eq!(
            span.parent_span_id, hook.span_id,
            "{step} is the request's: {span:#?}"
        );
    }
    let deliver = named(&spans, "deliver", trace).unwrap();
    assert_eq!(deliver.parent_span_id, hook.span_id, "{deliver:#?}");
    assert_eq!(deliver.attribute("sink"), Some("crm"));
    assert_eq!(deliver.attribute("outcome"), Some("delivered"));
    assert_eq!(deliver.attribute("event_id"), Some(id.as_str()));

    // The receiver got the attempt's own trace context.
    let got = receiver.wait_until("the event", DELIVERY_DEADLINE, |r| !r.is_empty());
    let sent = got[0].header("traceparent").expect("a traceparent header");
    assert_eq!(sent, format!("00-{trace}-{}-01", deliver.span_id));

    // The event keeps its request's trace context; the log lines name the trace.
    let auth = format!("Bearer {TOKEN}");
    let event = server.operator_request(
        "GET",
        &format!("/admin/events/{id}"),
        &[("Authorization", &auth)],
        None,
    );
    let kept = event.json()["event"]["traceparent"]
        .as_str()
        .map(str::to_owned);
    assert_eq!(
        kept,
        Some(format!("00-{trace}-{}-01", hook.span_id)),
        "{event:?}"
    );
    let log = server.log_containing("delivery answered");
    let line = (log.lines().find(|l| l.contains("delivery answered"))).expect("a log line");
    let line: Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(line["span"]["trace_id"], trace, "{line}");
    let log = server.log_containing("event delivered");
    let line = (log.lines().find(|l| l.contains("event delivered"))).expect("a log line");
    let line: Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(line["trace_id"], trace, "{line}");

    // A plugin's own verify runs off the async threads: its span is still the request's.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace}-{vendor_span}-01");
    let body = r#"{"event":"message_status","data":{"message_id":"wamid.traced","status":"sent"}}"#;
    server
        .deliver(
            "acme",
            &WHATSABLE,
            WHATSABLE_SECRET,
            body,
            &[("traceparent", &traceparent)],
        )
        .expect_accepted();
    let spans = collector.wait_until("the plugin's verify span", EXPORT_DEADLINE, |spans| {
        ["hook", "verify"]
            .iter()
            .all(|name| named(spans, name, trace).is_some())
    });
    let hook = named(&spans, "hook", trace).unwrap();
    assert_eq!(hook.attribute("vendor"), Some("whatsable"), "{hook:#?}");
    let verify = named(&spans, "verify", trace).unwrap();
    assert_eq!(verify.parent_span_id, hook.span_id, "{verify:#?}");
}

#[test]
fn nats_and_redis_sinks_carry_the_attempts_traceparent() {
    let collector = Collector::start();
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let urls = [nats.url()];
    let acme = Workspace::new("acme")
        .vendor(Vendor::new("watsi", &[SECRET]))
        .nats_sink(
            "bus",
            NatsSink::new(&urls, "hooks.{workspace}").stream("HOOKS"),
        )
        .redis_sink("stream", RedisSink::new(&redis.url(), "hooks:{workspace}"))
        .route(Route::new("*", &["bus", "stream"]));
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new()
            .telemetry(collector.url(), 1.0)
            .workspace(acme),
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace}-b7ad6b7169203331-01");
    let body = r#"{"type":"message.received","id":"evt_traced_2","data":{}}"#;
    server
        .deliver(
            "acme",
            &WATSI,
            SECRET,
            body,
            &[("traceparent", &traceparent)],
        )
        .expect_accepted();
    let spans = collector.wait_until("both attempts", EXPORT_DEADLINE, |spans| {
        (spans.iter())
            .filter(|s| s.name == "deliver" && s.trace_id == trace)
            .count()
            == 2
    });
    let attempt = |sink: &str| {
        let span = (spans.iter())
            .find(|s| s.name == "deliver" && s.attribute("sink") == Some(sink))
            .unwrap_or_else(|| panic!("no attempt to {sink}: {spans:#?}"));
        format!("00-{trace}-{}-01", span.span_id)
    };
    let messages = wait_for_nats_messages(&urls, "HOOKS", DELIVERY_DEADLINE, |m| !m.is_empty());
    assert_eq!(messages[0].traceparent, Some(attempt("bus")));
    let entries = redis.wait_for_entries("hooks:acme", DELIVERY_DEADLINE, |e| !e.is_empty());
    assert_eq!(
        entries[0].field("traceparent"),
        Some(attempt("stream").as_str())
    );
}

#[test]
fn a_dead_collector_refuses_no_delivery_and_its_spans_are_counted_as_dropped() {
    let receiver = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    // Nothing listens there.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = Config::new()
        .telemetry(&dead, 1.0)
        .workspace(acme(&receiver));
    let server = dir.serve(&config);
    let ids = deliver_each(&server, "evt_dead", 5);
    receiver.wait_for_delivered(&ids, DELIVERY_DEADLINE);
    let deadline = Instant::now() + EXPORT_DEADLINE;
    loop {
        let metrics = server.operator_get("/metrics").body;
        let dropped = metrics
            .lines()
            .find_map(|l| l.strip_prefix("switchyard_trace_spans_dropped_total "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if dropped > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no dropped span counted:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still serving.
    let body = r#"{"type":"message.received","id":"evt_dead_after","data":{}}"#;
    server
        .deliver("acme", &WATSI, SECRET, body, &[])
        .expect_accepted();
}

#[test]
fn spans_still_waiting_when_the_server_stops_reach_the_collector_before_it_exits() {
    let collector = Collector::start();
    let receiver = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let config = Config::new()
        .telemetry(collector.url(), 1.0)
        .workspace(acme(&receiver));
    let mut server = dir.serve(&config);
    let ids = deliver_each(&server, "evt_last", 20);
    // Right after the last answer, well inside the exporter's one-second wait: only the
    // flush at shutdown can send the latest requests' spans.
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    let spans = collector.spans();
    for id in &ids {
        assert!(
            (spans.iter()).any(|s| s.name == "hook" && s.attribute("event_id") == Some(id)),
            "no hook span for {id} among {} spans",
            spans.len()
        );
    }
}
