//! A store that cannot take writes: the server answers 503 with Retry-After (so the vendor
//! retries), reports not ready, keeps serving, and loses nothing it had already accepted.

use switchyard_e2e::*;

#[test]
fn a_store_that_cannot_take_writes_answers_503_and_keeps_what_it_accepted() {
    let dir = TestDir::new();
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &["secret-one-for-e2e"]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    );
    // sled's log cannot grow past this (512 KiB with dash's 512-byte blocks, 1 MiB with
    // bash's), like a disk that fills up; the sink file stays well under it.
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
    assert_eq!(server.get("/readyz").status, 503);
    assert_eq!(server.get("/healthz").status, 200);

    let landed = dir.sink("acme", "events").wait_for_count(accepted.len());
    let landed: Vec<&str> = landed.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(landed, accepted, "every accepted event, once, in order");
}
