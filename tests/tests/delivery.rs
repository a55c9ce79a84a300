//! Durable delivery through `http` sinks to a real HTTP receiver: acknowledged means kept
//! (SIGKILL under load loses nothing), a sink that is down gets everything in order once back,
//! one that always fails fills its dead letters after the schedule and replay delivers them,
//! signatures verify with the reference Standard Webhooks library, and a hung sink in one
//! workspace does not hold back another. A `format: raw` sink relays the vendor's bytes as
//! received; a rate-limited sink gets every event of a burst; a sink that stays down is
//! disabled, said so by a signed alert, and resumes with its queue whole when enabled.

use std::time::{Duration, Instant};

use switchyard_e2e::*;

const TOKEN: &str = "e2e-admin-token-0123";
/// Generous: on a loaded 2-core machine a retry schedule of 20 ms steps still takes a while.
const WITHIN: Duration = Duration::from_secs(30);

fn watsi_body(n: usize, tag: &str) -> String {
    format!(r#"{{"id":"evt_{tag}_{n}","type":"message.received","data":{{"text":"event {n}"}}}}"#)
}

fn one_sink(sink: HttpSink) -> (TestDir, Config) {
    let config = Config::new().admin_token(TOKEN).workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
            .http_sink("crm", sink)
            .route(Route::new("*", &["crm"])),
    );
    (TestDir::new(), config)
}

fn admin(server: &Server, method: &str, path: &str) -> Value {
    let reply = server.operator_request(
        method,
        path,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    );
    if reply.status != 200 {
        reply.fail(&format!("{method} {path} should answer 200"));
    }
    reply.json()
}

