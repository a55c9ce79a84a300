//! Event search (`GET /admin/events`, `switchyard events`) against a real server: each filter
//! (workspace, vendor, type glob, time range, status, sink, and `q` on the vendor event id,
//! delivery id, sender and recipient), newest first, paging, and each sink's status as the
//! lanes, attempts and dead letters say it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchyard_e2e::*;

const TOKEN: &str = "e2e-admin-token-0123";
const SECRET: &str = "secret-one-for-e2e";
const WITHIN: Duration = Duration::from_secs(30);

fn search(server: &Server, query: &str) -> Value {
    let path = format!("/admin/events?{query}");
    let reply = server.operator_request(
        "GET",
        &path,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    );
    if reply.status != 200 {
        reply.fail(&format!("GET {path} should answer 200"));
    }
    reply.json()
}

/// The ids a search answers, in its order.
fn ids(server: &Server, query: &str) -> Vec<String> {
    let page = search(server, query);
    (page["events"].as_array().expect("events").iter())
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Each event's sinks and statuses, as one search answers them.
fn statuses(page: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
    (page["events"].as_array().expect("events").iter())
        .map(|e| {
            let sinks = (e["sinks"].as_array().expect("sinks").iter())
                .map(|s| {
                    (
                        s["sink"].as_str().unwrap().to_owned(),
                        s["status"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (e["id"].as_str().unwrap().to_owned(), sinks)
        })
        .collect()
}

fn message(id: &str, from: &str, text: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"message.received","data":{{"from":"{from}","to":"+4420","text":"{text}"}}}}"#
    )
}

#[test]
fn search_filters_each_field_pages_newest_first_and_tells_each_sinks_status() {
    let crm = Receiver::start(Mode::FailMatching(500, "poison"));
    let audit = Receiver::start(Mode::FailMatching(503, "later"));
    let hung = Receiver::start(Mode::Hang);
    let config = Config::new()
        .admin_token(TOKEN)
        .workspace(
            Workspace::new("acme")
                .vendor(Vendor::new("watsi", &[SECRET]))
                .http_sink("crm", HttpSink::new(crm.url()).retry(&["20ms", "20ms"]))
                .http_sink("audit", HttpSink::new(audit.url()).retry(&["1h"]))
                .http_sink("hung", HttpSink::new(hung.url()).timeout("1h"))
                .route(Route::new("*", &["crm", "audit"]))
                .route(Route::new("message.status", &["hung"])),
        )
        .workspace(
            Workspace::new("globex")
                .vendor(Vendor::new("watsi", &[SECRET]))
                .http_sink("crm", HttpSink::new(crm.url()))
                .route(Route::new("*", &["crm"])),
        );
    let dir = TestDir::new();
    let server = dir.serve(&config);
    let send = |ws: &str, body: &str, extra: &[(&str, &str)]| {
        server
            .deliver(ws, &WATSI, SECRET, body, extra)
            .expect_accepted()
    };
    let plain = send("acme", &message("evt_plain", "+5511", "hello"), &[]);
    let poison = send("acme", &message("evt_poison", "+1555", "poison"), &[]);
    let status = send(
        "acme",
        r#"{"type":"message.status","data":{"message_id":"wamid.1","status":"DELIVERED"}}"#,
        &[("X-Watsi-Delivery-Id", "dlv_77")],
    );
    let other = send("globex", &message("evt_globex", "+1555", "hi"), &[]);
    crm.wait_for_delivered(&[plain.clone(), status.clone(), other.clone()], WITHIN);
    audit.wait_for_delivered(&[plain.clone(), poison.clone(), status.clone()], WITHIN);
    // Last, so that the audit sink's backing off holds back nothing else.
    let later = send("acme", &message("evt_later", "+1555", "later"), &[]);
    crm.wait_for_delivered(std::slice::from_ref(&later), WITHIN);

    let expected: BTreeMap<String, BTreeMap<String, String>> = [
        (&plain, vec![("crm", "delivered"), ("audit", "delivered")]),
        (&poison, vec![("crm", "dead"), ("audit", "delivered")]),
        (
            &status,
            vec![
                ("crm", "delivered"),
                ("audit", "delivered"),
                ("hung", "pending"),
            ],
        ),
        (&later, vec![("crm", "delivered"), ("audit", "retrying")]),
    ]
    .into_iter()
    .map(|(id, sinks)| {
        let sinks = sinks
            .into_iter()
            .map(|(s, st)| (s.to_owned(), st.to_owned()))
            .collect();
        (id.clone(), sinks)
    })
    .collect();
    let deadline = Instant::now() + WITHIN;
    let all = loop {
        let page = search(&server, "workspace=acme");
        if statuses(&page) == expected {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "statuses never settled: {page:#}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    // Newest first, with each event's fields.
    let newest_first = [&later, &status, &poison, &plain].map(String::clone);
    assert_eq!(ids(&server, "workspace=acme"), newest_first);
    let first = &all["events"][3];
    assert_eq!(
        (
            &first["workspace"],
            &first["vendor"],
            &first["type"],
            &first["vendor_event_id"]
        ),
        (
            &json!("acme"),
            &json!("watsi"),
            &json!("message.received"),
            &json!("evt_plain")
        ),
        "{all:#}"
    );
    assert_eq!(all["events"][1]["vendor_event_id"], Value::Null, "{all:#}");
    assert_eq!(all["next"], Value::Null);

    assert_eq!(ids(&server, "workspace=globex"), vec![other.clone()]);
    assert_eq!(ids(&server, "vendor=watsi").len(), 5);
    assert!(ids(&server, "vendor=whatsable").is_empty());
    assert_eq!(ids(&server, "type=message.s*"), vec![status.clone()]);
    assert_eq!(
        ids(&server, "workspace=acme&type=message.r*"),
        [&later, &poison, &plain].map(String::clone)
    );
    assert_eq!(ids(&server, "q=evt_poison"), vec![poison.clone()]);
    assert_eq!(ids(&server, "q=dlv_77"), vec![status.clone()]);
    assert_eq!(ids(&server, "q=%2B5511"), vec![plain.clone()]);
    assert_eq!(
        ids(&server, "workspace=acme&q=%2B4420"),
        [&later, &poison, &plain].map(String::clone)
    );
    assert!(
        ids(&server, "q=evt").is_empty(),
        "part of an id is no match"
    );

    assert_eq!(ids(&server, "status=dead"), vec![poison.clone()]);
    assert_eq!(ids(&server, "status=retrying"), vec![later.clone()]);
    assert_eq!(ids(&server, "status=pending"), vec![status.clone()]);
    assert_eq!(
        ids(&server, "workspace=acme&status=delivered&sink=crm"),
        [&later, &status, &plain].map(String::clone)
    );
    let hung_only = search(&server, "sink=hung");
    assert_eq!(
        hung_only["events"][0]["sinks"],
        json!([{"sink": "hung", "status": "pending"}]),
        "{hung_only:#}"
    );
    assert_eq!(hung_only["events"].as_array().map(Vec::len), Some(1));

    // The time range, inclusive at both ends, on when each event was accepted (its id's
    // time): exactly the events accepted then.
    let accepted = |id: &str| ulid::Ulid::from_string(id).expect("a ULID").timestamp_ms();
    let at = accepted(&poison);
    let time = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(at));
    let window = |keep: fn(u64, u64) -> bool| -> Vec<String> {
        (newest_first.iter())
            .filter(|id| keep(accepted(id), at))
            .cloned()
            .collect()
    };
    let since = window(|t, at| t >= at);
    let until = window(|t, at| t <= at);
    assert!(since.contains(&poison) && until.contains(&poison));
    assert_eq!(ids(&server, &format!("workspace=acme&since={time}")), since);
    assert_eq!(ids(&server, &format!("workspace=acme&until={time}")), until);
    assert_eq!(
        ids(
            &server,
            &format!("workspace=acme&since={time}&until={time}")
        ),
        window(|t, at| t == at)
    );
    assert!(ids(&server, "until=2001-01-01T00:00:00Z").is_empty());

    // Paging: `next` leads to the following page, and a page that is not full ends it.
    let page = search(&server, "workspace=acme&limit=3");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(3));
    let next = page["next"]
        .as_str()
        .expect("a full page has a next")
        .to_owned();
    assert_eq!(next, poison);
    let rest = search(&server, &format!("workspace=acme&limit=3&after={next}"));
    assert_eq!(
        statuses(&rest).into_keys().collect::<Vec<_>>(),
        vec![plain.clone()]
    );
    assert_eq!(rest["next"], Value::Null);

    // Problems are named.
    for (query, named) in [
        ("status=lost", "status"),
        ("since=monday", "RFC 3339"),
        ("colour=red", "colour"),
    ] {
        let reply = server.operator_request(
            "GET",
            &format!("/admin/events?{query}"),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
        );
        let message = reply.expect_error(400, "invalid_query");
        assert!(message.contains(named), "{query}: {message}");
    }
}
