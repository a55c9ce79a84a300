//! Whole-file tests of `parse`: DESIGN.md's example, defaults, paths and variables here;
//! each problem placed on its line in `problems`.

mod brokers;
mod include;
mod problems;
mod routing;

use super::*;
use crate::sinks::{FileSync, HttpFormat};

/// DESIGN.md's example, verbatim; line numbers below refer to it.
const EXAMPLE: &str = r#"server:
  listen: 127.0.0.1:8080
  data_dir: ./data              # sled: dedupe state and the delivery queue
  max_body_bytes: 1048576
  plugins_dir: ./target/release # where lib*.so plugins are found; default: beside the binary
  admin_token: ${SWITCHYARD_ADMIN_TOKEN}
workspaces:
  acme:
    dedupe_window: 72h
    vendors:
      watsi:
        secrets: [ "${ACME_WATSI_SECRET}", "${ACME_WATSI_SECRET_OLD}" ]  # several = rotation
      wappcloud:
        secrets: [ "${ACME_WAPPCLOUD_SECRET}" ]
      whatsable:
        secrets: [ "${ACME_WHATSABLE_SECRET}" ]
        allow_ips: [ "203.0.113.0/24" ]
    sinks:
      crm:   { type: http, url: "http://crm.internal/events", timeout: 10s, secret: "${CRM_SINK_SECRET}" }
      audit: { type: file, path: ./data/acme.jsonl }
      log:   { type: stdout }
    routes:
      - match: { vendor: [watsi, wappcloud], type: "message.*" }
        to: [crm, audit]
      - match: { type: "*" }
        to: [audit]
"#;

/// Every variable the example uses is set, to a value naming it.
fn full_env(name: &str) -> Option<String> {
    Some(format!("value-of-{name}"))
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The example with `from` replaced by `to`; fails if `from` is not in it.
fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "the example has no {from:?}");
    EXAMPLE.replacen(from, to, 1)
}

/// The problems `text` has, one displayed line each.
fn problems(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match parse(text, Path::new("routes.yaml"), env) {
        Ok(config) => panic!("expected problems, parsed {config:?}"),
        Err(error) => error.to_string().lines().map(str::to_owned).collect(),
    }
}

