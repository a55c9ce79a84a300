//! Running switchyard as a shared service: per-team files (`server.include`), per-workspace
//! quotas, JSON logs, the operational metrics, `SWITCHYARD_CONFIG`, exit statuses, and `sign`
//! using the configured address.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_e2e::*;

/// sysexits' EX_CONFIG: the status of every command refused for its configuration.
const EX_CONFIG: i32 = 78;

/// `config` rendered for `dir`, split into its `server:` section and its `workspaces:` map
/// (with the `workspaces:` line), so the workspaces can go into files of their own.
fn sections(config: &Config, dir: &TestDir) -> (String, String) {
    let text = config.render(dir);
    let (server, workspaces) = text
        .split_once("workspaces:\n")
        .expect("a rendered config has workspaces");
    (server.to_owned(), format!("workspaces:\n{workspaces}"))
}

/// `text` with `line` added right after the line `after` (which must be there).
fn insert_after(text: &str, after: &str, line: &str) -> String {
    assert!(text.contains(after), "no {after:?} in:\n{text}");
    text.replacen(after, &format!("{after}{line}"), 1)
}

/// One workspace receiving Watsi into a file sink `events`.
fn watsi_workspace(name: &str) -> Workspace {
    Workspace::new(name)
        .vendor(Vendor::new("watsi", &[&secret(name, "watsi", 1)]))
        .file_sink("events")
        .route(Route::new("*", &["events"]))
}

