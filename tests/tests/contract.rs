//! The HTTP contract of DESIGN.md that is not vendor-specific: workspaces kept apart, 404, 405,
//! 413 (however the body is framed), early answers that leave keep-alive clients a usable
//! connection, 400, unrouted events, allow_ips, routing to a sink once, error bodies that never
//! carry a secret, and the stdout sink.

use std::time::Duration;

use switchyard_e2e::*;

const WS: &str = "acme";

/// A Watsi event with this id, type and text.
fn watsi_event(id: &str, event_type: &str, text: &str) -> String {
    json!({"id": id, "type": event_type, "data": {"text": text}}).to_string()
}

/// A raw HTTP/1.1 request head (with `Connection: close`), ready for a body.
fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// One chunk of a chunked body.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[test]
fn two_workspaces_with_one_vendor_and_different_secrets_stay_apart() {
    let dir = TestDir::new();
    let workspace = |name: &str, secret: &str| {
        Workspace::new(name)
            .vendor(Vendor::new("watsi", &[secret]))
            .file_sink("events")
            .route(Route::new("*", &["events"]))
    };
    let server = dir.serve(
        &Config::new()
            .workspace(workspace("alpha", "alpha-secret-for-e2e"))
            .workspace(workspace("beta", "beta-secret-for-e2e")),
    );
    // One event, as the vendor would send it to both tenants.
    let body = watsi_event("evt_shared", "message.received", "same event");

    server
        .deliver("beta", &WATSI, "alpha-secret-for-e2e", &body, &[])
        .expect_error(401, "signature_mismatch");
    server
        .deliver("alpha", &WATSI, "beta-secret-for-e2e", &body, &[])
        .expect_error(401, "signature_mismatch");
    let alpha = server
        .deliver("alpha", &WATSI, "alpha-secret-for-e2e", &body, &[])
        .expect_accepted();
    // Not a duplicate: each workspace has its own dedupe keys.
    let beta = server
        .deliver("beta", &WATSI, "beta-secret-for-e2e", &body, &[])
        .expect_accepted();
    assert_ne!(alpha, beta);

    for (name, secret, own, other) in [
        ("alpha", "alpha-secret-for-e2e", &alpha, &beta),
        ("beta", "beta-secret-for-e2e", &beta, &alpha),
    ] {
        let later = watsi_event(&format!("evt_later_{name}"), "message.status", name);
        let later = server
            .deliver(name, &WATSI, secret, &later, &[])
            .expect_accepted();
        let events = dir.sink(name, "events").wait_for(&later);
        assert_eq!(events.len(), 2, "{name}: {events:#?}");
        assert_eq!(count_id(&events, own), 1, "{name}: {events:#?}");
        assert_eq!(count_id(&events, other), 0, "{name}: {events:#?}");
        assert!(
            events.iter().all(|e| e["workspace"] == name),
            "{name}: {events:#?}"
        );
    }
}

#[test]
fn unknown_workspaces_vendors_and_paths_are_404() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new().workspace(
            Workspace::new(WS)
                .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        ),
    );
    let body = watsi_event("evt_404", "message.received", "hi");
    server
        .deliver("nobody", &WATSI, "watsi-secret-for-e2e", &body, &[])
        .expect_error(404, "unknown_workspace");
    // DocsSmith's plugin is loaded, but this workspace does not enable it.
    server
        .deliver(WS, &DOCSSMITH, "watsi-secret-for-e2e", &body, &[])
        .expect_error(404, "unknown_vendor");
    let nosuch = VendorScheme {
        name: "nosuchvendor",
        ..WATSI
    };
    server
        .deliver(WS, &nosuch, "watsi-secret-for-e2e", &body, &[])
        .expect_error(404, "unknown_vendor");
    for path in ["/", "/hooks", "/hooks/acme", "/hooks/acme/watsi/extra"] {
        let reply = server.post(path, &[], body.as_bytes());
        assert_eq!(reply.status, 404, "{reply:?}");
        assert!(reply.json()["error"].is_string(), "{reply:?}");
    }
    // The control: the same delivery to the right place is fine.
    server
        .deliver(WS, &WATSI, "watsi-secret-for-e2e", &body, &[])
        .expect_accepted();
}

