//! Each of the five vendors, with payloads from its seed document (/work/shared/seeds), through
//! one table-driven contract: refused when tampered, signed with a wrong secret, unsigned or
//! malformed; accepted when valid; a duplicate when repeated; accepted under the rotated secret;
//! and written once each to the workspace's sink as the canonical envelope.
//! Then the two vendor specifics: Wappcloud's GET handshake and WhatsAble's renamed header.

use switchyard_e2e::*;

const WS: &str = "acme";

/// One delivery and what its envelope must hold (a subset: see [`assert_subset`]).
struct Delivery {
    body: &'static str,
    headers: &'static [(&'static str, &'static str)],
    expect: Value,
}

struct VendorCase {
    vendor: VendorScheme,
    /// At least two: the first is refused, accepted and repeated; the second is signed with the
    /// rotated secret; every one must land in the sink exactly once.
    deliveries: Vec<Delivery>,
}

/// Changes the body's last letter or digit: same length, still JSON, different bytes.
fn tamper(body: &str) -> String {
    let mut bytes = body.as_bytes().to_vec();
    let at = bytes
        .iter()
        .rposition(u8::is_ascii_alphanumeric)
        .expect("a body with a letter");
    bytes[at] = match bytes[at] {
        b'z' => b'a',
        b'Z' => b'A',
        b'9' => b'0',
        c => c + 1,
    };
    String::from_utf8(bytes).expect("ASCII change keeps UTF-8")
}

fn vendor_contract(case: VendorCase) {
    assert!(case.deliveries.len() >= 2, "a case needs two deliveries");
    let v = case.vendor;
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().workspace(Workspace::standard(WS)));
    let current = secret(WS, v.name, 1);
    let rotated = secret(WS, v.name, 2);
    let first = &case.deliveries[0];
    let path = hook(WS, v.name);
    let signature = v.signature(&current, first.body.as_bytes());
    let post = |signature: Option<&str>, body: &str| {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend_from_slice(first.headers);
        if let Some(signature) = signature {
            headers.push((v.header, signature));
        }
        server.post(&path, &headers, body.as_bytes())
    };

    // Refusals come first: none of them may claim the event's dedupe key.
    let tampered = tamper(first.body);
    assert_ne!(tampered, first.body);
    post(Some(&signature), &tampered).expect_error(401, "signature_mismatch");
    let wrong = v.signature("not-the-secret", first.body.as_bytes());
    post(Some(&wrong), first.body).expect_error(401, "signature_mismatch");
    let message = post(None, first.body).expect_error(401, "signature_missing");
    assert!(
        message
            .to_ascii_lowercase()
            .contains(&v.header.to_ascii_lowercase()),
        "the message does not name the header {}: {message}",
        v.header
    );
    let hex = hmac_sha256_hex(current.as_bytes(), first.body.as_bytes());
    let mut malformed = vec![
        format!("{}not-hex-at-all", v.prefix),
        format!("{}{}", v.prefix, &hex[..16]),
    ];
    if !v.prefix.is_empty() {
        malformed.push(hex.clone());
    }
    for value in &malformed {
        post(Some(value), first.body).expect_error(401, "signature_malformed");
    }

    // Valid, then repeated (under either secret): one event.
    let first_id = post(Some(&signature), first.body).expect_accepted();
    let again = post(Some(&signature), first.body).expect_ok("duplicate");
    assert_eq!(again, first_id, "a duplicate answers the first id");
    let again = post(
        Some(&v.signature(&rotated, first.body.as_bytes())),
        first.body,
    )
    .expect_ok("duplicate");
    assert_eq!(again, first_id, "a duplicate answers the first id");

    // The others: the second under the rotated secret.
    let mut ids = vec![first_id];
    for (i, d) in case.deliveries.iter().enumerate().skip(1) {
        let key = if i == 1 { &rotated } else { &current };
        ids.push(
            server
                .deliver(WS, &v, key, d.body, d.headers)
                .expect_accepted(),
        );
    }
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "ids are not unique: {ids:?}");

    // Once the last is written, every earlier one is too (the sink's queue is in id order).
    let events = dir.sink(WS, "events").wait_for(ids.last().unwrap());
    assert_eq!(
        events.len(),
        case.deliveries.len(),
        "expected each delivery once: {events:#?}"
    );
    for ((event, delivery), id) in events.iter().zip(&case.deliveries).zip(&ids) {
        let context = format!("{} envelope for {}", v.name, delivery.body);
        assert_subset(
            &json!({"id": id, "workspace": WS, "vendor": v.name}),
            event,
            &context,
        );
        assert_subset(&delivery.expect, event, &context);
        let raw: Value = serde_json::from_str(delivery.body).unwrap();
        assert_eq!(event["raw"], raw, "{context}: raw");
        for field in [
            "type",
            "vendor_type",
            "vendor_event_id",
            "dedupe_key",
            "dedupe_basis",
            "occurred_at",
            "received_at",
            "data",
        ] {
            assert!(event.get(field).is_some(), "{context}: no `{field}`");
        }
        let key = event["dedupe_key"].as_str().unwrap_or_default();
        assert!(
            key.starts_with(&format!("{WS}/{}/", v.name)),
            "{context}: dedupe_key {key}"
        );
        let received = event["received_at"].as_str().unwrap_or_default();
        assert!(
            received.len() >= 20 && received.ends_with('Z') && received.as_bytes()[10] == b'T',
            "{context}: received_at {received:?} is not RFC 3339 UTC"
        );
    }
}

