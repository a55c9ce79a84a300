//! Plugin loading: the five real plugins load; a library without the entry symbol, one built for
//! another ABI major, one whose test vector fails, and two libraries claiming one vendor are each
//! refused by `check` and by `serve`, naming the file and the reason; a plugin that panics costs
//! its delivery a 500 and nothing else.

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

/// The rows of `switchyard plugins --plugins-dir DIR`, split on whitespace, without the header
/// and the closing `(N plugin(s) in DIR)` line.
fn listed_plugins(dir: &TestDir) -> Vec<Vec<String>> {
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
    let rows: Vec<Vec<String>> = lines
        .filter(|l| !l.trim().is_empty() && !l.starts_with('('))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    let footer = format!(
        "({} plugin(s) in {})",
        rows.len(),
        dir.plugins_dir().display()
    );
    assert!(
        out.stdout.contains(&footer),
        "no {footer:?} line in:\n{}",
        out.stdout
    );
    rows
}

#[track_caller]
fn assert_listed(rows: &[Vec<String>], vendor: &VendorScheme) {
    let row = rows
        .iter()
        .find(|r| r[0] == vendor.name)
        .unwrap_or_else(|| panic!("{} is not listed: {rows:?}", vendor.name));
    assert_eq!(
        row[1],
        env!("CARGO_PKG_VERSION"),
        "{}: version",
        vendor.name
    );
    assert_eq!(row[2], "1.0", "{}: ABI", vendor.name);
    assert!(
        row[3].eq_ignore_ascii_case(vendor.header),
        "{}: signature header {} is not {}",
        vendor.name,
        row[3],
        vendor.header
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
fn a_library_built_for_abi_99_is_refused() {
    assert_refused(
        |dir| vec![dir.install_fixture("wrong_abi", "wrongabi")],
        &["ABI 99"],
    );
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
