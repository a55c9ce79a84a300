//! The command line: `check` on the shipped routes.yaml (which then serves), `sign`
//! printing a curl line the server accepts, and configuration errors that name the file, the
//! line and the key.

use std::ffi::OsString;
use std::process::Command;

use switchyard_e2e::*;

/// The routes.yaml the project ships, unchanged, in a directory laid out as a checkout (see
/// `DemoDir`): never the checkout's own copy, which is the user's to edit.
#[test]
fn the_shipped_routes_yaml_passes_check_and_serves() {
    let demo = DemoDir::new();
    let out = check(&demo.routes());
    out.expect_success("switchyard check on routes.yaml");
    assert!(out.stdout.contains("ok: 1 workspace(s)"), "{}", out.stdout);
    for vendor in VENDORS {
        assert!(out.stdout.contains(vendor.name), "{}", out.stdout);
    }

    // Out of the box: the demo workspace with its development secrets.
    let server = demo.serve();
    let message = server
        .deliver(
            "demo",
            &WATSI,
            "dev-watsi-secret",
            r#"{"id":"evt_demo_1","type":"message.received","data":{"text":"hello demo"}}"#,
            &[],
        )
        .expect_accepted();
    let contact = server
        .deliver(
            "demo",
            &DOCSSMITH,
            "dev-docssmith-secret",
            r#"{"id":"evt_demo_2","type":"contact.created","payload":{"id":"c1"}}"#,
            &[],
        )
        .expect_accepted();
    // `message.*` goes to messages; everything goes to events and the console.
    let data = demo.path().join("data");
    let messages = SinkFile::at(data.join("demo-messages.jsonl")).wait_for(&message);
    assert_eq!(messages[0]["data"]["text"], "hello demo");
    let events = SinkFile::at(data.join("demo-events.jsonl")).wait_for(&contact);
    assert_eq!(count_id(&events, &message), 1, "{events:#?}");
    assert_eq!(
        server.wait_for_stdout_event(&contact)["type"],
        "contact.created"
    );
}

#[test]
fn sign_prints_a_curl_line_the_server_accepts() {
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().workspace(Workspace::standard("acme")));
    // (vendor, body, extra `sign` arguments, the canonical type it must arrive as)
    let cases: [(VendorScheme, &str, &[&str], &str); 5] = [
        (
            WATSI,
            r#"{"id":"evt_signed","type":"message.received","data":{"text":"it's signed"}}"#,
            &[],
            "message.received",
        ),
        (
            WHATSABLE,
            r#"{"event":"message_status","data":{"message_id":"wamid.signed","status":"sent"}}"#,
            &[],
            "message.status",
        ),
        (
            WHATSSYNC,
            r#"{"event":"message.status","id":"status_signed","data":{"messageId":"m","status":"read"}}"#,
            &[],
            "message.status",
        ),
        // Wappcloud names the type in a header, which `sign --event-type` adds.
        (
            WAPPCLOUD,
            r#"{"id":"wc_signed","message_id":"wamid.wc","status":"delivered"}"#,
            &["--event-type", "status_update"],
            "message.status",
        ),
        (
            DOCSSMITH,
            r#"{"id":"ds_signed","type":"group.created","payload":{"id":"g1"}}"#,
            &[],
            "group.created",
        ),
    ];
    // The curl line runs through sh: a missing curl would only say `not found`.
    tool("curl");
    let mut ids = Vec::new();
    for (vendor, body, extra, canonical_type) in cases {
        let key = secret("acme", vendor.name, 1);
        let file = dir.write(&format!("{}.json", vendor.name), body);
        let url = server.url("");
        let mut args: Vec<OsString> = [
            "sign",
            "--vendor",
            vendor.name,
            "--secret",
            &key,
            "--workspace",
            "acme",
            "--url",
            &url,
        ]
        .iter()
        .chain(extra)
        .map(OsString::from)
        .collect();
        args.extend([
            "--file".into(),
            file.into_os_string(),
            "--plugins-dir".into(),
            dir.plugins_dir().into_os_string(),
        ]);
        let mut command = switchyard_command(args);
        command.current_dir(dir.path());
        let out = run(command);
        out.expect_success("switchyard sign");
        // The header it prints is the one computed here, independently.
        let expected = format!(
            "{}: {}",
            vendor.header,
            vendor.signature(&key, body.as_bytes())
        );
        assert!(
            out.stdout
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&expected)),
            "{}: no line {expected:?} in:\n{}",
            vendor.name,
            out.stdout
        );
        let curl = out
            .stdout
            .lines()
            .find(|l| l.starts_with("curl "))
            .unwrap_or_else(|| panic!("no curl line in:\n{}", out.stdout));

        // The exact line, through a shell, twice: accepted, then a duplicate.
        let mut answers = Vec::new();
        for _ in 0..2 {
            let mut shell = Command::new("sh");
            shell.arg("-c").arg(curl).current_dir(dir.path());
            let ran = run(shell);
            assert!(
                ran.status.success(),
                "the curl line failed ({}):\n{curl}\n{}",
                ran.status,
                ran.stderr
            );
            let answer: Value = serde_json::from_str(&ran.stdout)
                .unwrap_or_else(|e| panic!("curl printed no JSON ({e}): {}\n{curl}", ran.stdout));
            answers.push(answer);
        }
        assert_eq!(
            answers[0]["status"], "accepted",
            "{}: {answers:?}",
            vendor.name
        );
        assert_eq!(
            answers[1]["status"], "duplicate",
            "{}: {answers:?}",
            vendor.name
        );
        assert_eq!(answers[0]["id"], answers[1]["id"]);
        let id = answers[0]["id"].as_str().unwrap_or_default().to_owned();
        ids.push((id, vendor.name, canonical_type));
    }
    let events = dir.sink("acme", "events").wait_for(&ids.last().unwrap().0);
    assert_eq!(events.len(), ids.len(), "{events:#?}");
    for ((id, vendor, canonical_type), event) in ids.iter().zip(&events) {
        assert_subset(
            &json!({"id": id, "vendor": vendor, "type": canonical_type}),
            event,
            "signed delivery",
        );
    }
}

#[test]
fn a_configuration_error_names_the_file_the_line_and_the_key() {
    let dir = TestDir::new();
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
            .file_sink("events")
            .route(Route::new("*", &["events"]))
            .route(Route::new("message.*", &["events", "nowhere"])),
    );
    let path = dir.write_config(&config);
    let text = config.render(&dir);
    let line = 1 + text
        .lines()
        .position(|l| l.contains("\"nowhere\""))
        .expect("the route is in the file");
    let expected = format!(
        "{}:{line}: workspaces.acme.routes[1].to[1]: unknown sink `nowhere`",
        path.display()
    );
    check(&path).expect_failure("check", &[&expected]);
    serve_expecting_exit(&path).expect_failure("serve", &[&expected]);
}

#[test]
fn a_missing_environment_variable_is_named_with_its_key() {
    const VAR: &str = "SWITCHYARD_E2E_SURELY_UNSET_VARIABLE";
    let dir = TestDir::new();
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &[&format!("${{{VAR}}}")]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    );
    let path = dir.write_config(&config);
    let line = 1 + config
        .render(&dir)
        .lines()
        .position(|l| l.contains(VAR))
        .expect("the secret is in the file");
    let mut command = switchyard_command(["check".as_ref(), "--config".as_ref(), path.as_os_str()]);
    command.env_remove(VAR);
    run(command).expect_failure(
        "check",
        &[
            &format!(
                "{}:{line}: workspaces.acme.vendors.watsi.secrets[0]",
                path.display()
            ),
            VAR,
        ],
    );
}