#[test]
fn watsi() {
    vendor_contract(VendorCase {
        vendor: WATSI,
        deliveries: vec![
            Delivery {
                body: r#"{"id":"evt_01HXYZ123456789","type":"message.received","created_at":"2024-03-23T21:41:44Z","data":{"message_id":"wamid.w1","from":"+15550001","to":"+15550002","text":"Hello","conversation_id":"conv_1","timestamp":"2024-03-23T21:41:40Z","media":{"url":"https://cdn.watsi.ai/m/1.jpg","mime_type":"image/jpeg","caption":"look"},"contact":{"id":"c_1","name":"Ada","phone":"+15550001"}}}"#,
                headers: &[("X-Watsi-Delivery-Id", "dlv_0001")],
                expect: json!({
                    "type": "message.received",
                    "vendor_type": "message.received",
                    "vendor_event_id": "evt_01HXYZ123456789",
                    "dedupe_basis": "event_id",
                    "occurred_at": "2024-03-23T21:41:44Z",
                    "data": {
                        "message_id": "wamid.w1", "from": "+15550001", "to": "+15550002",
                        "text": "Hello", "conversation_id": "conv_1",
                        "sent_at": "2024-03-23T21:41:40Z",
                        "media": {"url": "https://cdn.watsi.ai/m/1.jpg", "mime_type": "image/jpeg", "caption": "look"},
                        "contact": {"id": "c_1", "name": "Ada", "phone": "+15550001"}
                    }
                }),
            },
            Delivery {
                body: r#"{"id":"evt_01HXYZ987654321","type":"message.status","data":{"message_id":"wamid.w1","status":"DELIVERED","timestamp":"2024-03-23T21:41:59Z"}}"#,
                headers: &[("X-Watsi-Delivery-Id", "dlv_0002")],
                expect: json!({
                    "type": "message.status",
                    "vendor_type": "message.status",
                    "vendor_event_id": "evt_01HXYZ987654321",
                    "occurred_at": null,
                    "data": {"message_id": "wamid.w1", "status": "delivered", "at": "2024-03-23T21:41:59Z"}
                }),
            },
            // "Treat unknown future event types as non-fatal": accepted and routed as they are.
            Delivery {
                body: r#"{"id":"evt_01HXYZ555555555","type":"call.missed","data":{"who":"+15550003"}}"#,
                headers: &[],
                expect: json!({
                    "type": "call.missed",
                    "vendor_type": "call.missed",
                    "data": {"who": "+15550003"}
                }),
            },
        ],
    });
}

