//! The command line: `check` on the shipped routes.yaml (which then serves), `sign`
//! printing a curl line the server accepts, and configuration errors that name the file, the
//! line and the key.

use std::ffi::OsString;
use std::process::Command;

use switchyard_e2e::*;

/// The admin token of the servers these tests start.
const TOKEN: &str = "cli-admin-token-for-e2e";

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

/// acme receiving Watsi into a file sink `events`, with `extra` routes.
fn acme_with_routes(extra: &[Route]) -> Workspace {
    let mut acme = Workspace::new("acme")
        .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
        .file_sink("events")
        .route(Route::new("*", &["events"]));
    for route in extra {
        acme = acme.route(route.clone());
    }
    acme
}

#[test]
fn operator_commands_reach_the_server_when_the_routes_file_does_not_load() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new()
            .admin_token(TOKEN)
            .workspace(acme_with_routes(&[])),
    );
    // The file names the operator listener the server took, and gains a route to no sink.
    let broken = Config::new()
        .admin_token(TOKEN)
        .workspace(acme_with_routes(&[Route::new("message.*", &["nowhere"])]));
    let text = broken.render(&dir).replace(
        "admin_listen: \"127.0.0.1:0\"",
        &format!("admin_listen: \"{}\"", server.admin_addr()),
    );
    let routes = dir.write("routes.yaml", text);
    let mut reload =
        switchyard_command(["reload".as_ref(), "--config".as_ref(), routes.as_os_str()]);
    reload.env_remove("SWITCHYARD_ADMIN_URL");
    let out = run(reload);
    out.expect_failure(
        "reload of a file with a problem",
        &["the server answered 422", "unknown sink `nowhere`"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains("unknown sink `nowhere`"),
        "{}",
        out.stdout
    );

    // No readable file at all: the address and token from the environment.
    let missing = dir.path().join("missing.yaml");
    let mut queues =
        switchyard_command(["queues".as_ref(), "--config".as_ref(), missing.as_os_str()]);
    queues
        .env("SWITCHYARD_ADMIN_URL", server.admin_url(""))
        .env("SWITCHYARD_ADMIN_TOKEN", TOKEN);
    let out = run(queues);
    out.expect_success("queues with SWITCHYARD_ADMIN_URL and no routes file");
    let answer: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(answer["sinks"][0]["sink"], "events", "{answer}");

    // Neither: the default address, and a note saying why.
    let mut queues =
        switchyard_command(["queues".as_ref(), "--config".as_ref(), missing.as_os_str()]);
    queues
        .env_remove("SWITCHYARD_ADMIN_URL")
        .env("SWITCHYARD_ADMIN_TOKEN", TOKEN);
    let out = run(queues);
    let note = format!("cannot read {}", missing.display());
    assert!(out.stderr.contains(&note), "{}", out.stderr);
    assert!(
        out.stderr.contains("using http://127.0.0.1:9090"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("invalid server URL"), "{}", out.stderr);
}

#[test]
fn a_missing_plugins_dir_is_named_with_its_key_not_counted_as_a_refused_plugin() {
    let dir = TestDir::new();
    let missing = dir.path().join("no-such-plugins");
    let text = Config::new()
        .workspace(acme_with_routes(&[]))
        .render(&dir)
        .replace(
            &dir.plugins_dir().to_string_lossy().into_owned(),
            &missing.to_string_lossy(),
        );
    let line = 1 + text
        .lines()
        .position(|l| l.contains("plugins_dir:"))
        .expect("the rendered file sets plugins_dir");
    let routes = dir.write("routes.yaml", text);
    let expected = format!(
        "{}:{line}: server.plugins_dir: the plugins directory {} does not exist",
        routes.display(),
        missing.display()
    );
    let out = check(&routes);
    out.expect_failure("check with a missing plugins_dir", &[&expected]);
    assert!(!out.stderr.contains("refused"), "{}", out.stderr);
    serve_expecting_exit(&routes).expect_failure("serve with a missing plugins_dir", &[&expected]);
}

#[test]
fn a_backup_into_an_existing_directory_is_refused_as_such_and_the_store_stays_ready() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new()
            .admin_token(TOKEN)
            .workspace(acme_with_routes(&[])),
    );
    let backup = |to: &std::path::Path| {
        let url = server.admin_url("");
        let mut command = switchyard_command(["backup", "--url", &url, "--token", TOKEN]);
        command.arg("--to").arg(to);
        run(command)
    };
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let out = backup(&existing);
    let why = format!(
        "cannot back up into {}: it already exists",
        existing.display()
    );
    out.expect_failure(
        "backup into an existing directory",
        &["the server answered 409", &why],
    );
    assert!(!out.stderr.contains("cannot take writes"), "{}", out.stderr);
    assert_eq!(server.operator_get("/readyz").status, 200);

    let fresh = dir.path().join("fresh");
    backup(&fresh).expect_success("backup into a new directory");
    assert!(fresh.join("wal").is_dir());
}

