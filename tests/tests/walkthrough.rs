//! The README's first hour, run as written: its two commands are the ones CI runs, and its
//! walkthrough's shell lines and every command of its Commands table work against the shipped
//! demo (the committed routes.yaml and examples, in a directory laid out as a checkout). The
//! commands are taken from README.md itself, so that the README cannot drift from what works.

use std::collections::BTreeSet;

use switchyard_e2e::*;

/// Every command the Commands table lists, each run below.
const COMMANDS: [&str; 17] = [
    "serve",
    "check",
    "plugins",
    "sign",
    "route test",
    "vendor test",
    "queues",
    "sink enable",
    "backup",
    "reload",
    "dlq list",
    "dlq replay",
    "dlq delete",
    "replay",
    "event",
    "events",
    "store verify",
];

/// The vendors in the order the walkthrough's loop sends them.
const LOOP_ORDER: [&str; 5] = ["watsi", "whatsable", "whatssync", "docssmith", "wappcloud"];

/// A shell line in the demo directory while `server` runs.
fn sh(demo: &DemoDir, server: &Server, line: &str) -> Run {
    run(demo.shell(server, line))
}

/// The JSON values a command printed, one per non-empty line.
fn json_answers(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The one JSON document an operator command printed.
#[track_caller]
fn operator(demo: &DemoDir, server: &Server, args: &str) -> Value {
    let out = sh(demo, server, &format!("./target/release/switchyard {args}"));
    out.expect_success(args);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{args}: not JSON ({e}):\n{}", out.stdout))
}

#[test]
fn the_readme_test_command_is_what_ci_runs() {
    let readme = Readme::load();
    let blocks = shell_blocks(readme.section("The two commands"));
    assert!(blocks.len() >= 2, "{blocks:#?}");
    assert_eq!(
        blocks[0],
        "cargo build --release && ./target/release/switchyard serve"
    );
    let ci = std::fs::read_to_string(artifacts().workspace_root.join(".ci/run"))
        .expect("cannot read .ci/run");
    let last = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .expect(".ci/run runs something");
    assert_eq!(
        last, blocks[1],
        ".ci/run must end by running the README's test command exactly"
    );
}

#[test]
fn the_walkthrough_and_every_command_work_on_the_shipped_demo() {
    // The walkthrough's curl lines run through sh, which would only say `not found`.
    tool("curl");
    let readme = Readme::load();
    let demo = DemoDir::new();
    // `./target/release/switchyard serve` in the checkout: the routes.yaml beside it.
    let server = demo.serve();
    // Loudly, for the operator token as for every secret that fell back to its default.
    let log = server.log_containing("switchyard is listening");
    for key in [
        "server.admin_token",
        "workspaces.demo.vendors.watsi.secrets[0]",
    ] {
        assert!(
            log.lines().any(|l| l.contains(" WARN ")
                && l.contains(key)
                && l.to_ascii_lowercase().contains("development")),
            "no warning about {key}'s development default:\n{log}"
        );
    }

    let walkthrough = readme.section("A 60-second walkthrough");
    let blocks = shell_blocks(walkthrough);
    assert_eq!(blocks.len(), 3, "sign, the loop, tail: {blocks:#?}");

    // `sign` prints a curl line, which the server accepts.
    let signed = sh(&demo, &server, &blocks[0]);
    signed.expect_success(&blocks[0]);
    let curl = signed.stdout.lines().last().unwrap_or_default();
    assert!(curl.starts_with("curl "), "{}", signed.stdout);
    let answer = json_answers(&sh(&demo, &server, curl).stdout);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["status"], "accepted", "{answer:?}");
    let watsi_id = answer[0]["id"].as_str().expect("an id").to_owned();

    // The loop over the five vendors: accepted (watsi's body again: a duplicate), then all
    // duplicates of the same ids.
    assert!(blocks[1].contains(&LOOP_ORDER.join(" ")), "{}", blocks[1]);
    let first = json_answers(&sh(&demo, &server, &blocks[1]).stdout);
    assert_eq!(first.len(), 5, "{first:#?}\n{}", server.log());
    assert_eq!(first[0], json!({"status": "duplicate", "id": watsi_id}));
    for (vendor, answer) in LOOP_ORDER.iter().zip(&first).skip(1) {
        assert_eq!(answer["status"], "accepted", "{vendor}: {answer}");
    }
    let again = json_answers(&sh(&demo, &server, &blocks[1]).stdout);
    for ((vendor, first), again) in LOOP_ORDER.iter().zip(&first).zip(&again) {
        assert_eq!(again["status"], "duplicate", "{vendor}: {again}");
        assert_eq!(again["id"], first["id"], "{vendor}");
    }
    let ids: Vec<String> = first
        .iter()
        .map(|a| a["id"].as_str().expect("an id").to_owned())
        .collect();

    // Where they land: every event in demo-events.jsonl and on standard output, `message.*`
    // in demo-messages.jsonl; the README's `tail` shows the five.
    let data = demo.path().join("data");
    let events = SinkFile::at(data.join("demo-events.jsonl"));
    for id in &ids {
        events.wait_for(id);
        server.wait_for_stdout_event(id);
    }
    let tailed = sh(&demo, &server, &blocks[2]);
    tailed.expect_success(&blocks[2]);
    let tailed: BTreeSet<String> = json_answers(&tailed.stdout)
        .iter()
        .filter_map(|e| Some(e["id"].as_str()?.to_owned()))
        .collect();
    assert_eq!(tailed, ids.iter().cloned().collect());
    let messages = SinkFile::at(data.join("demo-messages.jsonl"));
    let last_message = ids[4].as_str(); // wappcloud's incoming_message
    let messages = messages.wait_for(last_message);
    let types: Vec<&str> = messages.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "message.received",
            "message.status",
            "message.received",
            "message.received"
        ],
        "{messages:#?}"
    );

    // Wappcloud's URL check, as the README writes it, on the server's real port.
    let spans = inline_code(walkthrough);
    let challenge = spans
        .iter()
        .find(|s| s.starts_with("curl ") && s.contains("challenge="))
        .expect("the walkthrough shows Wappcloud's URL check");
    assert!(challenge.contains("http://127.0.0.1:8080/"), "{challenge}");
    let challenge = challenge.replace("http://127.0.0.1:8080", &server.url(""));
    let answer = sh(&demo, &server, &challenge);
    answer.expect_success(&challenge);
    let promised = spans
        .iter()
        .find(|s| s.starts_with("{\"challenge\""))
        .expect("the walkthrough shows the answer");
    assert_eq!(answer.stdout.trim(), promised.as_str());

    commands_table(&readme, &demo, &server, &watsi_id);
}