#[test]
fn whatsable() {
    vendor_contract(VendorCase {
        vendor: WHATSABLE,
        deliveries: vec![
            Delivery {
                body: r#"{
  "event": "incoming_message",
  "data": {
    "last_messages": "[{\"type\":\"user\",\"content\":\"Hello!\",\"timestamp\":\"2024-03-23T21:41:44.477Z\",\"content_type\":\"text\"}]",
    "conversation_paragraph": "User (9:41:44 PM): Hello!",
    "phone_number": "8801734363287",
    "recipient_name": "John Doe",
    "user_id": "6fb11ff2-d9b2-4560-8437-0fe58ec9f4a6",
    "last_message_of_user": "Hello!",
    "last_message_of_bot": "Hi there!",
    "message_type": "text",
    "user_timestamp": 1234567890,
    "bot_timestamp": 1234567890,
    "attachment_url": "https://api.insightssystem.com/vault/attachment.jpg"
  }
}"#,
                headers: &[],
                expect: json!({
                    "type": "message.received",
                    "vendor_type": "incoming_message",
                    // No event id: the body hash is the dedupe basis.
                    "vendor_event_id": null,
                    "dedupe_basis": "body_hash",
                    "occurred_at": "2009-02-13T23:31:30Z",
                    "data": {
                        "message_id": null, "from": "8801734363287", "to": null, "text": "Hello!",
                        "media": {"url": "https://api.insightssystem.com/vault/attachment.jpg", "mime_type": null, "caption": null},
                        "contact": {"id": "6fb11ff2-d9b2-4560-8437-0fe58ec9f4a6", "name": "John Doe", "phone": "8801734363287"},
                        "conversation_id": null,
                        "sent_at": "2009-02-13T23:31:30Z",
                        "history": [{"type": "user", "content": "Hello!", "timestamp": "2024-03-23T21:41:44.477Z", "content_type": "text"}]
                    }
                }),
            },
            Delivery {
                body: r#"{"event":"message_status","data":{"message_id":"wamid.123456789","status":"delivered","timestamp":"2024-03-23T21:41:44.477Z"}}"#,
                headers: &[],
                expect: json!({
                    "type": "message.status",
                    "vendor_type": "message_status",
                    "vendor_event_id": null,
                    "dedupe_basis": "body_hash",
                    "data": {"message_id": "wamid.123456789", "status": "delivered", "at": "2024-03-23T21:41:44.477Z"}
                }),
            },
            // The next transition of the same message: same message_id, a new event.
            Delivery {
                body: r#"{"event":"message_status","data":{"message_id":"wamid.123456789","status":"READ","timestamp":"2024-03-23T21:42:10Z"}}"#,
                headers: &[],
                expect: json!({
                    "type": "message.status",
                    "data": {"message_id": "wamid.123456789", "status": "read", "at": "2024-03-23T21:42:10Z"}
                }),
            },
        ],
    });
}