fn only_problem(text: &str) -> String {
    let mut all = problems(text, &full_env);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

fn ws(name: &str) -> WorkspaceId {
    WorkspaceId::new(name)
}

fn vendor(name: &str) -> VendorName {
    VendorName::new(name)
}

fn sink(name: &str) -> SinkName {
    SinkName::new(name)
}

#[test]
fn design_example_parses_with_expected_values() {
    let config = parse(EXAMPLE, Path::new("/srv/switchyard/routes.yaml"), &full_env).unwrap();
    assert_eq!(config.path, Path::new("/srv/switchyard/routes.yaml"));
    let server = &config.server;
    assert_eq!(server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(server.data_dir, Path::new("/srv/switchyard/data"));
    assert_eq!(server.max_body_bytes, 1_048_576);
    assert_eq!(
        server.plugins_dir.as_deref(),
        Some(Path::new("/srv/switchyard/target/release"))
    );
    assert_eq!(
        server.admin_token,
        Some(Secret::new("value-of-SWITCHYARD_ADMIN_TOKEN"))
    );
    assert_eq!(server.header_read_timeout, Duration::from_secs(10));

    let acme = &config.workspaces[&ws("acme")];
    assert_eq!(config.workspaces.len(), 1);
    assert_eq!(acme.dedupe_window, Duration::from_secs(72 * 3600));
    let watsi = &acme.vendors[&vendor("watsi")];
    let rotation = [
        "value-of-ACME_WATSI_SECRET",
        "value-of-ACME_WATSI_SECRET_OLD",
    ];
    assert_eq!(watsi.secrets, rotation.map(Secret::new));
    assert_eq!(
        watsi.signature,
        SignatureConfig::Plugin(SchemeChange::default())
    );
    assert_eq!(watsi.plugin_timeout, None);
    assert!(watsi.allow_ips.is_empty());
    let whatsable = &acme.vendors[&vendor("whatsable")];
    assert_eq!(
        whatsable.allow_ips,
        ["203.0.113.0/24".parse::<ipnet::IpNet>().unwrap()]
    );
    assert_eq!(acme.vendors.len(), 3);

    assert_eq!(acme.sinks.len(), 3);
    assert_eq!(
        acme.sinks[&sink("crm")].kind,
        SinkKind::Http {
            url: "http://crm.internal/events".parse().unwrap(),
            timeout: Duration::from_secs(10),
            secret: Some(Secret::new("value-of-CRM_SINK_SECRET")),
            format: HttpFormat::Envelope,
        }
    );
    let audit = PathBuf::from("/srv/switchyard/data/acme.jsonl");
    assert_eq!(
        acme.sinks[&sink("audit")].kind,
        SinkKind::File {
            path: audit,
            sync: FileSync::Batch
        }
    );
    assert_eq!(acme.sinks[&sink("log")].kind, SinkKind::Stdout);
    assert_eq!(acme.sinks[&sink("log")].retry, DEFAULT_RETRY_SCHEDULE);
    assert_eq!(acme.sinks[&sink("log")].concurrency, 1);
    assert_eq!(config.server.retention, Duration::from_secs(7 * 24 * 3600));

    assert_eq!(
        acme.routes,
        [
            RouteConfig {
                vendors: Some(vec![vendor("watsi"), vendor("wappcloud")]),
                event_type: "message.*".to_owned(),
                filter: None,
                to: vec![sink("crm"), sink("audit")],
            },
            RouteConfig {
                vendors: None,
                event_type: "*".to_owned(),
                filter: None,
                to: vec![sink("audit")]
            },
        ]
    );
    assert!(config.default_secrets.is_empty());
}

#[test]
fn omitted_server_and_optional_keys_take_defaults() {
    let text =
        "workspaces:\n  demo:\n    vendors:\n      watsi:\n        secrets: [a-16-byte-secret]\n";
    let config = parse(text, Path::new("/etc/sy/routes.yaml"), &no_env).unwrap();
    let server = &config.server;
    assert_eq!(server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(server.data_dir, Path::new("/etc/sy/data"));
    assert_eq!(server.max_body_bytes, 1_048_576);
    assert_eq!(server.plugins_dir, None);
    assert_eq!(server.admin_token, None);
    assert_eq!(server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(server.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(server.tls, None);
    assert!(server.trusted_proxies.is_empty());
    assert_eq!(server.body_read_timeout, Duration::from_secs(30));
    assert_eq!(server.max_inflight_body_bytes, 64 * 1_048_576);
    let soft = crate::http::open_files_soft_limit().unwrap();
    assert_eq!(server.max_connections as u64, (soft / 2).min(4096));
    let demo = &config.workspaces[&ws("demo")];
    assert_eq!(demo.dedupe_window, Duration::from_secs(72 * 3600));
    assert!(demo.sinks.is_empty() && demo.routes.is_empty());

    let text = "workspaces:\n  demo:\n    vendors: { watsi: { secrets: [a-16-byte-secret] } }\n    sinks:\n      \
                out: { type: http, url: \"https://x.example\" }\n    routes:\n      - to: [out]\n";
    let demo = &parse(text, Path::new("r.yaml"), &no_env)
        .unwrap()
        .workspaces[&ws("demo")];
    let out = &demo.sinks[&sink("out")];
    assert!(
        matches!(out.kind, SinkKind::Http { timeout, secret: None, .. } if timeout.as_secs() == 10)
    );
    assert_eq!(demo.routes[0].vendors, None);
    assert_eq!(demo.routes[0].event_type, "*");
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let text = example_with("data_dir: ./data", "data_dir: /var/lib/switchyard");
    let config = parse(&text, Path::new("conf/routes.yaml"), &full_env).unwrap();
    assert_eq!(config.server.data_dir, Path::new("/var/lib/switchyard"));
    assert_eq!(
        config.server.plugins_dir.as_deref(),
        Some(Path::new("conf/target/release"))
    );
    let audit = &config.workspaces[&ws("acme")].sinks[&sink("audit")];
    assert_eq!(
        audit.kind,
        SinkKind::File {
            path: PathBuf::from("conf/data/acme.jsonl"),
            sync: FileSync::Batch
        }
    );
}

#[test]
fn a_file_sink_syncs_each_batch_unless_told_not_to() {
    let text = example_with(
        "path: ./data/acme.jsonl",
        "path: ./data/acme.jsonl, sync: none",
    );
    let config = parse(&text, Path::new("routes.yaml"), &full_env).unwrap();
    assert_eq!(
        config.workspaces[&ws("acme")].sinks[&sink("audit")].kind,
        SinkKind::File {
            path: PathBuf::from("data/acme.jsonl"),
            sync: FileSync::None
        }
    );
}

#[test]
fn retry_schedules_and_concurrency_are_per_sink() {
    let text = "server: { retention: 1d }
workspaces:
  demo:
    vendors: { watsi: { secrets: [a-16-byte-secret] } }
    sinks:
      \
                out: { type: stdout, retry: [1s, 2m], concurrency: 4 }
      \
                none: { type: stdout, retry: [] }
    routes:
      - to: [out, none]
";
    let config = parse(text, Path::new("r.yaml"), &no_env).unwrap();
    assert_eq!(config.server.retention, Duration::from_secs(86400));
    let demo = &config.workspaces[&ws("demo")];
    let out = &demo.sinks[&sink("out")];
    assert_eq!(
        out.retry,
        [Duration::from_secs(1), Duration::from_secs(120)]
    );
    assert_eq!(out.concurrency, 4);
    assert!(demo.sinks[&sink("none")].retry.is_empty());
}

#[test]
fn bad_retry_waits_and_concurrency_are_named_at_their_line() {
    let text = "workspaces:
  demo:
    vendors: { watsi: { secrets: [a-16-byte-secret] } }
    sinks:
      \
                out:
        type: stdout
        retry: [1s, soon]
        concurrency: 0
    routes:
      - to: [out]
";
    let err = parse(text, Path::new("r.yaml"), &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("r.yaml:7: workspaces.demo.sinks.out.retry[1]: invalid duration \"soon\""),
        "{err}"
    );
    assert!(err.contains("r.yaml:8: workspaces.demo.sinks.out.concurrency: expected a whole number from 1 to 256"), "{err}");
}

#[test]
fn defaults_used_for_unset_secret_variables_are_recorded() {
    let text = example_with("${ACME_WATSI_SECRET}", "${ACME_WATSI_SECRET:-dev-secret}")
        .replace("${CRM_SINK_SECRET}", "${CRM_SINK_SECRET:-dev-sink}")
        .replace(
            "${SWITCHYARD_ADMIN_TOKEN}",
            "${SWITCHYARD_ADMIN_TOKEN:-dev-admin}",
        )
        .replace("./data ", "${DATA_DIR:-./data} ");
    let env = |name: &str| {
        (name != "ACME_WATSI_SECRET" && name != "DATA_DIR")
            .then(|| "set-and-16-bytes-long".to_owned())
    };
    let config = parse(&text, Path::new("routes.yaml"), &env).unwrap();
    let watsi = &config.workspaces[&ws("acme")].vendors[&vendor("watsi")];
    assert_eq!(watsi.secrets[0], Secret::new("dev-secret"));
    // Set variables, and defaults outside secrets (DATA_DIR), are not listed.
    assert_eq!(
        config.default_secrets,
        [DefaultSecret {
            key: "workspaces.acme.vendors.watsi.secrets[0]".to_owned(),
            var: "ACME_WATSI_SECRET".to_owned(),
        }]
    );

    let defaulted = [
        "ACME_WATSI_SECRET",
        "CRM_SINK_SECRET",
        "SWITCHYARD_ADMIN_TOKEN",
        "DATA_DIR",
    ];
    let env = |name: &str| (!defaulted.contains(&name)).then(|| "set-and-16-bytes-long".to_owned());
    let config = parse(&text, Path::new("routes.yaml"), &env).unwrap();
    let keys: Vec<&str> = config
        .default_secrets
        .iter()
        .map(|d| d.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "server.admin_token",
            "workspaces.acme.vendors.watsi.secrets[0]",
            "workspaces.acme.sinks.crm.secret",
        ]
    );
}

#[test]
fn empty_admin_token_means_none() {
    let text = example_with("${SWITCHYARD_ADMIN_TOKEN}", "${SWITCHYARD_ADMIN_TOKEN:-}");
    let env =
        |name: &str| (name != "SWITCHYARD_ADMIN_TOKEN").then(|| "set-and-16-bytes-long".to_owned());
    let config = parse(&text, Path::new("routes.yaml"), &env).unwrap();
    assert_eq!(config.server.admin_token, None);
    assert!(config.default_secrets.is_empty());
}

#[test]
fn route_vendor_may_be_a_single_name() {
    let text = example_with("[watsi, wappcloud]", "watsi");
    let config = parse(&text, Path::new("routes.yaml"), &full_env).unwrap();
    let route = &config.workspaces[&ws("acme")].routes[0];
    assert_eq!(route.vendors, Some(vec![vendor("watsi")]));
}

#[test]
fn numeric_workspace_names_are_names() {
    let text = "workspaces:\n  2024:\n    vendors: { watsi: { secrets: [a-16-byte-secret] } }\n";
    let config = parse(text, Path::new("routes.yaml"), &no_env).unwrap();
    assert!(config.workspaces.contains_key(&ws("2024")));
}

#[test]
fn merge_keys_share_settings_between_workspaces() {
    let text = "workspaces:\n  a: &a\n    vendors: { watsi: { secrets: [a-16-byte-secret] } }\n  b: { <<: *a, dedupe_window: 1h }\n";
    let config = parse(text, Path::new("routes.yaml"), &no_env).unwrap();
    let b = &config.workspaces[&ws("b")];
    assert_eq!(b.dedupe_window, Duration::from_secs(3600));
    assert_eq!(b.vendors.keys().collect::<Vec<_>>(), [&vendor("watsi")]);
}

#[test]
fn check_vendors_names_vendors_without_a_plugin() {
    let dir = std::env::temp_dir().join(format!("switchyard-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("routes.yaml");
    std::fs::write(&path, EXAMPLE.replace("${", "$${")).unwrap();
    let config = load(&path).unwrap();
    assert_eq!(config.server.data_dir, dir.join("data"));
    let loaded = |v: &VendorName| v.as_str() != "whatsable";
    let error = config.check_vendors(&loaded).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}:15: workspaces.acme.vendors.whatsable: no loaded plugin provides vendor `whatsable`",
            path.display()
        )
    );
    assert!(config.check_vendors(&|_| true).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_reports_an_unreadable_file() {
    let error = load(Path::new("/nonexistent/switchyard/routes.yaml")).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error
        .to_string()
        .starts_with("/nonexistent/switchyard/routes.yaml: cannot read"));
}

/// A fresh directory under the system's temporary one, for tests that need real paths.
fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Parsing is linear in the file's size: nesting is bounded before serde_yaml reads the text
/// (libyaml's scanner does work proportional to the flow depth for every token). These files
/// took minutes before; the bound is generous so that a slow, shared machine never fails it.
#[test]
fn deeply_nested_files_are_refused_quickly() {
    let depth = 200_000;
    let files = [
        (
            1,
            format!("workspaces: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
        ),
        (
            1,
            format!(
                "workspaces: {}x{}\n",
                "{a: ".repeat(depth),
                "}".repeat(depth)
            ),
        ),
        (2, format!("workspaces:\n{}x\n", "- ".repeat(depth))),
    ];
    for (line, text) in &files {
        let started = std::time::Instant::now();
        let all = problems(text, &no_env);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert_eq!(
            all,
            [format!(
                "routes.yaml:{line}: collections are nested more than 127 deep (a routes file \
                 needs 6 at most)"
            )]
        );
    }
    // Up to the limit, the file is read (and then refused for what it is, not for its depth).
    let at_limit = format!("workspaces: {}{}\n", "[".repeat(126), "]".repeat(126));
    assert_eq!(
        problems(&at_limit, &no_env),
        ["routes.yaml:1: workspaces: expected a mapping of workspaces by name, found a list"]
    );
}