#[test]
fn methods_other_than_post_and_the_handshake_are_405() {
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().workspace(Workspace::standard(WS)));
    let body = watsi_event("evt_405", "message.received", "hi");
    let signature = WATSI.signature(&secret(WS, "watsi", 1), body.as_bytes());
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Watsi-Signature", signature.as_str()),
    ];
    let path = hook(WS, "watsi");
    for method in ["PUT", "DELETE", "PATCH"] {
        let reply = server.request(method, &path, &headers, Some(body.as_bytes()));
        reply.expect_error(405, "method_not_allowed");
        let allow = reply.header("allow").unwrap_or_default();
        assert!(allow.contains("POST"), "{method}: Allow {allow:?}");
    }
    // Watsi has no handshake, so GET is not allowed either.
    let reply = server.request("GET", &path, &headers, None);
    reply.expect_error(405, "method_not_allowed");
    assert!(reply.header("allow").unwrap_or_default().contains("POST"));
    // The same delivery POSTed is fine.
    server
        .post(&path, &headers, body.as_bytes())
        .expect_accepted();
}

#[test]
fn bodies_over_max_body_bytes_are_413_however_they_are_framed() {
    const LIMIT: usize = 1024;
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new()
            .max_body_bytes(LIMIT)
            .workspace(Workspace::standard(WS)),
    );
    let key = secret(WS, "watsi", 1);
    let path = hook(WS, "watsi");
    let sized = |id: &str, size: usize| {
        let text = "x".repeat(size - watsi_event(id, "message.received", "").len());
        let body = watsi_event(id, "message.received", &text);
        assert_eq!(body.len(), size);
        body
    };

    // At the limit: accepted. One byte over: refused.
    let at_limit = sized("evt_at_limit", LIMIT);
    server
        .deliver(WS, &WATSI, &key, &at_limit, &[])
        .expect_accepted();
    let over = sized("evt_over", LIMIT + 1);
    server
        .deliver(WS, &WATSI, &key, &over, &[])
        .expect_error(413, "body_too_large");

    let signed_head = |body: &str, framing: &[(&str, &str)]| {
        let signature = WATSI.signature(&key, body.as_bytes());
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-Watsi-Signature", signature.as_str()),
        ];
        headers.extend_from_slice(framing);
        head("POST", &path, &headers)
    };

    // The control for the raw requests below: a small chunked body is read and accepted.
    let small = watsi_event("evt_chunked_small", "message.received", "chunked");
    let mut request = signed_head(&small, &[("Transfer-Encoding", "chunked")]);
    let (a, b) = small.as_bytes().split_at(10);
    request.extend(chunk(a));
    request.extend(chunk(b));
    request.extend_from_slice(LAST_CHUNK);
    server.raw(&request).expect_accepted();

    // Chunked, no Content-Length, twice the limit.
    let big = sized("evt_chunked_big", 2 * LIMIT);
    let mut request = signed_head(&big, &[("Transfer-Encoding", "chunked")]);
    for part in big.as_bytes().chunks(300) {
        request.extend(chunk(part));
    }
    request.extend_from_slice(LAST_CHUNK);
    server.raw(&request).expect_error(413, "body_too_large");

    // Content-Length says 100, under the limit, but the body is chunked and twice the limit.
    let mut request = signed_head(
        &big,
        &[("Content-Length", "100"), ("Transfer-Encoding", "chunked")],
    );
    for part in big.as_bytes().chunks(300) {
        request.extend(chunk(part));
    }
    request.extend_from_slice(LAST_CHUNK);
    server.raw(&request).expect_error(413, "body_too_large");

    // A huge declared length is refused from the headers alone: no body byte is ever sent.
    let request = signed_head(&big, &[("Content-Length", "1000000000000")]);
    server.raw(&request).expect_error(413, "body_too_large");

    // A chunked body that passes the limit and never ends is refused at once, not after it is
    // read whole (it never would be).
    let mut request = signed_head(&big, &[("Transfer-Encoding", "chunked")]);
    request.extend(chunk(&big.as_bytes()[..LIMIT + 200]));
    server.raw(&request).expect_error(413, "body_too_large");

    // Only the two accepted events exist: once a later one is written, so is every earlier one.
    let later = server
        .deliver(WS, &WATSI, &key, &watsi_event("evt_last", "x", "y"), &[])
        .expect_accepted();
    let events = dir.sink(WS, "events").wait_for(&later);
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["vendor_event_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["evt_at_limit", "evt_chunked_small", "evt_last"]);
}