fn watsi_event(id: &str) -> String {
    format!(r#"{{"id":"{id}","type":"message.received","data":{{"text":"hello {id}"}}}}"#)
}

/// Writes `text` to `name` under the directory, creating its parent directories.
fn write_file(dir: &TestDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn team_files_are_served_and_a_workspace_defined_twice_is_refused_naming_both_files() {
    let dir = TestDir::new();
    let (server_section, _) = sections(&Config::new().workspace(watsi_workspace("x")), &dir);
    let main = dir.write(
        "routes.yaml",
        format!("{server_section}  include: ./teams\n"),
    );
    let team = |name: &str| sections(&Config::new().workspace(watsi_workspace(name)), &dir).1;
    write_file(&dir, "teams/alpha.yaml", &team("alpha"));
    write_file(&dir, "teams/beta.yml", &team("beta"));
    write_file(&dir, "teams/README.md", "not a team file");

    let out = check(&main);
    out.expect_success("check with two team files");
    assert!(out.stdout.contains("ok: 2 workspace(s)"), "{}", out.stdout);
    for file in ["teams/alpha.yaml", "teams/beta.yml"] {
        let included = format!("included {}", dir.path().join(file).display());
        assert!(out.stdout.contains(&included), "{}", out.stdout);
    }
    let server = Server::start(&main);
    for name in ["alpha", "beta"] {
        let body = watsi_event(&format!("evt_{name}"));
        let id = server
            .deliver(name, &WATSI, &secret(name, "watsi", 1), &body, &[])
            .expect_accepted();
        dir.sink(name, "events").wait_for(&id);
    }
    drop(server);

    // A third team file that defines `alpha` again.
    let again = format!("# copied from alpha\n{}", team("alpha"));
    write_file(&dir, "teams/gamma.yaml", &again);
    let first = format!("{}:2", dir.path().join("teams/alpha.yaml").display());
    let second = format!(
        "{}:3: workspaces.alpha: workspace `alpha` is defined twice: first in {first}",
        dir.path().join("teams/gamma.yaml").display()
    );
    let out = check(&main);
    out.expect_failure("check with alpha twice", &[&second]);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{}", out.stderr);
    let out = serve_expecting_exit(&main);
    out.expect_failure("serve with alpha twice", &[&second]);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{}", out.stderr);
}

#[test]
fn a_flooded_workspace_gets_429_with_retry_after_while_another_keeps_its_200s() {
    let dir = TestDir::new();
    let config = Config::new()
        .workspace(watsi_workspace("a"))
        .workspace(watsi_workspace("b"));
    // One token an hour after a burst of 5: nothing refills while the test runs.
    let text = insert_after(
        &config.render(&dir),
        "  \"a\":\n",
        "    limits: { rate: 1/h, burst: 5 }\n",
    );
    let server = Server::start(&dir.write("routes.yaml", text));
    let (mut a_accepted, mut a_refused, mut b_accepted) = (0, 0, 0);
    for n in 0..20 {
        let body = watsi_event(&format!("evt_a_{n}"));
        let reply = server.deliver("a", &WATSI, &secret("a", "watsi", 1), &body, &[]);
        if reply.status == 200 {
            reply.expect_accepted();
            a_accepted += 1;
        } else {
            let message = reply.expect_error(429, "rate_limited");
            assert!(message.contains("1/h, burst 5"), "{message}");
            let wait: u64 = (reply.header("retry-after"))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| reply.fail("a 429 without a whole Retry-After"));
            assert!((3500..=3600).contains(&wait), "Retry-After: {wait}");
            a_refused += 1;
        }
        let body = watsi_event(&format!("evt_b_{n}"));
        server
            .deliver("b", &WATSI, &secret("b", "watsi", 1), &body, &[])
            .expect_accepted();
        b_accepted += 1;
    }
    assert_eq!((a_accepted, a_refused, b_accepted), (5, 15, 20));
}

#[test]
fn a_workspace_whose_sinks_owe_max_queue_events_gets_429_queue_full() {
    let dir = TestDir::new();
    // The receiver never answers and the sink waits an hour for it: accepted events stay owed.
    let receiver = Receiver::start(Mode::Hang);
    let stuck = Workspace::new("a")
        .vendor(Vendor::new("watsi", &[&secret("a", "watsi", 1)]))
        .http_sink("crm", HttpSink::new(receiver.url()).timeout("1h"))
        .route(Route::new("*", &["crm"]));
    let config = Config::new()
        .workspace(stuck)
        .workspace(watsi_workspace("b"));
    let text = insert_after(
        &config.render(&dir),
        "  \"a\":\n",
        "    limits: { max_queue: 2 }\n",
    );
    let server = Server::start(&dir.write("routes.yaml", text));
    let deliver_a = |n: u32| {
        let body = watsi_event(&format!("evt_a_{n}"));
        server.deliver("a", &WATSI, &secret("a", "watsi", 1), &body, &[])
    };
    deliver_a(1).expect_accepted();
    deliver_a(2).expect_accepted();
    let refused = deliver_a(3);
    let message = refused.expect_error(429, "queue_full");
    assert!(message.contains("2 events queued"), "{message}");
    assert_eq!(refused.header("retry-after"), Some("5"));
    let body = watsi_event("evt_b");
    server
        .deliver("b", &WATSI, &secret("b", "watsi", 1), &body, &[])
        .expect_accepted();
}

#[test]
fn json_log_lines_carry_fields_and_never_a_secret_or_signature() {
    let dir = TestDir::new();
    let config = Config::new().workspace(watsi_workspace("acme"));
    let text = insert_after(&config.render(&dir), "server:\n", "  log_format: json\n");
    let routes = dir.write("routes.yaml", text);
    // Debug, for the per-delivery lines and the request's span.
    let server = Server::start_with_env(&routes, &[("RUST_LOG", "info,switchyard=debug")]);
    let secret = secret("acme", "watsi", 1);
    let body = watsi_event("evt_json_1");
    let good_signature = WATSI.signature(&secret, body.as_bytes());
    let id = server
        .deliver(
            "acme",
            &WATSI,
            &secret,
            &body,
            &[("X-Watsi-Delivery-Id", "dlv_json_1")],
        )
        .expect_accepted();
    let wrong = "a-wrong-secret-of-some-length";
    let bad_signature = WATSI.signature(wrong, body.as_bytes());
    server
        .deliver("acme", &WATSI, wrong, &body, &[])
        .expect_error(401, "signature_mismatch");
    let log = server.log_containing("\"answer\":\"signature_mismatch\"");
    drop(server);

    let lines: Vec<Value> = (log.lines())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let find = |message: &str| {
        (lines.iter())
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in:\n{log}"))
    };
    let listening = find("switchyard is listening");
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["workspaces"], "acme");
    assert!(listening["addr"].as_str().is_some(), "{listening}");
    assert!(listening["timestamp"].as_str().is_some(), "{listening}");

    let accepted = find("event accepted");
    let span = &accepted["span"];
    assert_eq!(span["workspace"], "acme", "{accepted}");
    assert_eq!(span["vendor"], "watsi", "{accepted}");
    assert_eq!(span["event_id"], id.as_str(), "{accepted}");
    assert_eq!(span["delivery_id"], "dlv_json_1", "{accepted}");
    assert_eq!(span["event_type"], "message.received", "{accepted}");
    assert_eq!(span["vendor_event_id"], "evt_json_1", "{accepted}");

    let answered = find("delivery answered");
    assert_eq!(answered["span"]["event_id"], id.as_str(), "{answered}");
    assert_eq!(answered["span"]["delivery_id"], "dlv_json_1", "{answered}");
    assert_eq!(answered["answer"], "accepted", "{answered}");
    assert_eq!(answered["status"], 200, "{answered}");
    assert!(answered["latency_ms"].as_f64().is_some(), "{answered}");

    let refused = find("delivery refused: signature");
    assert_eq!(refused["level"], "WARN");
    assert_eq!(refused["workspace"], "acme");
    assert_eq!(refused["vendor"], "watsi");
    assert!(refused["reason"].as_str().is_some(), "{refused}");

    for secret_value in [secret.as_str(), wrong, &good_signature, &bad_signature] {
        assert!(
            !log.contains(secret_value),
            "the log holds {secret_value:?}:\n{log}"
        );
    }
}

