//! Vendor definitions (`<vendor>.vendor.yaml`) as the server and the commands treat them: the
//! guide's worked vendor from its file to a delivered event; every problem of a definition at
//! once, with file, line and key, exit 78, at start-up and in `switchyard vendor test`; a vendor
//! defined twice; `switchyard plugins` and `check` listing both forms; a reload that reads a
//! changed definition, and refuses a failing one while the old one stays; `signature: none`
//! only behind `allow_ips`; and hostile definitions and bodies kept within their bounds.
//!
//! The five seed vendors' definitions pass the whole vendor suite (vendors.rs, `definition::`).

use std::path::{Path, PathBuf};

use switchyard_e2e::*;

const WS: &str = "acme";
const TOKEN: &str = "definitions-admin-token-e2e";
const PINGBOX_SECRET: &str = "pingbox-secret-e2e";

/// The definition the guide builds, as the guide prints it (its first YAML block).
fn guide_definition() -> String {
    let guide = shipped_file("docs/writing-a-vendor-definition.md");
    let start = guide
        .find("```yaml\n")
        .expect("the guide shows its definition")
        + 8;
    let end = start + guide[start..].find("```").expect("the YAML block ends");
    guide[start..end].to_owned()
}

fn seed_definition(vendor: &str) -> String {
    std::fs::read_to_string(artifacts().definition(vendor)).expect("a seed definition")
}

