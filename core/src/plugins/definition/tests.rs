//! The reader's problems and the interpreter's rules, on small definitions written here.

use hyper::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use super::Definition;
use crate::plugins::{wire, MapFailure};

/// A definition whose only vector is refused for a reason no rule gives, so that any rules can
/// be loaded without proving them; `rest` is appended at the top level.
fn load(rest: &str) -> Result<Definition, Vec<String>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("acme.vendor.yaml");
    let text = format!(
        "vendor: acme\nversion: '1'\nsignature: none\n{rest}\ntest_vectors:\n  - body: '{{}}'\n    expect: {{ refused: type }}\n"
    );
    std::fs::write(&path, text).expect("write the definition");
    Definition::load(&path).map_err(|errors| {
        errors
            .iter()
            .map(|e| {
                let text = e.to_string();
                text[text.find(".yaml:").map_or(0, |i| i + 6)..].to_owned()
            })
            .collect()
    })
}

fn map(d: &Definition, body: &str, headers: &[(&'static str, &str)]) -> Result<Value, MapFailure> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_str(value).expect("a header value"));
    }
    let raw = wire::raw_json(body.as_bytes()).map_err(MapFailure::InvalidPayload)?;
    let event = d.map(&map, body.as_bytes(), raw, None)?;
    Ok(json!({
        "type": event.canonical_type,
        "vendor_type": event.vendor_type,
        "vendor_event_id": event.vendor_event_id,
        "occurred_at": event.occurred_at,
        "basis": event.identity.basis().as_str(),
        "data": serde_json::from_str::<Value>(event.data.get()).expect("data is JSON"),
    }))
}

#[test]
fn every_problem_is_reported_at_once_with_its_line_and_key() {
    let errors = load(
        "type: kind\nidentity: [delivery_id, {content: [/a], require: 3}]\nevent_id: /id\nmood: happy\n\
         types:\n  a.b:\n    type: message.sent\n    data: { x: /x }\n  message.status: {}\n  message.c:\n    data: { text: { pointer: /t, decode: json } }\n",
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "4: type: \"kind\" is not a JSON pointer: it must start with `/`",
            "5: identity[0]: identity by `delivery_id` needs `delivery_id_header`",
            "5: identity[1].require: expected how many of the first parts must have values",
            "7: mood: unknown key `mood`, expected one of `vendor`, `version`, `delivery_id_header`, `signature`, `handshake`, `root`, `event_id`, `type`, `occurred_at`, `identity`, `types`, `test_vectors`",
            "10: types.a.b.type: maps to `message.sent`, which is not a canonical type (expected one of message.received, message.status, contact.updated, media.uploaded); leave `type` out to keep the vendor's name",
            "11: types.a.b.data: this type has no canonical shape: its data is the payload as it is (`data: pass`)",
            "12: types.message.status: `data` is required: the fields of `message.status`, by pointer",
            "14: types.message.c.data.text.decode: `decode: json` reads a list held in a string (`history`) only",
        ]
    );
}

#[test]
fn times_are_read_in_the_format_given_and_normalised_to_utc() {
    let d = load(
        "type: /t\nidentity: body_hash\noccurred_at: [{ pointer: /ms, format: unix_ms }, { pointer: /s, format: unix }, /at]\n",
    )
    .expect("loads");
    let at = |body: &str| map(&d, body, &[]).expect("maps")["occurred_at"].clone();
    assert_eq!(
        at(r#"{"t":"x","ms":1711230104123}"#),
        "2024-03-23T21:41:44.123Z"
    );
    assert_eq!(at(r#"{"t":"x","s":"1711230104"}"#), "2024-03-23T21:41:44Z");
    assert_eq!(
        at(r#"{"t":"x","at":"2024-03-23T23:41:44+02:00"}"#),
        "2024-03-23T21:41:44Z"
    );
    assert_eq!(at(r#"{"t":"x","at":1711230104}"#), "2024-03-23T21:41:44Z");
    // What cannot be read is no time, never a guess.
    assert_eq!(at(r#"{"t":"x","ms":"soon","at":"yesterday"}"#), Value::Null);
}

#[test]
fn each_setting_comes_from_the_first_matching_type_entry_else_the_top_level() {
    let d = load(
        "type: { pointer: /type, header: X-Type }\nevent_id: /id\nidentity: [event_id, body_hash]\noccurred_at: /created\nroot: /p\n\
         types:\n  note.updated:\n    data: pass\n  \"*.updated\": { occurred_at: /updated, identity: body_hash }\n  \"*.deleted\": { occurred_at: none }\n  \"message.*\":\n    data:\n      text: /body\n      contact: { at: /who, when: any, id: /id, name: [/name, /nick] }\n",
    )
    .expect("loads");
    let event = map(
        &d,
        r#"{"id":"e1","type":"note.updated","created":1,"updated":2,"p":{"x":1}}"#,
        &[],
    )
    .unwrap();
    assert_eq!(event["occurred_at"], "1970-01-01T00:00:02Z");
    assert_eq!(event["basis"], "body_hash");
    assert_eq!(event["data"], json!({"x": 1}));
    let event = map(&d, r#"{"id":"e2","type":"note.deleted","created":1}"#, &[]).unwrap();
    assert_eq!(event["occurred_at"], Value::Null);
    assert_eq!(event["basis"], "event_id");
    assert_eq!(event["data"], json!({}));
    let event = map(
        &d,
        r#"{"id":"e3","type":"message.in","p":{"body":"hi","who":{"nick":"k"}}}"#,
        &[],
    )
    .unwrap();
    assert_eq!(event["type"], "message.in");
    assert_eq!(event["data"]["text"], "hi");
    assert_eq!(
        event["data"]["contact"],
        json!({"id": null, "name": "k", "phone": null})
    );
    // `when: any`: an object with none of the fields is null; `at` that is not an object too.
    for who in [r#"{"age":3}"#, r#""k""#] {
        let body = format!(r#"{{"id":"e4","type":"message.in","p":{{"who":{who}}}}}"#);
        assert_eq!(
            map(&d, &body, &[]).unwrap()["data"]["contact"],
            Value::Null,
            "{who}"
        );
    }
    // The header says the type when the body does not; disagreeing, they are refused.
    let event = map(&d, r#"{"id":"e5"}"#, &[("x-type", "message.x")]).unwrap();
    assert_eq!(event["vendor_type"], "message.x");
    let refused = map(&d, r#"{"id":"e6","type":"a"}"#, &[("x-type", "b")]).unwrap_err();
    assert!(
        refused.to_string().contains("refusing to guess"),
        "{refused}"
    );
    let refused = map(&d, r#"{"id":"e7"}"#, &[]).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the event type is missing or empty (looked for /type, then the x-type header)"
    );
    assert_eq!(
        map(&d, "[1]", &[]).unwrap_err(),
        MapFailure::InvalidPayload("body must be a JSON object".into())
    );
}

#[test]
fn content_keys_need_their_required_parts_and_refusals_say_why() {
    let d = load(
        "type: /t\nidentity:\n  - content: [/user, { pointer: /status, lower: true }, /text]\n    require: 2\n  - refuse: no user and status\n",
    )
    .expect("loads");
    let a = map(&d, r#"{"t":"s","user":"u","status":"READ"}"#, &[]).unwrap();
    assert_eq!(a["basis"], "content");
    let refused = map(&d, r#"{"t":"s","user":"u","text":"hi"}"#, &[]).unwrap_err();
    assert_eq!(
        refused,
        MapFailure::InvalidPayload("no user and status".into())
    );
}