/// Early answers (401 without a signature header, 403, 404, 405, 413) are given from the request
/// head, before the body is read.
/// A keep-alive client that was not told `Connection: close` must then be able to send the rest
/// of its request and its next one on the same connection; otherwise its next delivery fails
/// with a reset instead of an answer.
#[test]
fn an_answer_given_before_the_body_is_read_leaves_a_keep_alive_client_a_usable_connection() {
    const LIMIT: usize = 1024;
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new().max_body_bytes(LIMIT).workspace(
            Workspace::new(WS)
                .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
                .vendor(
                    Vendor::new("whatsable", &["whatsable-secret"]).allow_ips(&["203.0.113.0/24"]),
                )
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        ),
    );
    let small = br#"{"event":"message_status","data":{"status":"sent"}}"#.to_vec();
    // Signed or not, the signature itself is checked only once the body is in.
    let signed = "X-Watsi-Signature: 00\r\n";
    let cases = [
        ("POST", "/hooks/acme/whatsable", "", small.clone(), 403),
        ("POST", "/hooks/nobody/watsi", "", small.clone(), 404),
        ("POST", "/hooks/acme/docssmith", "", small.clone(), 404),
        ("PUT", "/hooks/acme/watsi", "", small.clone(), 405),
        ("POST", "/hooks/acme/watsi", "", small, 401),
        (
            "POST",
            "/hooks/acme/watsi",
            signed,
            vec![b' '; LIMIT + 1],
            413,
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, extra, body, status) in cases {
        let mut connection = server.connect();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        connection
            .send(head.as_bytes())
            .expect("cannot send the head");
        // The server may answer from the head alone, or wait for the body first.
        let mut body_sent = false;
        let reply = match connection.read_reply(Duration::from_millis(500)) {
            Received::Reply(reply) => reply,
            Received::TimedOut { .. } => {
                connection.send(&body).expect("cannot send the body");
                body_sent = true;
                match connection.read_reply(REQUEST_TIMEOUT) {
                    Received::Reply(reply) => reply,
                    other => panic!("{method} {path}: no answer: {other:?}"),
                }
            }
            other => panic!("{method} {path}: no answer: {other:?}"),
        };
        assert_eq!(reply.status, status, "{method} {path}: {reply:?}");
        let told_to_close = reply
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if told_to_close {
            continue;
        }
        // Not told to close: the connection must stay open. Closing comes right after the answer
        // when it comes at all, so a short quiet spell tells the two apart.
        if let Received::Closed { error, .. } = connection.read_reply(Duration::from_millis(300)) {
            failures.push(format!(
                "{method} {path}: answered {} without `Connection: close`, {}, then closed the \
                 connection ({})",
                reply.status,
                if body_sent {
                    "after the body"
                } else {
                    "before the body was sent"
                },
                error.unwrap_or_else(|| "end of stream".into()),
            ));
            continue;
        }
        let mut rest = if body_sent { Vec::new() } else { body };
        rest.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let sent = connection.send(&rest);
        match (sent, connection.read_reply(REQUEST_TIMEOUT)) {
            (Ok(()), Received::Reply(next)) if next.status == 200 => {}
            (sent, next) => failures.push(format!(
                "{method} {path}: answered {} without `Connection: close`, then the same \
                 connection failed the rest of the request and a GET /healthz (send: {sent:?}; \
                 then: {next:?})",
                reply.status,
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "a keep-alive client is left with a dead connection:\n{}",
        failures.join("\n")
    );
}

#[test]
fn payloads_the_plugin_cannot_map_are_400_naming_the_problem() {
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().workspace(Workspace::standard(WS)));
    let watsi = secret(WS, "watsi", 1);

    let message = server
        .deliver(WS, &WATSI, &watsi, r#"{"id":"evt_1","type":"#, &[])
        .expect_error(400, "invalid_payload");
    assert!(message.contains("JSON"), "{message}");
    let message = server
        .deliver(WS, &WATSI, &watsi, r#"{"type":"message.received"}"#, &[])
        .expect_error(400, "invalid_payload");
    assert!(message.contains("`id`"), "{message}");
    let message = server
        .deliver(WS, &WATSI, &watsi, r#"{"id":"evt_2"}"#, &[])
        .expect_error(400, "invalid_payload");
    assert!(message.contains("`type`"), "{message}");
    let message = server
        .deliver(
            WS,
            &WHATSSYNC,
            &secret(WS, "whatssync", 1),
            r#"{"id":"msg_1","data":{}}"#,
            &[],
        )
        .expect_error(400, "invalid_payload");
    assert!(message.contains("`event`"), "{message}");
    let message = server
        .deliver(
            WS,
            &WHATSABLE,
            &secret(WS, "whatsable", 1),
            r#"{"event":"","data":{"last_messages":42}}"#,
            &[],
        )
        .expect_error(400, "invalid_payload");
    // An empty type is refused; an optional field of an odd type never is (tests/vendors.rs).
    assert!(message.contains("`event`"), "{message}");

    // The signature is checked first: an unsigned invalid payload is a 401, not a 400.
    server
        .post(&hook(WS, "watsi"), &[], b"not json")
        .expect_error(401, "signature_missing");
}

#[test]
fn an_event_type_no_route_matches_is_unrouted_and_reaches_no_sink() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new().workspace(
            Workspace::new(WS)
                .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
                .file_sink("messages")
                .route(Route::new("message.*", &["messages"])),
        ),
    );
    let odd = watsi_event("evt_odd", "call.missed", "nobody listens");
    let unrouted = server
        .deliver(WS, &WATSI, "watsi-secret-for-e2e", &odd, &[])
        .expect_ok("unrouted");
    // Kept: a repeat is a duplicate of it.
    let again = server
        .deliver(WS, &WATSI, "watsi-secret-for-e2e", &odd, &[])
        .expect_ok("duplicate");
    assert_eq!(again, unrouted);

    let message = watsi_event("evt_msg", "message.received", "routed");
    let routed = server
        .deliver(WS, &WATSI, "watsi-secret-for-e2e", &message, &[])
        .expect_accepted();
    let events = dir.sink(WS, "messages").wait_for(&routed);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(count_id(&events, &unrouted), 0);
}

#[test]
fn allow_ips_that_exclude_the_source_are_403() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new().workspace(
            Workspace::new(WS)
                .vendor(
                    Vendor::new("whatsable", &["whatsable-secret"]).allow_ips(&["203.0.113.0/24"]),
                )
                .vendor(
                    Vendor::new("watsi", &["watsi-secret-for-e2e"])
                        .allow_ips(&["203.0.113.0/24", "127.0.0.0/8"]),
                )
                .vendor(Vendor::new("docssmith", &["docssmith-secret"]).allow_ips(&["127.0.0.1"]))
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        ),
    );
    let body = r#"{"event":"message_status","data":{"message_id":"wamid.ip","status":"sent"}}"#;
    let message = server
        .deliver(WS, &WHATSABLE, "whatsable-secret", body, &[])
        .expect_error(403, "source_not_allowed");
    assert!(message.contains("127.0.0.1"), "{message}");
    // The controls: a list that includes loopback, as a network or as a bare address.
    server
        .deliver(
            WS,
            &WATSI,
            "watsi-secret-for-e2e",
            &watsi_event("evt_ip", "message.received", "ok"),
            &[],
        )
        .expect_accepted();
    server
        .deliver(
            WS,
            &DOCSSMITH,
            "docssmith-secret",
            r#"{"id":"ds_ip","type":"group.created","payload":{"id":"g1"}}"#,
            &[],
        )
        .expect_accepted();
}

#[test]
fn an_event_matching_two_routes_to_one_sink_lands_there_once() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new().workspace(
            Workspace::new(WS)
                .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
                .file_sink("audit")
                .file_sink("all")
                .route(Route::new("message.*", &["audit"]).vendors(&["watsi"]))
                .route(Route::new("*", &["audit", "all"])),
        ),
    );
    let both = server
        .deliver(
            WS,
            &WATSI,
            "watsi-secret-for-e2e",
            &watsi_event("evt_both", "message.received", "twice matched"),
            &[],
        )
        .expect_accepted();
    let later = server
        .deliver(
            WS,
            &WATSI,
            "watsi-secret-for-e2e",
            &watsi_event("evt_later", "contact.updated", "once matched"),
            &[],
        )
        .expect_accepted();
    for sink in ["audit", "all"] {
        let events = dir.sink(WS, sink).wait_for(&later);
        assert_eq!(count_id(&events, &both), 1, "{sink}: {events:#?}");
        assert_eq!(events.len(), 2, "{sink}: {events:#?}");
    }
}