/// Every command of the Commands table, against the demo: the operator commands find the
/// server and its token in the routes file, with nothing passed on the command line.
fn commands_table(readme: &Readme, demo: &DemoDir, server: &Server, watsi_id: &str) {
    assert_eq!(
        table_commands(readme.section("Commands")),
        COMMANDS,
        "the Commands table and this test must list the same commands"
    );
    // serve and sign: above.
    let check = sh(demo, server, "./target/release/switchyard check");
    check.expect_success("check");
    assert!(
        check.stdout.contains(
            "routes.yaml: ok: 1 workspace(s), plugins: docssmith, wappcloud, watsi, whatsable, whatssync"
        ),
        "{}",
        check.stdout
    );
    let plugins = sh(demo, server, "./target/release/switchyard plugins");
    plugins.expect_success("plugins");
    assert!(
        plugins.stdout.contains("(5 plugin(s) in target/release)"),
        "{}",
        plugins.stdout
    );
    let definition = artifacts().definition("watsi");
    let line = format!(
        "./target/release/switchyard vendor test '{}'",
        definition.display()
    );
    let tested = sh(demo, server, &line);
    tested.expect_success("vendor test");
    assert!(
        tested
            .stdout
            .contains("ok: vendor `watsi` 0.1.0, 3 test vector(s) proven"),
        "{}",
        tested.stdout
    );

    let deadline = std::time::Instant::now() + DELIVERY_DEADLINE;
    let queues = loop {
        let queues = operator(demo, server, "queues");
        let settled = queues["sinks"]
            .as_array()
            .is_some_and(|s| s.iter().all(|q| q["queued"] == 0 && q["in_flight"] == 0));
        if settled || std::time::Instant::now() > deadline {
            break queues;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // The walkthrough's five events, each delivered at the first attempt; messages takes
    // only the four messages.
    let sinks: Vec<Value> = [("console", 5), ("events", 5), ("messages", 4)]
        .iter()
        .map(|(sink, delivered)| {
            json!({"workspace": "demo", "sink": sink, "state": "healthy", "queued": 0,
                   "in_flight": 0, "dead": 0, "orphaned": false, "oldest_queued_seconds": 0.0,
                   "attempts": {"delivered": delivered, "failed": 0, "dead": 0}})
        })
        .collect();
    assert_eq!(queues, json!({ "sinks": sinks }));

    let route_test = sh(
        demo,
        server,
        "./target/release/switchyard route test --workspace demo --vendor watsi --file examples/watsi.json",
    );
    route_test.expect_success("route test");
    assert!(
        route_test
            .stdout
            .contains("routes[0] -> messages: matched\n")
            && route_test
                .stdout
                .ends_with("sinks: messages, events, console\n"),
        "{}",
        route_test.stdout
    );
    // Enabling a sink that is not disabled changes nothing, and says so.
    assert_eq!(
        operator(demo, server, "sink enable --workspace demo --sink events"),
        json!({"workspace": "demo", "sink": "events", "was": "healthy", "enabled": false})
    );

    let event = operator(demo, server, &format!("event {watsi_id}"));
    assert_eq!(event["event"]["id"], watsi_id, "{event:#}");
    let example: Value = serde_json::from_str(&shipped_file("examples/watsi.json")).unwrap();
    assert_eq!(event["event"]["raw"], example, "{event:#}");
    let delivered: BTreeSet<(&str, &str)> = event["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| Some((d["sink"].as_str()?, d["status"].as_str()?)))
        .collect();
    let expected: BTreeSet<(&str, &str)> = [
        ("console", "delivered"),
        ("events", "delivered"),
        ("messages", "delivered"),
    ]
    .into();
    assert_eq!(delivered, expected, "{event:#}");
    let found = operator(
        demo,
        server,
        "events --workspace demo --vendor watsi --limit 1",
    );
    assert_eq!(found["events"][0]["id"], watsi_id, "{found:#}");
    let statuses: BTreeSet<(&str, &str)> = found["events"][0]["sinks"]
        .as_array()
        .expect("sinks")
        .iter()
        .filter_map(|d| Some((d["sink"].as_str()?, d["status"].as_str()?)))
        .collect();
    assert_eq!(statuses, expected, "{found:#}");
    // The window of the watsi event's acceptance, to one sink: it is sent there once more.
    let accepted = ulid::Ulid::from_string(watsi_id)
        .expect("a ULID")
        .timestamp_ms();
    let at = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(accepted),
    );
    let replayed = operator(
        demo,
        server,
        &format!(
            "replay --workspace demo --sink events --since {at} --until {at} --type 'message.*'"
        ),
    );
    assert_eq!(replayed["gone"], 0, "{replayed}");
    assert!(replayed["queued"].as_u64() >= Some(1), "{replayed}");
    let events_file = SinkFile::at(demo.path().join("data/demo-events.jsonl"));
    let deadline = std::time::Instant::now() + DELIVERY_DEADLINE;
    while count_id(&events_file.events(), watsi_id) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replay never reached the events sink"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    assert_eq!(
        operator(demo, server, "reload"),
        json!({
            "workspaces": 1, "started": [], "stopped": [], "server_changed": false,
            "plugins_loaded": [], "restart_needed": []
        })
    );

    // The demo's sinks are files and standard output, which do not fail within a test (a file
    // sink retries an I/O error until `max_age`, 72 h), so the dead-letter commands meet empty
    // lists here; delivery.rs buries real dead letters with a failing HTTP sink and runs the same
    // commands on them.
    assert_eq!(
        operator(demo, server, "dlq list --workspace demo --sink events"),
        json!({"dead_letters": [], "next": null, "total": 0})
    );
    assert_eq!(
        operator(
            demo,
            server,
            "dlq replay --workspace demo --sink events --all"
        ),
        json!({"replayed": 0})
    );
    let delete = format!(
        "./target/release/switchyard dlq delete --workspace demo --sink events --id {watsi_id}"
    );
    sh(demo, server, &delete).expect_failure(
        "dlq delete of an event that is not a dead letter",
        &[
            "the server answered 404",
            "no dead letter with that event id",
        ],
    );

    // The server holds its store: verify refuses rather than read a log being written
    // (verify.rs runs it on a stopped server's damaged log).
    sh(demo, server, "./target/release/switchyard store verify").expect_failure(
        "store verify while the server runs",
        &["is in use", "stop the server first"],
    );

    // The backup goes to a new directory, named relative to where the command runs.
    let backup = operator(demo, server, "backup --to backups/first");
    let to = demo.path().join("backups/first");
    assert_eq!(backup["to"], to.display().to_string(), "{backup}");
    assert!(backup["events"].as_u64() >= Some(5), "{backup}");
    assert!(
        std::fs::read_dir(&to).is_ok_and(|mut d| d.next().is_some()),
        "{} is empty",
        to.display()
    );
    sh(
        demo,
        server,
        "./target/release/switchyard backup --to backups/first",
    )
    .expect_failure("a backup into an existing directory", &["exists"]);
}