fn vendor_test(args: &[&str]) -> Run {
    let mut all = vec!["vendor", "test"];
    all.extend_from_slice(args);
    run(switchyard_command(all))
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// What `switchyard sign` prints for the body: the headers, by name.
fn signed_headers(dir: &TestDir, vendor: &str, secret: &str, body: &Path) -> Vec<(String, String)> {
    let sign = run(switchyard_command([
        "sign",
        "--vendor",
        vendor,
        "--secret",
        secret,
        "--file",
        &path_str(body),
        "--plugins-dir",
        &path_str(&dir.plugins_dir()),
    ]));
    sign.expect_success("sign");
    (sign.stdout.lines())
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn reload(server: &Server) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    server.operator_request("POST", "/admin/reload", &[("Authorization", &auth)], None)
}

#[test]
fn the_guides_vendor_goes_from_its_definition_to_a_delivered_event() {
    let dir = TestDir::new();
    let file = dir.plugins_dir().join("pingbox.vendor.yaml");
    std::fs::write(&file, guide_definition()).expect("write the definition");
    let tested = vendor_test(&[&path_str(&file)]);
    tested.expect_success("vendor test");
    assert!(
        tested
            .stdout
            .contains("ok: vendor `pingbox` 0.1.0, 1 test vector(s) proven"),
        "{}",
        tested.stdout
    );

    let config = Config::new()
        .workspace(Workspace::standard(WS).vendor(Vendor::new("pingbox", &[PINGBOX_SECRET])));
    let server = dir.serve(&config);
    let body = r#"{"event_id":"evt_e2e1","kind":"msg.status","sent":1711230104123,"message":{"id":"m_81","state":"READ"}}"#;
    let body_file = dir.write("pingbox.json", body);
    let headers = signed_headers(&dir, "pingbox", PINGBOX_SECRET, &body_file);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let id = server
        .post(&hook(WS, "pingbox"), &headers, body.as_bytes())
        .expect_accepted();
    let again = server
        .post(&hook(WS, "pingbox"), &headers, body.as_bytes())
        .expect_ok("duplicate");
    assert_eq!(again, id);
    let events = dir.sink(WS, "events").wait_for(&id);
    assert_subset(
        &json!({"vendor": "pingbox", "type": "message.status", "vendor_type": "msg.status",
                "vendor_event_id": "evt_e2e1", "dedupe_basis": "event_id",
                "occurred_at": "2024-03-23T21:41:44.123Z",
                "data": {"message_id": "m_81", "status": "read", "at": null}}),
        &events[0],
        "pingbox envelope",
    );
    // A signature over another timestamp than the one sent is refused.
    let stale: Vec<(&str, &str)> = (headers.iter())
        .map(
            |&(n, v)| match n.eq_ignore_ascii_case("Pingbox-Timestamp") {
                true => (n, "1711230104"),
                false => (n, v),
            },
        )
        .collect();
    server
        .post(&hook(WS, "pingbox"), &stale, body.as_bytes())
        .expect_error(401, "signature_stale");
}

/// A watsi definition with three problems: an unknown algorithm, a canonical type that does not
/// exist, and a pointer its test vector proves finds nothing.
fn broken_watsi() -> String {
    seed_definition("watsi")
        .replace(
            "signature: { header: X-Watsi-Signature }",
            "signature: { header: X-Watsi-Signature, algorithm: md5 }",
        )
        .replace(
            "  message.status:\n",
            "  message.status:\n    type: message.sent\n",
        )
        .replace("text: /text", "text: /txt")
}

#[test]
fn every_problem_of_a_definition_is_named_with_file_line_and_key_exit_78() {
    let dir = TestDir::without_plugins();
    let file = dir.plugins_dir().join("watsi.vendor.yaml");
    std::fs::write(&file, broken_watsi()).expect("write the definition");
    let needles = [
        "watsi.vendor.yaml:4: signature.algorithm: unknown algorithm `md5`",
        "watsi.vendor.yaml:26: types.message.status.type: maps to `message.sent`, which is not a canonical type",
    ];
    let tested = vendor_test(&[&path_str(&file)]);
    tested.expect_failure("vendor test", &needles);
    assert_eq!(tested.status.code(), Some(78), "{}", tested.stderr);

    let config = dir.write_config(
        &Config::new().workspace(
            Workspace::new(WS)
                .vendor(Vendor::new("watsi", &[&secret(WS, "watsi", 1)]))
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        ),
    );
    let refused = serve_expecting_exit(&config);
    refused.expect_failure("serve", &needles);
    assert_eq!(refused.status.code(), Some(78), "{}", refused.stderr);

    // With those two mended, the vector finds the pointer into nothing.
    let only_pointer = seed_definition("watsi").replace("text: /text", "text: /txt");
    std::fs::write(&file, only_pointer).expect("write the definition");
    check(&config).expect_failure(
        "check",
        &["watsi.vendor.yaml:20: types.message.received.data.text: test vector 0 expects data.text \"hi\", the definition gives null (/txt finds nothing"],
    );
}

#[test]
fn a_vendor_defined_twice_is_refused_naming_both_files() {
    let dir = TestDir::new();
    let definition = dir.install_definition(&artifacts().definition("watsi"));
    let config = dir.write_config(&Config::new().workspace(Workspace::standard(WS)));
    let refused = check(&config);
    refused.expect_failure(
        "check",
        &[
            "vendor `watsi` is already provided by",
            "watsi.vendor.yaml",
            "libswitchyard_watsi",
        ],
    );
    assert_eq!(refused.status.code(), Some(78));
    // Two definitions of one vendor.
    std::fs::remove_file(
        dir.plugins_dir()
            .join(library_file_name("switchyard_watsi")),
    )
    .expect("remove the library");
    std::fs::write(
        dir.plugins_dir().join("watsi2.vendor.yaml"),
        seed_definition("watsi"),
    )
    .expect("write a second definition");
    check(&config).expect_failure(
        "check",
        &[
            "watsi2.vendor.yaml: vendor `watsi` is already provided by",
            "/watsi.vendor.yaml",
        ],
    );
    assert!(definition.exists());
}

#[test]
fn plugins_and_check_list_both_forms() {
    let dir = TestDir::new();
    std::fs::write(
        dir.plugins_dir().join("pingbox.vendor.yaml"),
        guide_definition(),
    )
    .expect("write the definition");
    let listed = run(switchyard_command([
        "plugins",
        "--plugins-dir",
        &path_str(&dir.plugins_dir()),
    ]));
    listed.expect_success("plugins");
    for needle in [
        "pingbox",
        "definition: ",
        "pingbox.vendor.yaml",
        "HMAC-SHA256 base64 after \"v1=\" of template \"{timestamp}.{body}\"",
        "library: ",
        "(6 plugin(s) in",
    ] {
        assert!(
            listed.stdout.contains(needle),
            "no {needle:?} in:\n{}",
            listed.stdout
        );
    }
    let config = dir.write_config(&Config::new().workspace(Workspace::standard(WS)));
    let checked = check(&config);
    checked.expect_success("check");
    assert!(
        checked.stdout.contains("pingbox.vendor.yaml (definition)")
            && checked.stdout.contains("libswitchyard_watsi.so (library)"),
        "{}",
        checked.stdout
    );
}

#[test]
fn a_reload_reads_a_changed_definition_and_refuses_a_failing_one_keeping_the_old() {
    let dir = TestDir::with_vendors(VendorForm::Definition);
    let server = dir.serve(
        &Config::new()
            .admin_token(TOKEN)
            .workspace(Workspace::standard(WS)),
    );
    let file = dir.plugins_dir().join("watsi.vendor.yaml");
    let body = |n: u32| {
        format!(
            r#"{{"id":"evt_r{n}","type":"message.received","data":{{"text":"t{n}","thread":"th{n}"}}}}"#
        )
    };
    let send = |n: u32| {
        server
            .deliver(WS, &WATSI, &secret(WS, "watsi", 1), &body(n), &[])
            .expect_accepted()
    };
    send(1);

    // A definition that fails its vectors: refused with its line, and the loaded one stays.
    std::fs::write(&file, broken_watsi()).expect("write the definition");
    let refused = reload(&server);
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(
        refused
            .body
            .contains("watsi.vendor.yaml:4: signature.algorithm"),
        "{}",
        refused.body
    );
    let kept = send(2);

    // A changed one that proves itself takes its place.
    let changed = seed_definition("watsi").replace(
        "conversation_id: /conversation_id",
        "conversation_id: [/thread, /conversation_id]",
    );
    std::fs::write(&file, changed).expect("write the definition");
    let reloaded = reload(&server);
    assert_eq!(reloaded.status, 200, "{reloaded:?}");
    assert_eq!(
        reloaded.json()["plugins_loaded"],
        json!(["watsi"]),
        "{}",
        reloaded.body
    );
    let last = send(3);

    let events = dir.sink(WS, "events").wait_for(&last);
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[0]["data"]["conversation_id"], Value::Null);
    assert_eq!(events[1]["id"], kept.as_str());
    assert_eq!(events[1]["data"]["text"], "t2");
    assert_eq!(events[1]["data"]["conversation_id"], Value::Null);
    assert_eq!(events[2]["data"]["conversation_id"], "th3");
}