#[test]
fn error_bodies_never_carry_the_secret_or_the_expected_signature() {
    const SECRET: &str = "Zq8-distinctive-SECRET-value-4471";
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new().workspace(
            Workspace::new(WS)
                .vendor(Vendor::new("watsi", &[SECRET]))
                .vendor(Vendor::new("wappcloud", &[SECRET]))
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        ),
    );
    let body = watsi_event("evt_secret", "message.received", "hi");
    let tampered = body.replace("hi", "ho");
    let expected = [
        hmac_sha256_hex(SECRET.as_bytes(), body.as_bytes()),
        hmac_sha256_hex(SECRET.as_bytes(), tampered.as_bytes()),
    ];
    let path = hook(WS, "watsi");
    let signed = WATSI.signature(SECRET, body.as_bytes());
    let mut replies = vec![
        server.post(
            &path,
            &[("X-Watsi-Signature", &signed)],
            tampered.as_bytes(),
        ),
        server.deliver(WS, &WATSI, "guess", &body, &[]),
        server.post(&path, &[], body.as_bytes()),
        server.post(&path, &[("X-Watsi-Signature", "zz")], body.as_bytes()),
        server.deliver(WS, &WATSI, SECRET, "{not json", &[]),
        server.deliver(WS, &WAPPCLOUD, SECRET, "{}", &[]),
        server.request("PUT", &path, &[], Some(body.as_bytes())),
    ];
    replies.push(server.get(&format!("{}?nothing=1", hook(WS, "wappcloud"))));
    for reply in &replies {
        assert!(reply.status >= 400, "{reply:?}");
        assert!(!reply.body.contains(SECRET), "the secret leaked: {reply:?}");
        for signature in &expected {
            assert!(
                !reply.body.contains(signature.as_str()),
                "an expected signature leaked: {reply:?}"
            );
        }
    }
    let log = server.log();
    assert!(!log.contains(SECRET), "the secret is in the log:\n{log}");
}

#[test]
fn the_stdout_sink_prints_one_envelope_per_line() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new().workspace(
            Workspace::new(WS)
                .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
                .stdout_sink("console")
                .route(Route::new("*", &["console"])),
        ),
    );
    let id = server
        .deliver(
            WS,
            &WATSI,
            "watsi-secret-for-e2e",
            &watsi_event("evt_stdout", "message.received", "to stdout"),
            &[],
        )
        .expect_accepted();
    let event = server.wait_for_stdout_event(&id);
    assert_subset(
        &json!({"workspace": WS, "vendor": "watsi", "type": "message.received",
                "vendor_event_id": "evt_stdout", "data": {"text": "to stdout"}}),
        &event,
        "stdout envelope",
    );
}