#[test]
fn event_and_dlq_list_show_raw_as_the_vendor_sent_it() {
    let refuses = Receiver::start(Mode::Fail(422));
    let acme = Workspace::new("acme")
        .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
        .http_sink("crm", HttpSink::new(refuses.url()))
        .route(Route::new("*", &["crm"]));
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().admin_token(TOKEN).workspace(acme));
    // Keys out of order, a trailing zero and an integer past 64 bits.
    let raw = r#"{"type":"message.received","id":"evt_raw_1","data":{"zeta":1,"alpha":1.50,"big":12345678901234567890123}}"#;
    let id = server
        .deliver("acme", &WATSI, "watsi-secret-for-e2e", raw, &[])
        .expect_accepted();
    let auth = format!("Bearer {TOKEN}");
    let deadline = std::time::Instant::now() + DELIVERY_DEADLINE;
    let letters = "/admin/workspaces/acme/sinks/crm/dead-letters";
    loop {
        let page = server.operator_request("GET", letters, &[("Authorization", &auth)], None);
        if page.json()["dead_letters"]
            .as_array()
            .is_some_and(|l| l.len() == 1)
        {
            assert!(
                page.body.contains(&format!(r#""raw":{raw}"#)),
                "{}",
                page.body
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead letter: {}",
            page.body
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let answer = server.operator_request(
        "GET",
        &format!("/admin/events/{id}"),
        &[("Authorization", &auth)],
        None,
    );
    assert!(
        answer.body.contains(&format!(r#""raw":{raw}"#)),
        "{}",
        answer.body
    );

    let url = server.admin_url("");
    let operator = ["--url", url.as_str(), "--token", TOKEN];
    let list = ["dlq", "list", "--workspace", "acme", "--sink", "crm"];
    for args in [vec!["event", id.as_str()], list.to_vec()] {
        let out = run(switchyard_command(args.iter().chain(&operator)));
        out.expect_success(args[0]);
        let raw_at = out.stdout.find("\"raw\": {").expect("raw is shown");
        let shown = &out.stdout[raw_at..];
        let mut from = 0;
        for token in [
            "\"type\"",
            "\"id\"",
            "\"zeta\": 1,",
            "\"alpha\": 1.50,",
            "\"big\": 12345678901234567890123",
        ] {
            let at = shown[from..].find(token).unwrap_or_else(|| {
                panic!(
                    "{}: raw should hold {token} next, as sent:\n{}",
                    args[0], out.stdout
                )
            });
            from += at + token.len();
        }
    }
}

#[test]
fn a_development_admin_token_default_is_warned_about_and_serves_the_operator_commands() {
    let dir = TestDir::new();
    let text = Config::new()
        .admin_token("${SWITCHYARD_ADMIN_TOKEN:-dev-admin-token}")
        .workspace(acme_with_routes(&[]))
        .render(&dir);
    let routes = dir.write("routes.yaml", text);
    let out = check(&routes);
    out.expect_success("check with the admin token's default");
    let warning =
        "warning: server.admin_token uses the development default of ${SWITCHYARD_ADMIN_TOKEN}";
    assert!(out.stdout.contains(warning), "{}", out.stdout);

    let server = Server::start(&routes);
    let log = server.log_containing("DEVELOPMENT SECRET IN USE: SWITCHYARD_ADMIN_TOKEN is unset");
    assert!(log.contains("server.admin_token"), "{log}");
    // The client reads the same default from the file.
    let url = server.admin_url("");
    let mut queues = switchyard_command(["queues", "--url", &url]);
    queues.arg("--config").arg(&routes);
    run(queues).expect_success("queues with the token's default");
    assert!(
        !server.log().contains("dev-admin-token"),
        "{}",
        server.log()
    );
}