#[test]
fn a_definition_that_signs_nothing_is_served_only_behind_allow_ips() {
    let dir = TestDir::without_plugins();
    let unsigned = seed_definition("whatsable").replace(
        "signature: { header: X-WhatsAble-Signature }",
        "signature: none",
    );
    let unsigned: String = unsigned
        .lines()
        .filter(|l| !l.contains("X-WhatsAble-Signature:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.plugins_dir().join("whatsable.vendor.yaml"), unsigned)
        .expect("write the definition");
    let bound = |vendor: Vendor| {
        Config::new().workspace(
            Workspace::new(WS)
                .vendor(vendor)
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        )
    };
    let signed = dir.write_config(&bound(Vendor::new(
        "whatsable",
        &[&secret(WS, "whatsable", 1)],
    )));
    check(&signed).expect_failure(
        "check",
        &[
            "workspaces.acme.vendors.whatsable",
            "signs nothing",
            "allow_ips",
        ],
    );
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
    let body = r#"{"event":"message_status","data":{"message_id":"wamid.none","status":"sent","timestamp":"2024-03-23T21:41:44Z"}}"#;
    let id = server
        .post(
            &hook(WS, "whatsable"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .expect_accepted();
    assert_eq!(
        dir.sink(WS, "events").wait_for(&id)[0]["data"]["message_id"],
        "wamid.none"
    );
}

#[test]
fn hostile_definitions_are_refused_at_load_with_their_line() {
    let dir = TestDir::without_plugins();
    let write = |text: String| -> PathBuf {
        let file = dir.plugins_dir().join("watsi.vendor.yaml");
        std::fs::write(&file, text).expect("write the definition");
        file
    };
    let huge = format!("/{}", "a/".repeat(50_000));
    let file =
        write(seed_definition("watsi").replace("event_id: /id", &format!("event_id: {huge}")));
    vendor_test(&[&path_str(&file)]).expect_failure(
        "huge pointer",
        &["watsi.vendor.yaml:7: event_id: a pointer of 100001 bytes is longer than 256"],
    );
    let deep = format!(
        "{}\n{}{}{}\n",
        seed_definition("watsi"),
        "extra: ",
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let file = write(deep);
    vendor_test(&[&path_str(&file)]).expect_failure("deep nesting", &["nested too deeply"]);
    let big = format!(
        "{}\n# {}\n",
        seed_definition("watsi"),
        "x".repeat(300 * 1024)
    );
    let file = write(big);
    vendor_test(&[&path_str(&file)])
        .expect_failure("a huge file", &["more than a vendor definition may hold"]);
}

#[test]
fn a_10_mb_body_against_a_decode_step_is_mapped_within_the_limits() {
    let dir = TestDir::with_vendors(VendorForm::Definition);
    // The time limit is generous: this is about the work being bounded, and a debug build on a
    // loaded machine is slow; `switchyard-bench map` measures the speed.
    let whatsable = Vendor::new("whatsable", &[&secret(WS, "whatsable", 1)]).plugin_timeout("60s");
    let server = dir.serve(
        &Config::new()
            .max_body_bytes(16 * 1024 * 1024)
            .max_inflight_body_bytes(64 * 1024 * 1024)
            .workspace(
                Workspace::new(WS)
                    .vendor(whatsable)
                    .file_sink("events")
                    .route(Route::new("*", &["events"])),
            ),
    );
    // `last_messages` is JSON inside a string: ~10 MB of it, decoded by the definition.
    let item = r#"{"type":"user","content":"Hello! Hello! Hello! Hello!","content_type":"text"}"#;
    let count = 10 * 1024 * 1024 / item.len();
    let list = format!("[{}]", vec![item; count].join(","));
    let body = serde_json::to_string(&json!({"event": "incoming_message", "data": {
        "last_messages": list, "user_id": "u-big", "user_timestamp": 1234567890,
        "last_message_of_user": "big"}}))
    .expect("a body");
    assert!(body.len() > 10 * 1024 * 1024);
    let id = server
        .deliver(WS, &WHATSABLE, &secret(WS, "whatsable", 1), &body, &[])
        .expect_accepted();
    // Nested past serde_json's limit inside the string: not a list, so `history` is null.
    let deep = json!({"event": "incoming_message", "data": {
        "last_messages": format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        "user_id": "u-deep", "user_timestamp": 1234567891, "last_message_of_user": "deep"}})
    .to_string();
    let deep_id = server
        .deliver(WS, &WHATSABLE, &secret(WS, "whatsable", 1), &deep, &[])
        .expect_accepted();
    let events = dir.sink(WS, "events").wait_for(&deep_id);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["id"], id.as_str());
    assert_eq!(
        events[0]["data"]["history"].as_array().map(Vec::len),
        Some(count)
    );
    assert_eq!(events[1]["data"]["history"], Value::Null);
    // A body over the limit is refused before any plugin sees it (contract.rs).
}

#[test]
fn vendor_test_prints_the_envelope_or_exactly_why_a_delivery_is_refused() {
    let dir = TestDir::without_plugins();
    let file = dir.install_definition(&artifacts().definition("wappcloud"));
    let body = r#"{"event":"status_update","id":"wc_1","message_id":"wamid.1","status":"READ"}"#;
    let body_file = dir.write("body.json", body);
    let signature = WAPPCLOUD.signature("s3cret", body.as_bytes());
    let header = format!("X-Wappcloud-Signature: {signature}");
    let printed = vendor_test(&[
        &path_str(&file),
        "--body",
        &path_str(&body_file),
        "--header",
        &header,
        "--secret",
        "s3cret",
    ]);
    printed.expect_success("vendor test --body");
    for needle in [
        "signature: verified",
        r#""type": "message.status""#,
        r#""status": "read""#,
        r#""dedupe_basis": "event_id""#,
    ] {
        assert!(
            printed.stdout.contains(needle),
            "no {needle:?} in:\n{}",
            printed.stdout
        );
    }
    let other = vendor_test(&[
        &path_str(&file),
        "--body",
        &path_str(&body_file),
        "--header",
        &header,
        "--secret",
        "other",
    ]);
    other.expect_failure("wrong secret", &["401 signature_mismatch"]);
    assert_eq!(other.status.code(), Some(1));
    let conflicting = vendor_test(&[
        &path_str(&file),
        "--body",
        &path_str(&body_file),
        "--header",
        "X-Wappcloud-Event: incoming_message",
    ]);
    conflicting.expect_failure(
        "a disagreeing header",
        &["400 invalid_payload", "the signed body's /event is \"status_update\" but the unsigned x-wappcloud-event header says \"incoming_message\""],
    );
    let untyped = dir.write("untyped.json", r#"{"id":"wc_2"}"#);
    vendor_test(&[&path_str(&file), "--body", &path_str(&untyped)]).expect_failure(
        "no type",
        &["the event type is missing or empty (looked for /event, then the x-wappcloud-event header, then /type)"],
    );
}
