//! Plugin loading: the five real plugins load, each saying what identifies its events; a plugin
//! built against ABI 1.0 (a smaller descriptor, NULL optional functions) loads and serves; a
//! library without the entry symbol, one built for another ABI major, one with a NULL
//! `map_event`, one whose test vector fails, a truncated or corrupt file, and two libraries
//! claiming one vendor are each refused by `check` and by `serve`, naming the file and the
//! reason; a plugin that panics costs its delivery a 500 and nothing else; one that hangs is cut
//! off at its time limit and, repeated, quarantined while every other vendor is served.

use std::path::PathBuf;

use switchyard_e2e::*;

/// One workspace receiving Watsi, all events to one file sink.
fn watsi_config() -> Config {
    Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    )
}

/// One plugin as `switchyard plugins` lists it: its row split on whitespace, and the text of the
/// `dedupe:` line under it.
#[derive(Debug)]
struct Listed {
    row: Vec<String>,
    dedupe: String,
}

/// The plugins `switchyard plugins --plugins-dir DIR` lists, without the header and the closing
/// `(N plugin(s) in DIR)` line.
fn listed_plugins(dir: &TestDir) -> Vec<Listed> {
    let mut command = switchyard_command([
        "plugins".as_ref(),
        "--plugins-dir".as_ref(),
        dir.plugins_dir().as_os_str(),
    ]);
    command.current_dir(dir.path());
    let out = run(command);
    out.expect_success("switchyard plugins");
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("VENDOR"),
        "unexpected header: {}",
        out.stdout
    );
    let mut listed: Vec<Listed> = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty() && !l.starts_with('(')) {
        let indented = line.starts_with(' ');
        match line.trim_start().strip_prefix("dedupe: ") {
            Some(dedupe) if indented => {
                let last = listed
                    .last_mut()
                    .expect("a dedupe line follows its plugin's row");
                last.dedupe = dedupe.to_owned();
            }
            // The plugin's form and file (`library: /path`).
            None if indented => {}
            _ => listed.push(Listed {
                row: line.split_whitespace().map(str::to_owned).collect(),
                dedupe: String::new(),
            }),
        }
    }
    let footer = format!(
        "({} plugin(s) in {})",
        listed.len(),
        dir.plugins_dir().display()
    );
    assert!(
        out.stdout.contains(&footer),
        "no {footer:?} line in:\n{}",
        out.stdout
    );
    listed
}

/// What each vendor's plugin says identifies its events.
fn dedupe_of(vendor: &str) -> &'static str {
    match vendor {
        "watsi" => "event_id: id; delivery_id: X-Watsi-Delivery-Id when the body has no id",
        "whatsable" => "content: message_id, status, timestamp (status) or user, user_timestamp, text (incoming); else body_hash",
        "whatssync" => "event_id: id",
        "wappcloud" => "event_id: id; else body_hash",
        "docssmith" => "event_id: id + type + payload.updated_at",
        other => panic!("no dedupe statement known for {other}"),
    }
}

#[track_caller]
fn assert_listed(listed: &[Listed], vendor: &VendorScheme) {
    let plugin = listed
        .iter()
        .find(|p| p.row[0] == vendor.name)
        .unwrap_or_else(|| panic!("{} is not listed: {listed:?}", vendor.name));
    let row = &plugin.row;
    assert_eq!(
        row[1],
        env!("CARGO_PKG_VERSION"),
        "{}: version",
        vendor.name
    );
    assert_eq!(row[2], "1.1", "{}: ABI", vendor.name);
    assert!(
        row[3].eq_ignore_ascii_case(vendor.header),
        "{}: signature header {} is not {}",
        vendor.name,
        row[3],
        vendor.header
    );
    assert_eq!(
        plugin.dedupe,
        dedupe_of(vendor.name),
        "{}: dedupe",
        vendor.name
    );
}

#[test]
fn each_real_plugin_loads_alone_and_all_five_load_together() {
    for vendor in VENDORS {
        let dir = TestDir::without_plugins();
        dir.install(&artifacts().plugin(vendor.name), vendor.name);
        let rows = listed_plugins(&dir);
        assert_eq!(rows.len(), 1, "{}: {rows:?}", vendor.name);
        assert_listed(&rows, &vendor);
    }
    let dir = TestDir::new();
    let rows = listed_plugins(&dir);
    assert_eq!(rows.len(), 5, "{rows:?}");
    for vendor in VENDORS {
        assert_listed(&rows, &vendor);
    }
}