#[test]
fn whatssync() {
    vendor_contract(VendorCase {
        vendor: WHATSSYNC,
        deliveries: vec![
            // As the document prints it, spacing and all: the signature covers these bytes.
            Delivery {
                body: r#"{
  "event": "message.incoming",
  "id": "msg_123456789",
  "timestamp": "2023-06-15T14:22:33Z",
  "data": {
    "from": "+1234567890",
    "to": "+0987654321",
    "text": "Hello, how are you?",
    "media": null,
    "timestamp": "2023-06-15T14:22:30Z"
  }
}"#,
                headers: &[],
                expect: json!({
                    "type": "message.received",
                    "vendor_type": "message.incoming",
                    "vendor_event_id": "msg_123456789",
                    "dedupe_basis": "event_id",
                    "occurred_at": "2023-06-15T14:22:33Z",
                    "data": {
                        "message_id": null, "from": "+1234567890", "to": "+0987654321",
                        "text": "Hello, how are you?", "media": null, "contact": null,
                        "conversation_id": null, "sent_at": "2023-06-15T14:22:30Z"
                    }
                }),
            },
            Delivery {
                body: r#"{"event":"message.status","id":"status_123456789","timestamp":"2023-06-15T14:23:45Z","data":{"messageId":"msg_987654321","status":"read","timestamp":"2023-06-15T14:23:40Z"}}"#,
                headers: &[],
                expect: json!({
                    "type": "message.status",
                    "vendor_type": "message.status",
                    "vendor_event_id": "status_123456789",
                    "occurred_at": "2023-06-15T14:23:45Z",
                    "data": {"message_id": "msg_987654321", "status": "read", "at": "2023-06-15T14:23:40Z"}
                }),
            },
            Delivery {
                body: r#"{"event":"contact.update","id":"contact_update_123456789","timestamp":"2023-06-15T15:30:00Z","data":{"contactId":"contact_123456","phone":"+1234567890","name":"John Doe","profileImage":"https://example.com/profile.jpg"}}"#,
                headers: &[],
                expect: json!({
                    "type": "contact.updated",
                    "vendor_type": "contact.update",
                    "vendor_event_id": "contact_update_123456789",
                    "occurred_at": "2023-06-15T15:30:00Z",
                    "data": {"contact": {"id": "contact_123456", "name": "John Doe", "phone": "+1234567890"}}
                }),
            },
            Delivery {
                body: r#"{"event":"media.upload","id":"media_123456789","timestamp":"2023-06-15T16:45:20Z","data":{"messageId":"msg_123456","mediaType":"image","mediaUrl":"https://media.whatsync.io/123456.jpg","mimeType":"image/jpeg","caption":"Check out this photo"}}"#,
                headers: &[],
                expect: json!({
                    "type": "media.uploaded",
                    "vendor_type": "media.upload",
                    "vendor_event_id": "media_123456789",
                    "data": {
                        "message_id": "msg_123456",
                        "media": {"url": "https://media.whatsync.io/123456.jpg", "mime_type": "image/jpeg", "caption": "Check out this photo"}
                    }
                }),
            },
        ],
    });
}

#[test]
fn wappcloud() {
    vendor_contract(VendorCase {
        vendor: WAPPCLOUD,
        deliveries: vec![
            Delivery {
                body: r#"{"id":"wc_evt_1","from":"+15550001","to":"+15550002","text":"hi from wappcloud","timestamp":1700000000}"#,
                headers: &[("X-Wappcloud-Event", "incoming_message")],
                expect: json!({
                    "type": "message.received",
                    "vendor_type": "incoming_message",
                    "vendor_event_id": "wc_evt_1",
                    "dedupe_basis": "event_id",
                    "occurred_at": "2023-11-14T22:13:20Z",
                    "data": {
                        "message_id": "wc_evt_1", "from": "+15550001", "to": "+15550002",
                        "text": "hi from wappcloud", "sent_at": "2023-11-14T22:13:20Z"
                    }
                }),
            },
            Delivery {
                body: r#"{"id":"wc_evt_2","message_id":"wamid.wc1","status":"READ","timestamp":"2024-01-02T03:04:05Z"}"#,
                headers: &[("X-Wappcloud-Event", "status_update")],
                expect: json!({
                    "type": "message.status",
                    "vendor_type": "status_update",
                    "vendor_event_id": "wc_evt_2",
                    "data": {"message_id": "wamid.wc1", "status": "read", "at": "2024-01-02T03:04:05Z"}
                }),
            },
            // No top-level id: deduped on the body hash.
            Delivery {
                body: r#"{"data":{"message_id":"wamid.wc2","from":"+15550009","text":"no id"}}"#,
                headers: &[("X-Wappcloud-Event", "incoming_message")],
                expect: json!({
                    "type": "message.received",
                    "vendor_event_id": null,
                    "dedupe_basis": "body_hash",
                    "data": {"message_id": "wamid.wc2", "from": "+15550009", "text": "no id"}
                }),
            },
        ],
    });
}

