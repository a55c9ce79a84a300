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
