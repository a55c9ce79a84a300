//! deploy/ and the Dockerfile, checked as far as this machine can: the alert rules pass
//! promtool's checks and unit tests (deploy/prometheus/alerts.test.yaml) and name only metrics
//! the server exports; the systemd unit passes `systemd-analyze verify` and reloads with SIGHUP;
//! the production routes file passes `switchyard check`; the Dockerfile passes hadolint and
//! builds only the server and the shipped plugins. The image itself is not built: no container
//! engine runs here, and buildah cannot pull the base images without a registry to pull from.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use switchyard_e2e::*;

fn deploy(file: &str) -> PathBuf {
    artifacts().workspace_root.join("deploy").join(file)
}

#[track_caller]
fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs a checker to completion; panics with its output unless it exits 0.
#[track_caller]
fn passes(mut command: Command, what: &str) -> Run {
    command.stdin(std::process::Stdio::null());
    let out = run(command);
    out.expect_success(what);
    out
}

/// The metric names a rule file reads: every `switchyard_*` and `process_*` identifier.
fn metrics_named(rules: &str) -> BTreeSet<String> {
    rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("switchyard_") || word.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// Every sample name (and family name) a `/metrics` page holds.
fn metrics_exported(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_read_only_metrics_the_server_exports() {
    let promtool = tool("promtool");
    let mut check = Command::new(&promtool);
    check
        .args(["check", "rules"])
        .arg(deploy("prometheus/alerts.yaml"));
    passes(check, "promtool check rules");
    // The unit tests: a stalled low-volume sink and a burst of signature failures fire, a sink
    // catching up and a trickle of failures do not.
    let mut test = Command::new(&promtool);
    test.args(["test", "rules"])
        .arg(deploy("prometheus/alerts.test.yaml"));
    passes(test, "promtool test rules");

    // A server with a queue, an accepted event and a signature refusal, so that every labelled
    // family has a series.
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new().workspace(
            Workspace::new("acme")
                .vendor(Vendor::new("watsi", &["watsi-secret-for-e2e"]))
                .file_sink("events")
                .route(Route::new("*", &["events"])),
        ),
    );
    let body = r#"{"id":"evt_metrics","type":"message.received","data":{}}"#;
    let id = server
        .deliver("acme", &WATSI, "watsi-secret-for-e2e", body, &[])
        .expect_accepted();
    dir.sink("acme", "events").wait_for(&id);
    let refused = server.deliver("acme", &WATSI, "another-secret-entirely", body, &[]);
    assert_eq!(refused.status, 401, "{refused:?}");
    let page = server.operator_get("/metrics");
    assert_eq!(page.status, 200, "{page:?}");
    let exported = metrics_exported(&page.body);

    let rules = read(&deploy("prometheus/alerts.yaml"));
    let named = metrics_named(&rules);
    for needed in [
        "switchyard_sink_oldest_queued_seconds",
        "switchyard_hook_refusals_total",
    ] {
        assert!(named.contains(needed), "no alert reads {needed}");
    }
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the alert rules read metrics the server does not export: {missing:?}\n--- /metrics ---\n{}",
        page.body
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_reloads_with_sighup_and_can_write_backups() {
    let unit = read(&deploy("switchyard.service"));
    let service: Vec<&str> = unit
        .lines()
        .skip_while(|l| l.trim() != "[Service]")
        .take_while(|l| l.trim() != "[Install]")
        .collect();
    let setting = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .collect()
    };
    assert_eq!(setting("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    // on-failure counts a death by SIGHUP, SIGINT, SIGTERM or SIGPIPE as clean: no restart.
    assert_eq!(setting("Restart"), ["always"]);
    assert_eq!(setting("RestartPreventExitStatus"), ["78"]);
    let state: Vec<&str> = setting("StateDirectory")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    assert!(state.contains(&"switchyard-backups"), "{state:?}");
    assert!(
        setting("ReadWritePaths").iter().any(|v| v
            .split_whitespace()
            .any(|p| p == "/var/lib/switchyard-backups")),
        "the backups directory must be writable under ProtectSystem=strict"
    );

    // systemd-analyze checks every key and that ExecStart's program exists: the unit as
    // shipped, with the binary where this build put it.
    let dir = tempfile::tempdir().unwrap();
    let installed = unit.replace(
        "/opt/switchyard/switchyard",
        &artifacts().binary.display().to_string(),
    );
    let path = dir.path().join("switchyard.service");
    std::fs::write(&path, installed).unwrap();
    let mut verify = Command::new(tool("systemd-analyze"));
    verify.arg("verify").arg(&path);
    let out = passes(verify, "systemd-analyze verify");
    // It exits 0 on unknown or misplaced keys too, and says so on standard error.
    assert!(
        out.stderr.trim().is_empty(),
        "systemd-analyze verify found problems:\n{}",
        out.stderr
    );
}

#[test]
fn the_production_routes_file_passes_check_with_a_team_file() {
    let dir = TestDir::new();
    let routes = dir.write("routes.yaml", read(&deploy("routes.yaml")));
    std::fs::create_dir(dir.path().join("routes.d")).unwrap();
    dir.write(
        "routes.d/acme.yaml",
        "workspaces:\n  acme:\n    vendors:\n      watsi:\n        secrets: [ \"${ACME_WATSI_SECRET}\" ]\n    sinks:\n      audit: { type: stdout }\n    routes:\n      - to: [audit]\n",
    );
    let mut check = switchyard_command(["check".as_ref(), "--config".as_ref(), routes.as_os_str()]);
    // Its plugins_dir is unset: the plugins beside the binary, where the build put them.
    check.env("ACME_WATSI_SECRET", "acme-watsi-secret-for-e2e");
    let out = passes(check, "check deploy/routes.yaml");
    assert!(out.stdout.contains("ok: 1 workspace(s)"), "{}", out.stdout);
}

#[test]
fn the_dockerfile_passes_hadolint_and_builds_only_the_server_and_the_shipped_plugins() {
    let dockerfile = artifacts().workspace_root.join("Dockerfile");
    let mut lint = Command::new(python_env().bin("hadolint"));
    lint.arg(&dockerfile);
    passes(lint, "hadolint Dockerfile");

    let text = read(&dockerfile);
    let build = text
        .split("RUN ")
        .find(|step| step.contains("cargo build"))
        .expect("the Dockerfile runs cargo build");
    let build = build
        .split("&&")
        .next()
        .unwrap_or_default()
        .replace("\\\n", " ");
    let packages: BTreeSet<&str> = build
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1])
        .collect();
    let shipped: Vec<String> = VENDORS
        .iter()
        .map(|v| format!("switchyard-{}", v.name))
        .collect();
    let expected: BTreeSet<&str> = std::iter::once("switchyard")
        .chain(shipped.iter().map(String::as_str))
        .collect();
    assert_eq!(packages, expected, "{build}");
    assert!(build.contains("--release --locked"), "{build}");

    // The operator listener reachable by the orchestrator, and a volume to back up into.
    assert!(
        text.contains("SWITCHYARD_ADMIN_LISTEN=0.0.0.0:9090"),
        "{text}"
    );
    assert!(
        read(&deploy("routes.yaml")).contains("admin_listen: ${SWITCHYARD_ADMIN_LISTEN"),
        "the image's routes file must read SWITCHYARD_ADMIN_LISTEN"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("VOLUME") && l.contains("/var/lib/switchyard-backups")),
        "{text}"
    );
}