/// The value of the one sample `series` (name and labels exactly as exposed).
fn sample(metrics: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    (metrics.lines())
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

#[test]
fn metrics_show_build_info_process_figures_and_refusals_by_reason() {
    let dir = TestDir::new();
    let config = Config::new().workspace(watsi_workspace("a"));
    let text = insert_after(
        &config.render(&dir),
        "  \"a\":\n",
        "    limits: { rate: 1/h, burst: 3 }\n",
    );
    let server = Server::start(&dir.write("routes.yaml", text));
    let secret = secret("a", "watsi", 1);
    let body = watsi_event("evt_mix_1");
    // A POST without the signature header is refused before the quota: it spends no token...
    let unsigned = server.post(
        &hook("a", "watsi"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    unsigned.expect_error(401, "signature_missing");
    // ...three signed POSTs spend the three tokens, whatever their answer...
    server
        .deliver("a", &WATSI, &secret, &body, &[])
        .expect_accepted();
    server
        .deliver("a", &WATSI, &secret, &body, &[])
        .expect_ok("duplicate");
    server
        .deliver("a", &WATSI, "not-the-secret-at-all", &body, &[])
        .expect_error(401, "signature_mismatch");
    // ...a workspace or vendor that is not configured spends none...
    server
        .deliver("nope", &WATSI, &secret, &body, &[])
        .expect_error(404, "unknown_workspace");
    server
        .deliver("a", &WHATSABLE, &secret, &body, &[])
        .expect_error(404, "unknown_vendor");
    // ...and the fourth is over the rate.
    server
        .deliver("a", &WATSI, &secret, &watsi_event("evt_mix_2"), &[])
        .expect_error(429, "rate_limited");

    let reply = server.operator_get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let m = &reply.body;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            m,
            &format!("switchyard_build_info{{version=\"{version}\"}}")
        ),
        1.0
    );
    assert!(sample(m, "process_resident_memory_bytes") > 1_000_000.0);
    assert!(sample(m, "process_virtual_memory_bytes") > 1_000_000.0);
    // At least standard input, output and error, the store's files and the listener.
    assert!(sample(m, "process_open_fds") >= 5.0);
    assert!(sample(m, "process_max_fds") >= sample(m, "process_open_fds"));
    assert!(sample(m, "process_cpu_seconds_total") >= 0.0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let started = sample(m, "process_start_time_seconds");
    assert!(
        (now.as_secs_f64() - started).abs() < 600.0,
        "started at {started}, now {now:?}"
    );
    assert_eq!(sample(m, "switchyard_store_ready"), 1.0);

    let refusals = [
        ("(unknown)", "unknown_workspace"),
        ("a", "unknown_vendor"),
        ("a", "signature_missing"),
        ("a", "signature_mismatch"),
        ("a", "rate_limited"),
    ];
    for (workspace, reason) in refusals {
        let series = format!(
            "switchyard_hook_refusals_total{{workspace=\"{workspace}\",reason=\"{reason}\"}}"
        );
        assert_eq!(sample(m, &series), 1.0, "{series}");
    }
    let refusal_series = (m.lines())
        .filter(|l| l.starts_with("switchyard_hook_refusals_total{"))
        .count();
    assert_eq!(refusal_series, refusals.len(), "{m}");
    assert_eq!(
        sample(
            m,
            "switchyard_hook_requests_total{workspace=\"(unknown)\",vendor=\"(unknown)\",outcome=\"unknown_workspace\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            m,
            "switchyard_hook_requests_total{workspace=\"a\",vendor=\"(unknown)\",outcome=\"unknown_vendor\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            m,
            "switchyard_hook_requests_total{workspace=\"a\",vendor=\"watsi\",outcome=\"accepted\"}"
        ),
        1.0
    );
    // The requested names are never labels.
    assert!(!m.contains("nope"), "{m}");
    assert!(!m.contains("whatsable"), "{m}");
}

#[test]
fn switchyard_config_names_the_routes_file() {
    let dir = TestDir::new();
    let routes = dir.write_config(&Config::new().workspace(watsi_workspace("a")));
    // Run from a directory without a routes.yaml, so the default could not be what is read.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut command = switchyard_command(["check"]);
    command
        .current_dir(elsewhere.path())
        .env("SWITCHYARD_CONFIG", &routes);
    let out = run(command);
    out.expect_success("check with SWITCHYARD_CONFIG");
    let ok = format!("{}: ok: 1 workspace(s)", routes.display());
    assert!(out.stdout.contains(&ok), "{}", out.stdout);

    let missing = dir.path().join("missing.yaml");
    let mut command = switchyard_command(["serve"]);
    command
        .current_dir(elsewhere.path())
        .env("SWITCHYARD_CONFIG", &missing);
    let out = run(command);
    let cannot_read = format!("{}: cannot read the configuration", missing.display());
    out.expect_failure("serve with a missing SWITCHYARD_CONFIG", &[&cannot_read]);
    assert_eq!(out.status.code(), Some(EX_CONFIG));
}

#[test]
fn a_runtime_failure_exits_1_not_78() {
    let dir = TestDir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let text = (Config::new().workspace(watsi_workspace("a")).render(&dir)).replace(
        "\n  listen: \"127.0.0.1:0\"",
        &format!("\n  listen: \"{addr}\""),
    );
    let routes = dir.write("routes.yaml", text);
    check(&routes).expect_success("check does not bind");
    let out = serve_expecting_exit(&routes);
    out.expect_failure(
        "serve on a port in use",
        &[&format!("cannot listen on {addr}")],
    );
    assert_eq!(out.status.code(), Some(1));
}

/// `switchyard sign` for `routes`, printing the curl line.
fn sign_curl_line(routes: &Path, body: &Path) -> String {
    let mut command = switchyard_command(["sign", "--vendor", "watsi", "--workspace", "a"]);
    command
        .arg("--config")
        .arg(routes)
        .arg("--file")
        .arg(body)
        .env("SWITCHYARD_SIGN_SECRET", "a-watsi-secret-1");
    let out = run(command);
    out.expect_success("sign");
    (out.stdout.lines())
        .find(|l| l.starts_with("curl "))
        .unwrap_or_else(|| panic!("no curl line in:\n{}", out.stdout))
        .to_owned()
}

#[test]
fn sign_uses_the_configured_listen_address() {
    let dir = TestDir::new();
    let body = dir.write("body.json", watsi_event("evt_sign"));
    let rendered = Config::new().workspace(watsi_workspace("a")).render(&dir);
    for (listen, url) in [
        ("127.0.0.2:18089", "http://127.0.0.2:18089/hooks/a/watsi"),
        ("0.0.0.0:18090", "http://127.0.0.1:18090/hooks/a/watsi"),
    ] {
        let text = rendered.replace(
            "\n  listen: \"127.0.0.1:0\"",
            &format!("\n  listen: \"{listen}\""),
        );
        let routes = dir.write("routes.yaml", text);
        let curl = sign_curl_line(&routes, &body);
        assert!(curl.contains(&format!(" {url} ")), "{curl}");
    }
}

#[test]
fn a_reload_loads_a_new_plugin_library_and_names_a_replaced_one_as_needing_a_restart() {
    const TOKEN: &str = "ops-admin-token-for-e2e";
    let dir = TestDir::without_plugins();
    dir.install(&artifacts().plugin("watsi"), "watsi");
    let server = dir.serve(
        &Config::new()
            .admin_token(TOKEN)
            .workspace(watsi_workspace("a")),
    );
    let reload = |what: &str| {
        let url = server.admin_url("");
        let mut command = switchyard_command(["reload", "--url", &url, "--token", TOKEN]);
        command.arg("--config").arg(dir.path().join("routes.yaml"));
        let out = run(command);
        out.expect_success(what);
        serde_json::from_str::<Value>(&out.stdout).expect("a JSON answer")
    };

    // Docssmith's library arrives with a file that uses it.
    let docssmith = dir.install(&artifacts().plugin("docssmith"), "docssmith");
    let both =
        watsi_workspace("a").vendor(Vendor::new("docssmith", &[&secret("a", "docssmith", 1)]));
    let routes = dir.write_config(&Config::new().admin_token(TOKEN).workspace(both));
    let out = check(&routes);
    out.expect_success("check with docssmith");
    let listed = format!("plugin docssmith: {}", docssmith.display());
    assert!(out.stdout.contains(&listed), "{}", out.stdout);
    let answer = reload("reload with docssmith's library new");
    assert_eq!(answer["plugins_loaded"], json!(["docssmith"]), "{answer}");
    assert_eq!(answer["restart_needed"], json!([]), "{answer}");
    let body = r#"{"id":"ds_reloaded","type":"group.created","payload":{"id":"g1"}}"#;
    let id = server
        .deliver("a", &DOCSSMITH, &secret("a", "docssmith", 1), body, &[])
        .expect_accepted();
    dir.sink("a", "events").wait_for(&id);

    // Watsi's library replaced (a new file renamed over it): still the loaded one, until a
    // restart, and the reload says so.
    let watsi = dir
        .plugins_dir()
        .join(library_file_name("switchyard_watsi"));
    let fresh = dir.plugins_dir().join("watsi.new");
    std::fs::copy(artifacts().plugin("watsi"), &fresh).unwrap();
    std::fs::rename(&fresh, &watsi).unwrap();
    let answer = reload("reload with watsi's library replaced");
    assert_eq!(answer["plugins_loaded"], json!([]), "{answer}");
    let notes = answer["restart_needed"].as_array().expect("a list");
    assert_eq!(notes.len(), 1, "{answer}");
    let note = notes[0].as_str().unwrap_or_default();
    let changed = format!(
        "vendor `watsi`: {} changed since it was loaded",
        watsi.display()
    );
    assert!(
        note.contains(&changed) && note.contains("restart"),
        "{note}"
    );
    let body = watsi_event("evt_after_replace");
    let id = server
        .deliver("a", &WATSI, &secret("a", "watsi", 1), &body, &[])
        .expect_accepted();
    dir.sink("a", "events").wait_for(&id);
}
