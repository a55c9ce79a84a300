//! Routing by what an event holds: `match.where` sends each event to the sinks whose
//! conditions it meets, and nowhere (answered `unrouted`) when it meets none;
//! `switchyard route test` shows, without a server, which route matches a body and why not.

use std::time::{Duration, Instant};

use switchyard_e2e::*;

const TOKEN: &str = "e2e-admin-token-0123";
const SECRET: &str = "secret-one-for-e2e";
const WITHIN: Duration = Duration::from_secs(30);

fn status(n: usize, status: &str) -> String {
    format!(
        r#"{{"id":"evt_status_{n}","type":"message.status","data":{{"message_id":"m{n}","status":"{status}"}}}}"#
    )
}

fn received(n: usize, from: &str) -> String {
    format!(
        r#"{{"id":"evt_in_{n}","type":"message.received","data":{{"message_id":"m{n}","from":"{from}","text":"hi"}}}}"#
    )
}

/// Support gets failed statuses, Brazil gets what +55 numbers send, audit gets failures or
/// anything from Brazil that is not a status.
fn teams(support: &Receiver, brazil: &Receiver) -> Config {
    Config::new().admin_token(TOKEN).workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[SECRET]))
            .http_sink("support", HttpSink::new(support.url()))
            .http_sink("brazil", HttpSink::new(brazil.url()))
            .route(
                Route::new("message.*", &["support"])
                    .filter("{ data.status: { in: [failed, undelivered] } }"),
            )
            .route(Route::new("message.received", &["brazil"]).filter(
                "{ all: [ { data.from: { prefix: \"+55\" } }, { not: { data.text: { exists: false } } } ] }",
            )),
    )
}

/// Waits until no sink owes anything: every routed event has been delivered.
fn drained(server: &Server) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let reply = server.operator_request(
            "GET",
            "/admin/queues",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
        );
        let queues = reply.json();
        let owed: u64 = (queues["sinks"].as_array().unwrap().iter())
            .map(|s| s["queued"].as_u64().unwrap() + s["in_flight"].as_u64().unwrap())
            .sum();
        if owed == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queues never drained: {queues}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_event_reaches_the_sinks_whose_conditions_it_meets_and_none_reaches_no_sink() {
    let support = Receiver::start(Mode::Accept);
    let brazil = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let server = dir.serve(&teams(&support, &brazil));
    let deliver = |body: &str| server.deliver("acme", &WATSI, SECRET, body, &[]);

    let failed = deliver(&status(1, "FAILED")).expect_accepted();
    let undelivered = deliver(&status(2, "undelivered")).expect_accepted();
    let from_brazil = deliver(&received(3, "+5511999990000")).expect_accepted();
    // A status that is not a failure, and a message from elsewhere: no route takes them.
    let read = deliver(&status(4, "read")).expect_ok("unrouted");
    let from_uk = deliver(&received(5, "+442071234567")).expect_ok("unrouted");

    support.wait_for_delivered(&[failed.clone(), undelivered.clone()], WITHIN);
    brazil.wait_for_delivered(std::slice::from_ref(&from_brazil), WITHIN);
    drained(&server);
    let mut got = support.delivered();
    got.sort();
    let mut expected = vec![failed, undelivered];
    expected.sort();
    assert_eq!(got, expected, "support gets the failures only");
    assert_eq!(brazil.delivered(), [from_brazil], "brazil gets +55 only");
    for id in [read, from_uk] {
        assert!(!support.delivered().contains(&id) && !brazil.delivered().contains(&id));
    }
}

#[test]
fn route_test_shows_each_route_and_why_it_does_not_match() {
    let support = Receiver::start(Mode::Accept);
    let brazil = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let config = dir.write_config(&teams(&support, &brazil));
    let route_test = |body: &str| {
        let file = dir.write("body.json", body);
        run(switchyard_command([
            "route".as_ref(),
            "test".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--workspace".as_ref(),
            "acme".as_ref(),
            "--vendor".as_ref(),
            "watsi".as_ref(),
            "--file".as_ref(),
            file.as_os_str(),
        ]))
    };

    let run = route_test(&status(1, "read"));
    run.expect_success("route test");
    assert_eq!(
        run.stdout,
        "event: type message.status (vendor type message.status), vendor event id evt_status_1\n\
         routes[0] -> support: not matched: data.status is \"read\", not one of [\"failed\", \"undelivered\"]\n\
         routes[1] -> brazil: not matched: type message.status does not match the route's\n\
         sinks: none (the event would be kept as unrouted)\n"
    );
    let run = route_test(&received(2, "+5521988887777"));
    run.expect_success("route test");
    assert!(
        run.stdout
            .contains("routes[0] -> support: not matched: data.status absent")
            && run.stdout.contains("routes[1] -> brazil: matched\n")
            && run.stdout.ends_with("sinks: brazil\n"),
        "{}",
        run.stdout
    );
    route_test("{not json").expect_failure(
        "route test of a body that is not JSON",
        &["the watsi plugin cannot map this body"],
    );
}

#[test]
fn a_where_with_problems_is_refused_at_start_with_file_line_and_key() {
    let dir = TestDir::new();
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[SECRET]))
            .stdout_sink("log")
            .route(
                Route::new("*", &["log"])
                    .filter("{ data.from: { prefix: +55 }, data.x: { near: 1 } }"),
            ),
    );
    let path = dir.write_config(&config);
    let run = check(&path);
    let at = format!("{}:", path.display());
    run.expect_failure(
        "check of a bad where",
        &[
            &at,
            "workspaces.acme.routes[0].match.where.data.from.prefix: `prefix` matches text",
            "workspaces.acme.routes[0].match.where.data.x.near: unknown operator `near`",
        ],
    );
    assert_eq!(run.status.code(), Some(78));
}