#[test]
fn docssmith() {
    vendor_contract(VendorCase {
        vendor: DOCSSMITH,
        deliveries: vec![
            Delivery {
                body: r#"{"id":"a056V7R7NmNRjl70","type":"message.updated","payload":{"id":"SIuAFUNKdSYHZF2w","conversation_id":"xgQQXg3hrtjh7AvZ","contact":{"id":"WAz8eIbvDR60rouK","username":"KevinMcCallister","phone_number":"1-800-759-3000","avatar_url":"https://assets.DocsSmith Demo2.chat/avatars/kevin.jpg","last_active_at":705103200,"created_at":692233200},"message":"I’m traveling with my dad. He’s at a meeting. I hate meetings.","reactions":[],"attachments":[],"read_at":705103200,"created_at":692233200,"updated_at":692233200}}"#,
                headers: &[],
                expect: json!({
                    "type": "message.updated",
                    "vendor_type": "message.updated",
                    "vendor_event_id": "a056V7R7NmNRjl70",
                    "dedupe_basis": "event_id",
                    "occurred_at": "1991-12-08T23:00:00Z",
                    "data": {
                        "id": "SIuAFUNKdSYHZF2w",
                        "conversation_id": "xgQQXg3hrtjh7AvZ",
                        "contact": {"username": "KevinMcCallister"},
                        "message": "I’m traveling with my dad. He’s at a meeting. I hate meetings."
                    }
                }),
            },
            Delivery {
                body: r#"{"id":"b056V7R7NmNRjl71","type":"conversation.updated","payload":{"id":"WAz8eIbvDR60rouK"}}"#,
                headers: &[],
                expect: json!({
                    "type": "conversation.updated",
                    "vendor_type": "conversation.updated",
                    "vendor_event_id": "b056V7R7NmNRjl71",
                    "occurred_at": null,
                    "data": {"id": "WAz8eIbvDR60rouK"}
                }),
            },
            Delivery {
                body: r#"{"id":"c056V7R7NmNRjl72","type":"contact.updated","payload":{"id":"WAz8eIbvDR60rouK","username":"KevinMcCallister","phone_number":"1-800-759-3000","updated_at":705103200}}"#,
                headers: &[],
                expect: json!({
                    "type": "contact.updated",
                    "vendor_type": "contact.updated",
                    "occurred_at": "1992-05-05T22:00:00Z",
                    "data": {"contact": {"id": "WAz8eIbvDR60rouK", "name": "KevinMcCallister", "phone": "1-800-759-3000"}}
                }),
            },
        ],
    });
}

#[test]
fn wappcloud_handshake_echoes_the_challenge_exactly() {
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().workspace(Workspace::standard(WS)));
    let path = hook(WS, "wappcloud");

    let reply = server.get(&format!("{path}?challenge=abc123"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, r#"{"challenge":"abc123"}"#);
    assert_eq!(reply.header("content-type"), Some("application/json"));

    // Whatever the vendor sends comes back, decoded, and nothing else does.
    let reply = server.get(&format!("{path}?other=1&challenge=x%20y%22z"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, r#"{"challenge":"x y\"z"}"#);

    server.get(&path).expect_error(400, "invalid_handshake");
    server
        .get(&format!("{path}?chall=abc123"))
        .expect_error(400, "invalid_handshake");
}

#[test]
fn whatsable_verifies_under_a_signature_header_renamed_in_routes_yaml() {
    let dir = TestDir::new();
    let config = Config::new().workspace(
        Workspace::new(WS)
            .vendor(
                Vendor::new("whatsable", &["whatsable-secret"])
                    .signature_header("X-Custom-Signature"),
            )
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    );
    let server = dir.serve(&config);
    let custom = VendorScheme {
        header: "X-Custom-Signature",
        ..WHATSABLE
    };
    let body = r#"{"event":"message_status","data":{"message_id":"wamid.renamed","status":"sent","timestamp":"2024-03-23T21:41:44Z"}}"#;

    // Under the plugin's own header name the signature is not found.
    let message = server
        .deliver(WS, &WHATSABLE, "whatsable-secret", body, &[])
        .expect_error(401, "signature_missing");
    assert!(
        message.to_ascii_lowercase().contains("x-custom-signature"),
        "the message should name the configured header: {message}"
    );
    server
        .deliver(WS, &custom, "wrong-secret", body, &[])
        .expect_error(401, "signature_mismatch");
    let id = server
        .deliver(WS, &custom, "whatsable-secret", body, &[])
        .expect_accepted();
    let events = dir.sink(WS, "events").wait_for(&id);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["message_id"], "wamid.renamed");
}