/// Polls the operator API until `done` holds for `/admin/queues`' entry of acme/crm.
fn wait_for_queue(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let queues = admin(server, "GET", "/admin/queues");
        let crm = queues["sinks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["sink"] == "crm"))
            .cloned()
            .unwrap_or(Value::Null);
        if done(&crm) {
            return crm;
        }
        assert!(
            Instant::now() < deadline,
            "acme/crm never reached {what}: {crm}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_ordered_sink_down_for_a_while_gets_everything_in_order_once_back() {
    let receiver = Receiver::start(Mode::Fail(503));
    let (dir, config) = one_sink(HttpSink::new(receiver.url()).ordered());
    let server = dir.serve(&config);
    let accepted: Vec<String> = (0..10)
        .map(|n| {
            server
                .deliver(
                    "acme",
                    &WATSI,
                    "secret-one-for-e2e",
                    &watsi_body(n, "down"),
                    &[],
                )
                .expect_accepted()
        })
        .collect();
    receiver.wait_until("three refused attempts", WITHIN, |r| r.len() >= 3);
    assert!(receiver.delivered().is_empty());

    receiver.set_mode(Mode::Accept);
    let delivered = receiver.wait_for_delivered(&accepted, WITHIN);
    assert_eq!(delivered, accepted, "each once, in the order accepted");
    wait_for_queue(&server, "an empty queue", |crm| crm["queued"] == 0);
}

#[test]
fn a_poison_event_dead_letters_after_its_schedule_while_the_rest_flow_and_replay_delivers() {
    let receiver = Receiver::start(Mode::FailMatching(500, "poison"));
    let (dir, config) = one_sink(HttpSink::new(receiver.url()).retry(&["20ms", "20ms"]));
    let server = dir.serve(&config);
    let bodies: Vec<String> = ["good", "poison", "good", "good"]
        .iter()
        .enumerate()
        .map(|(n, tag)| watsi_body(n, tag))
        .collect();
    let accepted: Vec<String> = bodies
        .iter()
        .map(|b| {
            server
                .deliver("acme", &WATSI, "secret-one-for-e2e", b, &[])
                .expect_accepted()
        })
        .collect();
    let good = [&accepted[0], &accepted[2], &accepted[3]].map(String::clone);
    receiver.wait_for_delivered(&good, WITHIN);

    wait_for_queue(&server, "one dead letter", |crm| crm["dead"] == 1);
    let dead = admin(
        &server,
        "GET",
        "/admin/workspaces/acme/sinks/crm/dead-letters",
    );
    let letters = dead["dead_letters"].as_array().expect("a list");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter["event_id"], accepted[1].as_str());
    assert_eq!(letter["envelope"]["id"], accepted[1].as_str());
    let attempts = letter["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "one try and two retries: {letter}");
    assert!(attempts.iter().all(|a| a["outcome"] == "answered HTTP 500"));
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("gave up after 3 failures of its own")),
        "{letter}"
    );
    let accepted = vec![accepted[1].clone()];
    let event = admin(&server, "GET", &format!("/admin/events/{}", accepted[0]));
    assert_eq!(event["deliveries"][0]["status"], "dead", "{event}");

    // Replay through the CLI, once the sink is back.
    receiver.set_mode(Mode::Accept);
    let url = server.admin_url("");
    run(switchyard_command([
        "dlq",
        "replay",
        "--workspace",
        "acme",
        "--sink",
        "crm",
        "--all",
        "--url",
        &url,
        "--token",
        TOKEN,
    ]))
    .expect_success("dlq replay --all");
    let delivered = receiver.wait_for_delivered(&accepted, WITHIN);
    let poison = delivered.iter().filter(|id| **id == accepted[0]).count();
    assert_eq!(poison, 1, "the replayed event, once: {delivered:?}");
    assert_eq!(delivered.len(), 4, "every event once: {delivered:?}");
    wait_for_queue(&server, "no dead letters and an empty queue", |crm| {
        crm["dead"] == 0 && crm["queued"] == 0
    });
    let event = admin(&server, "GET", &format!("/admin/events/{}", accepted[0]));
    assert_eq!(event["deliveries"][0]["status"], "delivered", "{event}");
    // The replay kept the three failed attempts; the delivery follows them.
    let outcomes: Vec<&str> = (event["deliveries"][0]["attempts"].as_array())
        .map(|a| a.iter().filter_map(|a| a["outcome"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        outcomes,
        [
            "answered HTTP 500",
            "answered HTTP 500",
            "answered HTTP 500",
            "delivered"
        ],
        "{event}"
    );

    // The replay went around the dedupe index, which still holds the event.
    let again = server
        .deliver("acme", &WATSI, "secret-one-for-e2e", &bodies[1], &[])
        .expect_ok("duplicate");
    assert_eq!(again, accepted[0]);
}

#[test]
fn a_4xx_refusal_is_permanent_and_dead_at_once() {
    let receiver = Receiver::start(Mode::Fail(422));
    let (dir, config) = one_sink(HttpSink::new(receiver.url()).retry(&["1h"]));
    let server = dir.serve(&config);
    let id = server
        .deliver(
            "acme",
            &WATSI,
            "secret-one-for-e2e",
            &watsi_body(0, "perm"),
            &[],
        )
        .expect_accepted();
    wait_for_queue(&server, "one dead letter", |crm| crm["dead"] == 1);
    let event = admin(&server, "GET", &format!("/admin/events/{id}"));
    let delivery = &event["deliveries"][0];
    assert_eq!(delivery["status"], "dead");
    assert_eq!(delivery["attempts"].as_array().map(Vec::len), Some(1));
    assert!(delivery["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("refused for good")));
}

/// Whether the reference Python implementation of Standard Webhooks (the `standardwebhooks`
/// package, in the harness's own Python environment), not our own code, accepts the request:
/// `Err` holds its reason for refusing the signature. Any other failure of the check itself (an
/// import, a crash) panics: it says nothing about the signature.
fn verify_with_standard_webhooks(secret: &str, request: &SinkRequest) -> Result<(), String> {
    /// The script's exit status for a refused signature, apart from Python's own failures.
    const REFUSED: i32 = 3;
    let dir = tempfile::tempdir().expect("a temp dir");
    let headers: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    std::fs::write(
        dir.path().join("headers.json"),
        Value::Object(headers).to_string(),
    )
    .expect("write headers");
    std::fs::write(dir.path().join("body"), &request.body).expect("write body");
    let script = format!(
        "import json, sys\n\
         from standardwebhooks.webhooks import Webhook, WebhookVerificationError\n\
         d = sys.argv[2]\n\
         headers = json.load(open(d + '/headers.json'))\n\
         body = open(d + '/body', 'rb').read()\n\
         try:\n    Webhook(sys.argv[1]).verify(body, headers)\n\
         except WebhookVerificationError as e:\n    print(e, file=sys.stderr)\n    sys.exit({REFUSED})\n"
    );
    let output = std::process::Command::new(python_env().python())
        .args(["-c", &script, secret])
        .arg(dir.path())
        .output()
        .expect("the tests' Python runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(0) => Ok(()),
        Some(REFUSED) => Err(stderr),
        _ => panic!(
            "the Standard Webhooks check itself failed ({}), which says nothing about the \
             signature:\n{stderr}",
            output.status
        ),
    }
}

#[test]
fn signed_deliveries_verify_with_the_reference_standard_webhooks_library() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = Receiver::start(Mode::Accept);
    let (dir, config) = one_sink(HttpSink::new(receiver.url()).secret(secret));
    let server = dir.serve(&config);
    let ids: Vec<String> = (0..2)
        .map(|n| {
            server
                .deliver(
                    "acme",
                    &WATSI,
                    "secret-one-for-e2e",
                    &watsi_body(n, "sig"),
                    &[],
                )
                .expect_accepted()
        })
        .collect();
    receiver.wait_for_delivered(&ids, WITHIN);
    for request in receiver.received() {
        assert_eq!(
            request.header("webhook-id"),
            Some(request.event_id().as_str())
        );
        if let Err(why) = verify_with_standard_webhooks(secret, &request) {
            panic!("the reference library refused our signature:\n{why}");
        }
        // And the check is real: one changed byte fails it.
        let mut tampered = request.clone();
        tampered.body[10] ^= 1;
        assert!(verify_with_standard_webhooks(secret, &tampered).is_err());
        let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(verify_with_standard_webhooks(other, &request).is_err());
    }
}

#[test]
fn a_hung_sink_in_one_workspace_does_not_hold_back_another() {
    let hung = Receiver::start(Mode::Hang);
    let config = Config::new()
        .workspace(
            Workspace::new("slow")
                .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
                .http_sink("crm", HttpSink::new(hung.url()).timeout("60s"))
                .route(Route::new("*", &["crm"])),
        )
        .workspace(
            Workspace::new("fast")
                .vendor(Vendor::new("watsi", &["secret-two-for-e2e"]))
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        );
    let dir = TestDir::new();
    let server = dir.serve(&config);
    for n in 0..5 {
        server
            .deliver(
                "slow",
                &WATSI,
                "secret-one-for-e2e",
                &watsi_body(n, "slow"),
                &[],
            )
            .expect_accepted();
    }
    hung.wait_until("the slow workspace's sink to be stuck", WITHIN, |r| {
        !r.is_empty()
    });
    let ids: Vec<String> = (0..20)
        .map(|n| {
            server
                .deliver(
                    "fast",
                    &WATSI,
                    "secret-two-for-e2e",
                    &watsi_body(n, "fast"),
                    &[],
                )
                .expect_accepted()
        })
        .collect();
    let landed = dir.sink("fast", "events").wait_for_count(ids.len());
    let landed: Vec<&str> = landed.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(landed, ids);
    assert!(
        hung.received().iter().all(|r| r.answered.is_none()),
        "the slow sink must still be hanging while the fast one delivered"
    );
}

#[test]
fn every_acknowledged_event_survives_sigkill_under_load() {
    const KILLS: usize = 4;
    const CLIENTS: usize = 4;
    let receiver = Receiver::start(Mode::Accept);
    let (dir, config) = one_sink(HttpSink::new(receiver.url()));
    let mut server = dir.serve(&config);
    let load = Load::start(server.addr(), CLIENTS, "secret-one-for-e2e", |client, n| {
        watsi_body(n, &format!("crash{client}"))
    });
    for _ in 0..KILLS {
        // Kill at a random point under load: after a random number of further acks.
        load.wait_for(load.count() + 20 + fastrand::usize(..60), WITHIN, &server);
        server.kill();
        server.restart();
        load.point_at(server.addr());
    }
    load.wait_for(load.count() + 20, WITHIN, &server);
    let acknowledged = load.stop();
    let delivered = receiver.wait_for_delivered(&acknowledged, Duration::from_secs(60));
    let unique: std::collections::HashSet<&String> = delivered.iter().collect();
    let duplicates = delivered.len() - unique.len();
    let stray = unique.len() - acknowledged.len();
    println!(
        "crash safety: {} acknowledged, all delivered; {} deliveries in all, {duplicates} duplicate(s), \
         {stray} delivered but never acknowledged (killed mid-answer), over {KILLS} SIGKILLs",
        acknowledged.len(),
        delivered.len()
    );
}

#[test]
fn pending_retries_and_their_attempts_survive_a_restart() {
    let receiver = Receiver::start(Mode::Fail(503));
    let (dir, config) = one_sink(HttpSink::new(receiver.url()).retry(&["50ms"; 200]));
    let mut server = dir.serve(&config);
    let id = server
        .deliver(
            "acme",
            &WATSI,
            "secret-one-for-e2e",
            &watsi_body(0, "restart"),
            &[],
        )
        .expect_accepted();
    // A worker commits each pass's records before its next attempt, so once three attempts are
    // recorded the first two are on disk whenever the kill lands.
    let attempts = |server: &Server| {
        let event = admin(server, "GET", &format!("/admin/events/{id}"));
        event["deliveries"][0]["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let deadline = Instant::now() + WITHIN;
    while attempts(&server).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "three attempts were never recorded"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    receiver.set_mode(Mode::Accept);
    server.restart();
    receiver.wait_for_delivered(std::slice::from_ref(&id), WITHIN);

    let kept = attempts(&server);
    let refused = kept
        .iter()
        .filter(|a| a["outcome"] == "answered HTTP 503")
        .count();
    assert!(
        refused >= 2,
        "attempts made before the kill were lost: {kept:?}"
    );
    assert_eq!(
        kept.last().map(|a| &a["outcome"]),
        Some(&json!("delivered"))
    );
}

#[test]
fn a_thousand_dead_letters_page_through_the_api_and_the_cli_and_one_can_be_deleted() {
    let receiver = Receiver::start(Mode::Fail(422));
    let (dir, config) = one_sink(HttpSink::new(receiver.url()));
    let server = dir.serve(&config);
    let accepted: Vec<String> = (0..1000)
        .map(|n| {
            server
                .deliver(
                    "acme",
                    &WATSI,
                    "secret-one-for-e2e",
                    &watsi_body(n, "paged"),
                    &[],
                )
                .expect_accepted()
        })
        .collect();
    wait_for_queue(&server, "1000 dead letters", |crm| crm["dead"] == 1000);

    let base = "/admin/workspaces/acme/sinks/crm/dead-letters";
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(id) => format!("{base}?limit=300&after={id}"),
            None => format!("{base}?limit=300"),
        };
        let page = admin(&server, "GET", &path);
        assert_eq!(page["total"], 1000);
        let letters = page["dead_letters"].as_array().expect("a page");
        assert!(letters.len() <= 300);
        seen.extend(
            letters
                .iter()
                .map(|l| l["event_id"].as_str().expect("an id").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(seen, expected, "every dead letter once, oldest first");

    // The CLI pages the same way.
    let url = server.admin_url("");
    let out = run(switchyard_command([
        "dlq",
        "list",
        "--workspace",
        "acme",
        "--sink",
        "crm",
        "--limit",
        "2",
        "--url",
        &url,
        "--token",
        TOKEN,
    ]));
    out.expect_success("dlq list");
    let page: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(page["dead_letters"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["next"], expected[1].as_str());

    run(switchyard_command([
        "dlq",
        "delete",
        "--workspace",
        "acme",
        "--sink",
        "crm",
        "--id",
        &expected[0],
        "--url",
        &url,
        "--token",
        TOKEN,
    ]))
    .expect_success("dlq delete");
    wait_for_queue(&server, "999 dead letters", |crm| crm["dead"] == 999);
    let bad = server.operator_request(
        "GET",
        &format!("{base}?limit=0"),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn a_raw_sink_relays_the_vendors_bytes_and_content_type_signed() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = Receiver::start(Mode::Accept);
    let (dir, config) = one_sink(
        HttpSink::new(receiver.url())
            .secret(secret)
            .setting("format", "raw"),
    );
    let server = dir.serve(&config);
    // Line breaks, spacing, escapes and number spellings a JSON parser would not keep.
    let body = "{\n  \"id\": \"evt_raw_1\",\r\n  \"type\": \"message.received\",\n  \
                \"data\": {\"text\": \"ol\\u00e1\", \"n\": 1.50e0}\n}\n";
    let signature = WATSI.signature("secret-one-for-e2e", body.as_bytes());
    let content_type = "application/json; charset=UTF-8";
    let id = server
        .post(
            &hook("acme", "watsi"),
            &[("Content-Type", content_type), (WATSI.header, &signature)],
            body.as_bytes(),
        )
        .expect_accepted();
    let received = receiver.wait_until("the relayed body", WITHIN, |r| {
        r.iter().any(|r| r.answered == Some(204))
    });
    let request = &received[0];
    assert_eq!(request.body, body.as_bytes(), "byte for byte");
    assert_eq!(request.header("content-type"), Some(content_type));
    assert_eq!(request.header("x-switchyard-id"), Some(id.as_str()));
    assert_eq!(request.header("x-switchyard-workspace"), Some("acme"));
    assert_eq!(request.header("x-switchyard-vendor"), Some("watsi"));
    assert_eq!(
        request.header("x-switchyard-type"),
        Some("message.received")
    );
    assert_eq!(request.header("webhook-id"), Some(id.as_str()));
    if let Err(why) = verify_with_standard_webhooks(secret, request) {
        panic!("the reference library refused the relayed body's signature:\n{why}");
    }
}

#[test]
fn a_rate_limited_sink_gets_every_event_of_a_burst() {
    let receiver = Receiver::start(Mode::Accept);
    let (dir, config) = one_sink(HttpSink::new(receiver.url()).setting("rate", "20/s"));
    let server = dir.serve(&config);
    let ids: Vec<String> = (0..30)
        .map(|n| {
            server
                .deliver(
                    "acme",
                    &WATSI,
                    "secret-one-for-e2e",
                    &watsi_body(n, "paced"),
                    &[],
                )
                .expect_accepted()
        })
        .collect();
    let delivered = receiver.wait_for_delivered(&ids, WITHIN);
    assert_eq!(delivered.len(), ids.len(), "each once: {delivered:?}");
    wait_for_queue(&server, "an empty queue", |crm| crm["queued"] == 0);
}

#[test]
fn a_sink_down_for_disable_after_is_disabled_alerted_and_resumes_whole_when_enabled() {
    let alert_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let alerts = Receiver::start(Mode::Accept);
    let receiver = Receiver::start(Mode::Fail(503));
    let config = Config::new()
        .admin_token(TOKEN)
        .alerts(alerts.url(), alert_secret)
        .workspace(
            Workspace::new("acme")
                .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
                .http_sink(
                    "crm",
                    HttpSink::new(receiver.url())
                        .max_backoff("50ms")
                        .setting("disable_after", "300ms"),
                )
                .route(Route::new("*", &["crm"])),
        );
    let dir = TestDir::new();
    let server = dir.serve(&config);
    let ids: Vec<String> = (0..3)
        .map(|n| {
            server
                .deliver(
                    "acme",
                    &WATSI,
                    "secret-one-for-e2e",
                    &watsi_body(n, "off"),
                    &[],
                )
                .expect_accepted()
        })
        .collect();
    let crm = wait_for_queue(&server, "disabled", |crm| crm["state"] == "disabled");
    assert_eq!(crm["queued"], 3, "a disabled sink keeps its queue: {crm}");
    assert_eq!(crm["dead"], 0);
    let metrics = server.operator_get("/metrics").body;
    assert!(
        metrics
            .contains(r#"switchyard_sink_state{workspace="acme",sink="crm",state="disabled"} 1"#)
            && metrics.contains(
                r#"switchyard_sink_state{workspace="acme",sink="crm",state="healthy"} 0"#
            ),
        "{metrics}"
    );
    let kinds = |requests: &[SinkRequest]| -> Vec<String> {
        (requests.iter())
            .map(|r| {
                let alert: Value = serde_json::from_slice(&r.body).unwrap();
                alert["type"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let sent = alerts.wait_until("two alerts", WITHIN, |r| r.len() >= 2);
    assert_eq!(kinds(&sent), ["sink.failing", "sink.disabled"]);
    let disabled: Value = serde_json::from_slice(&sent[1].body).unwrap();
    assert_eq!(disabled["workspace"], "acme");
    assert_eq!(disabled["sink"], "crm");
    assert_eq!(disabled["state"], "disabled");
    assert!(
        disabled["error"].as_str().unwrap().contains("503"),
        "{disabled}"
    );
    for alert in &sent {
        if let Err(why) = verify_with_standard_webhooks(alert_secret, alert) {
            panic!("the reference library refused the alert's signature:\n{why}");
        }
    }

    receiver.set_mode(Mode::Accept);
    let admin_url = server.admin_url("");
    let enable = run(switchyard_command([
        "sink",
        "enable",
        "--workspace",
        "acme",
        "--sink",
        "crm",
        "--url",
        admin_url.as_str(),
        "--token",
        TOKEN,
    ]));
    enable.expect_success("sink enable");
    let answer: Value = serde_json::from_str(&enable.stdout).expect("the answer is JSON");
    assert_eq!(answer["was"], "disabled", "{answer}");
    receiver.wait_for_delivered(&ids, WITHIN);
    wait_for_queue(&server, "healthy and empty", |crm| {
        crm["state"] == "healthy" && crm["queued"] == 0
    });
    let sent = alerts.wait_until("the recovery alert", WITHIN, |r| r.len() >= 3);
    assert_eq!(
        kinds(&sent),
        ["sink.failing", "sink.disabled", "sink.recovered"]
    );
}