/// Installs a broken library beside the five real plugins and checks that `check` and `serve`
/// both refuse to go on, naming each of `files` and every reason. The same configuration passes
/// `check` before the library is installed, so the refusal is the library's doing.
fn assert_refused(install: impl FnOnce(&TestDir) -> Vec<PathBuf>, reasons: &[&str]) -> String {
    let dir = TestDir::new();
    let config = dir.write_config(&watsi_config());
    check(&config).expect_success("check before the broken library is installed");
    let files: Vec<String> = install(&dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut needles: Vec<&str> = files.iter().map(String::as_str).collect();
    needles.extend_from_slice(reasons);

    let checked = check(&config);
    checked.expect_failure("check", &needles);
    let served = serve_expecting_exit(&config);
    served.expect_failure("serve", &needles);
    assert!(
        !served.stderr.contains("switchyard is listening"),
        "serve listened despite a refused plugin:\n{}",
        served.stderr
    );
    format!("{}\n{}", checked.stderr, served.stderr)
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    assert_refused(
        |dir| vec![dir.install_fixture("no_symbol", "nosymbol")],
        &["does not export", "switchyard_plugin_v1"],
    );
}

#[test]
fn a_library_built_for_abi_99_is_refused_naming_both_versions() {
    assert_refused(
        |dir| vec![dir.install_fixture("wrong_abi", "wrongabi")],
        &["ABI 99.x", "this server speaks 1.1"],
    );
}

#[test]
fn a_descriptor_with_a_null_map_event_is_refused() {
    assert_refused(
        |dir| vec![dir.install_fixture("null_map_event", "nullmap")],
        &["invalid descriptor", "`map_event` is NULL"],
    );
}

#[test]
fn a_truncated_or_corrupt_plugin_file_is_refused_before_it_is_loaded() {
    assert_refused(
        |dir| {
            let real = std::fs::read(artifacts().plugin("watsi")).expect("the watsi plugin");
            let cut = dir
                .plugins_dir()
                .join(library_file_name("switchyard_truncated"));
            std::fs::write(&cut, &real[..real.len() / 3]).expect("write the truncated copy");
            vec![cut]
        },
        &["refused before loading", "truncated"],
    );
    assert_refused(
        |dir| {
            let junk = dir.plugins_dir().join(library_file_name("switchyard_junk"));
            let bytes: Vec<u8> = (0..64 * 1024).map(|_| fastrand::u8(..)).collect();
            std::fs::write(&junk, bytes).expect("write the junk file");
            vec![junk]
        },
        &["refused before loading", "not an ELF shared library"],
    );
}

/// The `older_minor` fixture's vendor.
const OLDMINOR: VendorScheme = VendorScheme {
    name: "oldminor",
    header: "X-Oldminor-Signature",
    prefix: "",
};

#[test]
fn a_plugin_built_against_abi_1_0_loads_and_serves() {
    let dir = TestDir::new();
    dir.install_fixture("older_minor", "oldminor");
    let listed = listed_plugins(&dir);
    let old = listed
        .iter()
        .find(|p| p.row[0] == "oldminor")
        .unwrap_or_else(|| panic!("oldminor is not listed: {listed:?}"));
    assert_eq!(old.row[2], "1.0", "{old:?}");
    assert!(old.dedupe.contains("not stated (ABI 1.0)"), "{old:?}");

    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("oldminor", &["old-minor-secret-for-e2e"]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    );
    let server = dir.serve(&config);
    let body = r#"{"b":1,"a":12345678901234567890123}"#;
    let id = server
        .deliver("acme", &OLDMINOR, "old-minor-secret-for-e2e", body, &[])
        .expect_accepted();
    // A 1.0 plugin reports no identity: keyed on the canonical body, so a re-serialised retry
    // is a repeat.
    let resent = r#"{ "a": 12345678901234567890123, "b": 1 }"#;
    let again = server
        .deliver("acme", &OLDMINOR, "old-minor-secret-for-e2e", resent, &[])
        .expect_ok("duplicate");
    assert_eq!(again, id);
    let events = dir.sink("acme", "events").wait_for(&id);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_subset(
        &json!({"type": "ping", "dedupe_basis": "body_hash", "data": {"from": "oldminor"}}),
        &events[0],
        "oldminor envelope",
    );
    // The plugin's own `raw` is ignored: the core's is the request body.
    let text = std::fs::read_to_string(dir.sink("acme", "events").path()).unwrap();
    assert!(
        text.trim_end().ends_with(&format!(r#","raw":{body}}}"#)),
        "{text}"
    );
}

/// The `slow` fixture's vendor.
const SLOW: VendorScheme = VendorScheme {
    name: "slow",
    header: "X-Slow-Signature",
    prefix: "",
};

/// acme with watsi and the `slow` fixture (installed in `dir`), whose plugin calls may take
/// 300 ms, routed to a file sink.
fn serve_with_slow(dir: &TestDir) -> Server {
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
            .vendor(Vendor::new("slow", &["slow-plugin-secret-for-e2e"]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    );
    let yaml = config.render(dir).replace(
        "        secrets: [\"slow-plugin-secret-for-e2e\"]\n",
        "        secrets: [\"slow-plugin-secret-for-e2e\"]\n        plugin_timeout: \"300ms\"\n",
    );
    assert!(yaml.contains("plugin_timeout"), "{yaml}");
    Server::start(&dir.write("routes.yaml", yaml))
}

#[test]
fn a_plugin_past_its_time_limit_is_answered_503_and_quarantined_when_it_keeps_failing() {
    let dir = TestDir::new();
    dir.install_fixture("slow", "slow");
    let mut server = serve_with_slow(&dir);
    let slow = |id: &str, sleep_ms: u64| {
        let body = format!(r#"{{"id":"{id}","type":"ping","sleep_ms":{sleep_ms}}}"#);
        server.deliver("acme", &SLOW, "slow-plugin-secret-for-e2e", &body, &[])
    };

    slow("quick", 0).expect_accepted();
    for i in 0..3 {
        // The plugin sleeps past the client's own timeout: an answer at all is one that did
        // not wait for it.
        let message = slow(&format!("hung-{i}"), HANG_MS).expect_error(503, "plugin_timeout");
        assert!(message.contains("300ms"), "{message}");
    }
    // Three in a row: quarantined, so even a quick delivery is refused without a call.
    let reply = slow("quick-again", 0);
    let message = reply.expect_error(503, "plugin_quarantined");
    assert!(
        message.contains("quarantined") && message.contains("3 failed calls in a row"),
        "{message}"
    );
    assert!(reply.header("retry-after").is_some(), "{reply:?}");

    // Every other vendor is served meanwhile.
    let body = r#"{"id":"evt_beside_slow","type":"message.received","data":{"text":"served"}}"#;
    let id = server
        .deliver("acme", &WATSI, "watsi-secret-for-e2e", body, &[])
        .expect_accepted();
    dir.sink("acme", "events").wait_for(&id);
    assert!(server.is_running(), "the server died:\n{}", server.log());
    let metrics = server.operator_get("/metrics").body;
    for line in [
        r#"switchyard_plugin_faults_total{vendor="slow",kind="timeout"} 3"#,
        r#"switchyard_plugin_faults_total{vendor="slow",kind="quarantined"} 1"#,
    ] {
        assert!(metrics.contains(line), "no {line} in:\n{metrics}");
    }
    assert!(
        server.log().contains("vendor plugin quarantined"),
        "{}",
        server.log()
    );
}

/// Longer than the test client waits for any answer ([`REQUEST_TIMEOUT`]): a request that
/// calls a plugin sleeping this long is answered at all only if the server did not wait for it.
const HANG_MS: u64 = 60_000;

#[test]
fn a_plugin_hanging_in_its_own_verify_or_handshake_is_answered_within_its_limit_and_others_are_served(
) {
    let dir = TestDir::new();
    dir.install_fixture("slow", "slow");
    let server = serve_with_slow(&dir);
    let slow = |id: &str, verify_sleep_ms: u64| {
        let body = format!(r#"{{"id":"{id}","type":"ping","verify_sleep_ms":{verify_sleep_ms}}}"#);
        server.deliver("acme", &SLOW, "slow-plugin-secret-for-e2e", &body, &[])
    };
    slow("verified-by-the-plugin", 0).expect_accepted();

    // Two deliveries whose signature check hangs, at once: each is answered at its limit.
    std::thread::scope(|scope| {
        let hung: Vec<_> = (0..2)
            .map(|i| scope.spawn(move || slow(&format!("hung-verify-{i}"), HANG_MS)))
            .collect();
        for reply in hung {
            let message = reply
                .join()
                .expect("a delivery thread")
                .expect_error(503, "plugin_timeout");
            assert!(message.contains("300ms"), "{message}");
        }
    });

    // Both checks still hang in the plugin; every other request is served meanwhile: another
    // vendor's delivery, and this vendor's handshake.
    let body = r#"{"id":"evt_beside_hung_verify","type":"message.received"}"#;
    let id = server
        .deliver("acme", &WATSI, "watsi-secret-for-e2e", body, &[])
        .expect_accepted();
    dir.sink("acme", "events").wait_for(&id);
    let path = format!("{}?challenge=c-1", hook("acme", "slow"));
    let handshake = server.get(&path);
    assert_eq!(handshake.status, 200, "{}", handshake.body);
    assert_eq!(handshake.json()["challenge"], "c-1");

    // The plugin's own handshake hanging is answered at its limit too.
    let path = format!("{}?challenge=c-2&sleep_ms={HANG_MS}", hook("acme", "slow"));
    let message = server.get(&path).expect_error(503, "plugin_timeout");
    assert!(message.contains("300ms"), "{message}");
    let metrics = server.operator_get("/metrics").body;
    let timeouts = r#"switchyard_plugin_faults_total{vendor="slow",kind="timeout"} 3"#;
    assert!(metrics.contains(timeouts), "no {timeouts} in:\n{metrics}");
}

#[test]
fn a_plugin_whose_test_vector_fails_is_refused_without_printing_the_expected_value() {
    let stderr = assert_refused(
        |dir| vec![dir.install_fixture("bad_vector", "badvector")],
        &["test vector"],
    );
    // What the vector's header should have been: a refusal must not hand it out.
    let expected = hmac_sha256_hex(b"badvector-test-vector-secret", br#"{"type":"ping"}"#);
    assert!(
        !stderr.contains(&expected),
        "the refusal prints the correct signature {expected}:\n{stderr}"
    );
}

#[test]
fn two_libraries_claiming_one_vendor_are_refused() {
    assert_refused(
        |dir| {
            let original = dir
                .plugins_dir()
                .join(library_file_name("switchyard_watsi"));
            let copy = dir.install(&artifacts().plugin("watsi"), "watsi_again");
            vec![original, copy]
        },
        &["vendor `watsi`", "already provided"],
    );
}

#[test]
fn a_panicking_plugin_answers_500_and_the_server_keeps_serving() {
    let dir = TestDir::new();
    dir.install_fixture("panics", "panics");
    let config = Config::new().workspace(
        Workspace::new("acme")
            .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
            .vendor(Vendor::new("panics", &["panics-secret-for-e2e"]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    );
    // It loads fine: its descriptor and test vector are correct.
    check(&dir.write_config(&config)).expect_success("check with the panics fixture");
    let mut server = dir.serve(&config);
    let ping = r#"{"type":"ping"}"#;

    // Unsigned, it never reaches the plugin.
    server
        .post(&hook("acme", "panics"), &[], ping.as_bytes())
        .expect_error(401, "signature_missing");
    for _ in 0..2 {
        server
            .deliver("acme", &PANICS, "panics-secret-for-e2e", ping, &[])
            .expect_error(500, "plugin_failed");
        assert!(server.is_running(), "the server died:\n{}", server.log());
    }

    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{health:?}");
    let body = r#"{"id":"evt_after_panic","type":"message.received","data":{"text":"still here"}}"#;
    let id = server
        .deliver("acme", &WATSI, "watsi-secret-for-e2e", body, &[])
        .expect_accepted();
    let events = dir.sink("acme", "events").wait_for(&id);
    assert_eq!(
        events.len(),
        1,
        "the panicking deliveries wrote events: {events:?}"
    );
    assert_eq!(events[0]["data"]["text"], "still here");
    assert!(server.is_running(), "the server died:\n{}", server.log());
}

#[test]
fn a_plugin_built_with_panic_abort_does_not_compile() {
    // Under panic=abort a plugin's panic would kill the server instead of failing one request,
    // so the export macro refuses to compile. Build the real Watsi plugin that way (the flag
    // applies to that crate alone) after the workspace build, so cargo's lock is free.
    let built = artifacts();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "rustc",
            "-p",
            "switchyard-watsi",
            "--lib",
            "--manifest-path",
        ])
        .arg(built.workspace_root.join("Cargo.toml"))
        .args(["--", "-C", "panic=abort"])
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it compiled:\n{stderr}");
    assert!(
        stderr.contains("switchyard plugins must be built with panic = \"unwind\""),
        "refused for another reason:\n{stderr}"
    );
}

#[test]
fn the_out_of_tree_template_builds_outside_the_repository_and_loads() {
    // Copied out of the repository, with its SDK dependency pointed back at this one, as a
    // plugin author's own crate would be; built with this workspace's lock file and target
    // directory so nothing is downloaded or rebuilt needlessly.
    let built = artifacts();
    let root = &built.workspace_root;
    let dir = TestDir::without_plugins();
    let crate_dir = dir.path().join("acmechat");
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    let template = root.join("templates/vendor-plugin");
    let manifest = std::fs::read_to_string(template.join("Cargo.toml"))
        .unwrap()
        .replace(
            r#"path = "../../plugins/sdk""#,
            &format!("path = {:?}", root.join("plugins/sdk")),
        );
    std::fs::write(crate_dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(template.join("src/lib.rs"), crate_dir.join("src/lib.rs")).unwrap();
    std::fs::copy(root.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target = built.profile_dir.parent().unwrap().join("template");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["build", "--offline", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "the template does not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.install(
        &target
            .join("debug")
            .join(library_file_name("switchyard_acmechat")),
        "acmechat",
    );
    let listed = listed_plugins(&dir);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].row[0], "acmechat");
    assert_eq!(listed[0].row[2], "1.1");
    assert!(listed[0].dedupe.starts_with("event_id: id"), "{listed:?}");
}
