//! What an accept promises survives SIGKILL: the dedupe claim (a repeat after a restart on the
//! same data_dir is a duplicate carrying the original id) and the queued delivery (the event
//! reaches its sink after the restart, even if the killed server never wrote it).

use switchyard_e2e::*;

const WS: &str = "acme";

#[test]
fn a_repeat_after_sigkill_and_restart_is_a_duplicate_with_the_original_id() {
    let dir = TestDir::new();
    let mut server = dir.serve(&Config::new().workspace(Workspace::standard(WS)));
    let watsi_key = secret(WS, "watsi", 1);
    let whatsable_key = secret(WS, "whatsable", 1);
    let watsi =
        r#"{"id":"evt_restart","type":"message.received","data":{"text":"before the crash"}}"#;
    let whatsable =
        r#"{"event":"message_status","data":{"message_id":"wamid.restart","status":"read"}}"#;

    let watsi_id = server
        .deliver(WS, &WATSI, &watsi_key, watsi, &[])
        .expect_accepted();
    let whatsable_id = server
        .deliver(WS, &WHATSABLE, &whatsable_key, whatsable, &[])
        .expect_accepted();
    // Killed at once: no graceful shutdown, no chance to flush anything the answer did not.
    server.kill();
    assert!(!server.is_running());
    server.restart();

    let again = server
        .deliver(WS, &WATSI, &watsi_key, watsi, &[])
        .expect_ok("duplicate");
    assert_eq!(again, watsi_id);
    let again = server
        .deliver(WS, &WHATSABLE, &whatsable_key, whatsable, &[])
        .expect_ok("duplicate");
    assert_eq!(again, whatsable_id);
    // And the new server's ids are new.
    let fresh = server
        .deliver(
            WS,
            &WATSI,
            &watsi_key,
            r#"{"id":"evt_after_restart","type":"message.received","data":{}}"#,
            &[],
        )
        .expect_accepted();
    assert!(fresh != watsi_id && fresh != whatsable_id);
}

#[test]
fn events_accepted_just_before_sigkill_reach_their_sink_after_restart() {
    let dir = TestDir::new();
    let mut server = dir.serve(&Config::new().workspace(Workspace::standard(WS)));
    let key = secret(WS, "watsi", 1);
    let ids: Vec<String> = (0..10)
        .map(|i| {
            let body = json!({"id": format!("evt_inflight_{i}"), "type": "message.received", "data": {"n": i}});
            server
                .deliver(WS, &WATSI, &key, &body.to_string(), &[])
                .expect_accepted()
        })
        .collect();
    server.kill();
    server.restart();
    // At least once: each of them arrives, whether the killed server had written it or not.
    let sink = dir.sink(WS, "events");
    for id in &ids {
        let events = sink.wait_for(id);
        assert!(count_id(&events, id) >= 1);
    }
}
