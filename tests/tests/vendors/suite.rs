// The vendor suite, included twice by vendors.rs: once with the compiled plugins, once with only
// the definitions in the plugins directory (`FORM`).

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

/// The same JSON as `body`, written otherwise: keys in reverse order, spaced out, one line.
fn reserialise(body: &str) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                out.push_str("{ ");
                for (i, (key, value)) in map.iter().rev().enumerate() {
                    if i > 0 {
                        out.push_str(" , ");
                    }
                    out.push_str(&format!("{} : ", Value::String(key.clone())));
                    write(value, out);
                }
                out.push_str(" }");
            }
            Value::Array(items) => {
                out.push_str("[ ");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" , ");
                    }
                    write(item, out);
                }
                out.push_str(" ]");
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(&serde_json::from_str(body).expect("a JSON body"), &mut out);
    out
}

/// The sink's line for event `id` ends with `"raw":` and the body as sent: every byte, less the
/// line breaks between tokens (a JSON-lines sink keeps each envelope on one line).
#[track_caller]
fn assert_raw_verbatim(dir: &TestDir, id: &str, body: &str) {
    let sink = dir.sink(WS, "events");
    let text = std::fs::read_to_string(sink.path()).expect("the sink file");
    let line = text
        .lines()
        .find(|l| l.contains(&format!(r#""id":"{id}""#)))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{text}"));
    let one_line: String = body.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    let tail = format!(r#","raw":{}}}"#, one_line.trim());
    assert!(
        line.ends_with(&tail),
        "raw is not the body verbatim:\n  line: {line}\n  body: {one_line}"
    );
}

fn vendor_contract(case: VendorCase) {
    assert!(case.deliveries.len() >= 2, "a case needs two deliveries");
    let v = case.vendor;
    let dir = TestDir::with_vendors(FORM);
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

    // Valid, then repeated (under either secret, and re-serialised): one event.
    let first_id = post(Some(&signature), first.body).expect_accepted();
    let again = post(Some(&signature), first.body).expect_ok("duplicate");
    assert_eq!(again, first_id, "a duplicate answers the first id");
    let reserialised = reserialise(first.body);
    assert_ne!(reserialised, first.body);
    let resigned = v.signature(&current, reserialised.as_bytes());
    let again = post(Some(&resigned), &reserialised).expect_ok("duplicate");
    assert_eq!(
        again, first_id,
        "a re-serialised retry answers the first id"
    );
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
        assert_raw_verbatim(&dir, id, delivery.body);
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
                    // No event id: a content key of user, time and text.
                    "vendor_event_id": null,
                    "dedupe_basis": "content",
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
                    "dedupe_basis": "content",
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
                        "message_id": "SIuAFUNKdSYHZF2w", "from": null, "to": null,
                        "text": "I’m traveling with my dad. He’s at a meeting. I hate meetings.",
                        "media": null,
                        "contact": {"id": "WAz8eIbvDR60rouK", "name": "KevinMcCallister", "phone": "1-800-759-3000"},
                        "conversation_id": "xgQQXg3hrtjh7AvZ",
                        "sent_at": "1991-12-08T23:00:00Z",
                        "history": null
                    }
                }),
            },
            Delivery {
                body: r#"{"id":"a056V7R7NmNRjl70","type":"conversation.updated","payload":{"id":"WAz8eIbvDR60rouK"}}"#,
                headers: &[],
                expect: json!({
                    "type": "conversation.updated",
                    "vendor_type": "conversation.updated",
                    "vendor_event_id": "a056V7R7NmNRjl70",
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
    let dir = TestDir::with_vendors(FORM);
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
    let dir = TestDir::with_vendors(FORM);
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

/// A standard workspace's server, and a way to deliver to it under the current secret.
fn standard() -> (TestDir, Server) {
    let dir = TestDir::with_vendors(FORM);
    let server = dir.serve(&Config::new().workspace(Workspace::standard(WS)));
    (dir, server)
}

type Headers<'a> = &'a [(&'a str, &'a str)];

fn send(server: &Server, vendor: &VendorScheme, body: &str, headers: &[(&str, &str)]) -> Reply {
    server.deliver(WS, vendor, &secret(WS, vendor.name, 1), body, headers)
}

#[test]
fn raw_keeps_key_order_number_precision_and_escapes_for_every_vendor() {
    let (dir, server) = standard();
    let cases: [(&VendorScheme, &str, Headers); 5] = [
        (
            &WATSI,
            r#"{"type":"message.received","id":"evt_big","data":{"z":1,"amount":12345678901234567890123,"text":"caf\u00e9","a":0.10}}"#,
            &[],
        ),
        (
            &WHATSABLE,
            r#"{"event":"message_status","data":{"timestamp":"2024-03-23T21:41:44.477Z","status":"sent","message_id":"wamid.big","n":12345678901234567890123}}"#,
            &[],
        ),
        (
            &WHATSSYNC,
            r#"{"id":"big_1","event":"message.status","data":{"status":"read","messageId":"m","n":1.50E+300}}"#,
            &[],
        ),
        (
            &WAPPCLOUD,
            r#"{"text":"hi","id":"wc_big","n":-0.000000000000000000001}"#,
            &[("X-Wappcloud-Event", "incoming_message")],
        ),
        (
            &DOCSSMITH,
            r#"{"type":"contact.created","id":"ds_big","payload":{"id":"c","n":12345678901234567890123}}"#,
            &[],
        ),
    ];
    let mut ids = Vec::new();
    for (vendor, body, headers) in cases {
        ids.push((send(&server, vendor, body, headers).expect_accepted(), body));
    }
    dir.sink(WS, "events").wait_for(&ids.last().unwrap().0);
    for (id, body) in &ids {
        assert_raw_verbatim(&dir, id, body);
    }
}

#[test]
fn watsi_without_an_id_is_identified_by_its_delivery_id() {
    let (dir, server) = standard();
    let body = r#"{"type":"message.status","data":{"message_id":"wamid.w9","status":"read"}}"#;
    let delivery = [("X-Watsi-Delivery-Id", "dlv_0099")];
    let id = send(&server, &WATSI, body, &delivery).expect_accepted();
    // The vendor's retry of that delivery, re-serialised: the same delivery id.
    let retry = send(&server, &WATSI, &reserialise(body), &delivery).expect_ok("duplicate");
    assert_eq!(retry, id);
    // Another delivery is another event, even with the same body.
    let other = [("X-Watsi-Delivery-Id", "dlv_0100")];
    let second = send(&server, &WATSI, body, &other).expect_accepted();
    // Neither an id nor a delivery id: nothing identifies it.
    let message = send(&server, &WATSI, body, &[]).expect_error(400, "invalid_payload");
    assert!(message.contains("X-Watsi-Delivery-Id"), "{message}");
    let events = dir.sink(WS, "events").wait_for(&second);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_subset(
        &json!({"id": id, "dedupe_basis": "delivery_id", "vendor_event_id": null,
                "dedupe_key": "acme/watsi/delivery_id:dlv_0099"}),
        &events[0],
        "watsi delivery id",
    );
}

#[test]
fn whatsable_statuses_are_told_apart_by_content_and_optional_fields_never_lose_a_message() {
    let (dir, server) = standard();
    let status = r#"{"event":"message_status","data":{"message_id":"wamid.123456789","status":"delivered","timestamp":"2024-03-23T21:41:44.477Z"}}"#;
    let first = send(&server, &WHATSABLE, status, &[]).expect_accepted();
    // The same status resent with other spacing, key order and case: one event.
    let resent = r#"{ "data" : { "timestamp" : "2024-03-23T21:41:44.477Z" , "status" : "DELIVERED" , "message_id" : "wamid.123456789" } , "event" : "message_status" }"#;
    assert_eq!(
        send(&server, &WHATSABLE, resent, &[]).expect_ok("duplicate"),
        first
    );
    // The next status of that message shares its message_id and is delivered too.
    let read = status.replace("delivered", "read");
    let second = send(&server, &WHATSABLE, &read, &[]).expect_accepted();

    // Optional fields empty, or of another JSON type than the document shows: accepted.
    let odd = [
        r#"{"event":"incoming_message","data":{"last_messages":"","user_id":"u1","user_timestamp":1234567890,"last_message_of_user":"one"}}"#,
        r#"{"event":"incoming_message","data":{"last_messages":[{"type":"user","content":"two"}],"user_id":"u1","user_timestamp":1234567891,"last_message_of_user":"two"}}"#,
        r#"{"event":"incoming_message","data":{"last_messages":42,"recipient_name":{"first":"J"},"attachment_url":null,"phone_number":8801734363287,"user_timestamp":"not a time","last_message_of_user":"three"}}"#,
    ];
    let mut ids = vec![first, second];
    for body in odd {
        ids.push(send(&server, &WHATSABLE, body, &[]).expect_accepted());
    }
    let events = dir.sink(WS, "events").wait_for(ids.last().unwrap());
    assert_eq!(events.len(), 5, "{events:#?}");
    assert_eq!(events[1]["data"]["status"], "read");
    assert_eq!(events[2]["data"]["history"], Value::Null);
    assert_eq!(events[2]["data"]["text"], "one");
    assert_eq!(
        events[3]["data"]["history"],
        json!([{"type": "user", "content": "two"}])
    );
    assert_subset(
        &json!({"data": {"text": "three", "from": "8801734363287", "history": null, "media": null,
                         "sent_at": null, "contact": {"name": null}}}),
        &events[4],
        "whatsable odd fields",
    );
}

#[test]
fn docssmith_events_sharing_an_id_are_both_delivered_and_retries_are_not() {
    let (dir, server) = standard();
    // The document's two examples, which share their id.
    let conversation = r#"{"id":"a056V7R7NmNRjl70","type":"conversation.updated","payload":{"id":"WAz8eIbvDR60rouK"}}"#;
    let message = r#"{"id":"a056V7R7NmNRjl70","type":"message.updated","payload":{"id":"SIuAFUNKdSYHZF2w","conversation_id":"xgQQXg3hrtjh7AvZ","message":"hi","reactions":"","attachments":null,"created_at":692233200,"updated_at":692233200}}"#;
    let first = send(&server, &DOCSSMITH, conversation, &[]).expect_accepted();
    let second = send(&server, &DOCSSMITH, message, &[]).expect_accepted();
    assert_eq!(
        send(&server, &DOCSSMITH, &reserialise(message), &[]).expect_ok("duplicate"),
        second
    );
    // The same message updated later: a new event under the same id.
    let later = message.replace(r#""updated_at":692233200"#, r#""updated_at":705103200"#);
    let third = send(&server, &DOCSSMITH, &later, &[]).expect_accepted();
    let events = dir.sink(WS, "events").wait_for(&third);
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[0]["id"], first.as_str());
    assert_eq!(events[1]["type"], "message.updated");
    assert_eq!(events[1]["data"]["message_id"], "SIuAFUNKdSYHZF2w");
    assert_eq!(events[1]["data"]["text"], "hi");
}

#[test]
fn whatssync_and_wappcloud_retries_re_serialised_are_duplicates() {
    let (dir, server) = standard();
    let sync = r#"{"event":"contact.update","id":"contact_update_1","timestamp":"2023-06-15T15:30:00Z","data":{"contactId":"contact_123456","phone":"","name":null,"profileImage":7}}"#;
    let sync_id = send(&server, &WHATSSYNC, sync, &[]).expect_accepted();
    assert_eq!(
        send(&server, &WHATSSYNC, &reserialise(sync), &[]).expect_ok("duplicate"),
        sync_id
    );
    // No id: the canonical JSON's hash, not the bytes', identifies it.
    let cloud = r#"{"data":{"message_id":"wamid.wc7","from":"+15550009","text":"no id"}}"#;
    let header = [("X-Wappcloud-Event", "incoming_message")];
    let cloud_id = send(&server, &WAPPCLOUD, cloud, &header).expect_accepted();
    assert_eq!(
        send(&server, &WAPPCLOUD, &reserialise(cloud), &header).expect_ok("duplicate"),
        cloud_id
    );
    let events = dir.sink(WS, "events").wait_for(&cloud_id);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(
        events[0]["data"]["contact"],
        json!({"id": "contact_123456", "name": null, "phone": null})
    );
    assert_eq!(events[1]["dedupe_basis"], "body_hash");
}

#[test]
fn wappcloud_takes_the_event_type_from_the_signed_body_over_the_unsigned_header() {
    let (dir, server) = standard();
    let body = r#"{"event":"status_update","id":"wc_t1","message_id":"wamid.1","status":"read"}"#;
    let message = send(
        &server,
        &WAPPCLOUD,
        body,
        &[("X-Wappcloud-Event", "incoming_message")],
    )
    .expect_error(400, "invalid_payload");
    assert!(
        message.contains("status_update") && message.contains("incoming_message"),
        "{message}"
    );
    let id = send(&server, &WAPPCLOUD, body, &[]).expect_accepted();
    let events = dir.sink(WS, "events").wait_for(&id);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["type"], "message.status");
    // An empty type is refused, naming where it was looked for.
    send(&server, &WAPPCLOUD, r#"{"event":"","id":"x"}"#, &[]).expect_error(400, "invalid_payload");
}

#[test]
fn whatsable_signature_none_is_served_behind_allow_ips_and_logged() {
    let dir = TestDir::with_vendors(FORM);
    let yaml = format!(
        "server:\n  listen: \"127.0.0.1:0\"\n  data_dir: {data:?}\n  plugins_dir: {plugins:?}\n\
         workspaces:\n  {WS}:\n    vendors:\n      whatsable:\n        signature: none\n        \
         allow_ips: [\"127.0.0.1\"]\n    sinks:\n      events: {{ type: file, path: {sink:?} }}\n    \
         routes:\n      - match: {{ type: \"*\" }}\n        to: [events]\n",
        data = dir.data_dir(),
        plugins = dir.plugins_dir(),
        sink = dir.sink_path(WS, "events"),
    );
    let server = Server::start(&dir.write("routes.yaml", yaml));
    assert!(
        server.log().contains("signature: none"),
        "start-up does not log the unsigned vendor:\n{}",
        server.log()
    );
    let body = r#"{"event":"message_status","data":{"message_id":"wamid.open","status":"sent","timestamp":"2024-03-23T21:41:44Z"}}"#;
    let id = server
        .post(
            &hook(WS, "whatsable"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .expect_accepted();
    let events = dir.sink(WS, "events").wait_for(&id);
    assert_eq!(events[0]["data"]["message_id"], "wamid.open");

    // Without an allow-list, `check` refuses it.
    let open = dir.write(
        "open.yaml",
        std::fs::read_to_string(dir.path().join("routes.yaml"))
            .unwrap()
            .replace("        allow_ips: [\"127.0.0.1\"]\n", ""),
    );
    check(&open).expect_failure("check", &["signature: none", "allow_ips"]);
}
