//! Whole-file tests of `parse`: DESIGN.md's example, defaults, and each problem placed on its line.

use super::*;

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
    assert_eq!(watsi.signature_header, None);
    assert!(watsi.allow_ips.is_empty());
    let whatsable = &acme.vendors[&vendor("whatsable")];
    assert_eq!(
        whatsable.allow_ips,
        ["203.0.113.0/24".parse::<ipnet::IpNet>().unwrap()]
    );
    assert_eq!(acme.vendors.len(), 3);

    assert_eq!(acme.sinks.len(), 3);
    assert_eq!(
        acme.sinks[&sink("crm")],
        SinkConfig::Http {
            url: "http://crm.internal/events".parse().unwrap(),
            timeout: Duration::from_secs(10),
            secret: Some(Secret::new("value-of-CRM_SINK_SECRET")),
        }
    );
    let audit = PathBuf::from("/srv/switchyard/data/acme.jsonl");
    assert_eq!(acme.sinks[&sink("audit")], SinkConfig::File { path: audit });
    assert_eq!(acme.sinks[&sink("log")], SinkConfig::Stdout);

    assert_eq!(
        acme.routes,
        [
            RouteConfig {
                vendors: Some(vec![vendor("watsi"), vendor("wappcloud")]),
                event_type: "message.*".to_owned(),
                to: vec![sink("crm"), sink("audit")],
            },
            RouteConfig {
                vendors: None,
                event_type: "*".to_owned(),
                to: vec![sink("audit")]
            },
        ]
    );
    assert!(config.default_secrets.is_empty());
}

#[test]
fn omitted_server_and_optional_keys_take_defaults() {
    let text = "workspaces:\n  demo:\n    vendors:\n      watsi:\n        secrets: [s]\n";
    let config = parse(text, Path::new("/etc/sy/routes.yaml"), &no_env).unwrap();
    let server = &config.server;
    assert_eq!(server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(server.data_dir, Path::new("/etc/sy/data"));
    assert_eq!(server.max_body_bytes, 1_048_576);
    assert_eq!(server.plugins_dir, None);
    assert_eq!(server.admin_token, None);
    assert_eq!(server.header_read_timeout, Duration::from_secs(10));
    let demo = &config.workspaces[&ws("demo")];
    assert_eq!(demo.dedupe_window, Duration::from_secs(72 * 3600));
    assert!(demo.sinks.is_empty() && demo.routes.is_empty());

    let text = "workspaces:\n  demo:\n    vendors: { watsi: { secrets: [s] } }\n    sinks:\n      \
                out: { type: http, url: \"https://x.example\" }\n    routes:\n      - to: [out]\n";
    let demo = &parse(text, Path::new("r.yaml"), &no_env)
        .unwrap()
        .workspaces[&ws("demo")];
    let out = &demo.sinks[&sink("out")];
    assert!(
        matches!(out, SinkConfig::Http { timeout, secret: None, .. } if timeout.as_secs() == 10)
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
        *audit,
        SinkConfig::File {
            path: PathBuf::from("conf/data/acme.jsonl")
        }
    );
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
    let env =
        |name: &str| (name != "ACME_WATSI_SECRET" && name != "DATA_DIR").then(|| "set".to_owned());
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
    let env = |name: &str| (!defaulted.contains(&name)).then(|| "set".to_owned());
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
    let env = |name: &str| (name != "SWITCHYARD_ADMIN_TOKEN").then(|| "set".to_owned());
    let config = parse(&text, Path::new("routes.yaml"), &env).unwrap();
    assert_eq!(config.server.admin_token, None);
    assert!(config.default_secrets.is_empty());
}

#[test]
fn unset_variable_without_default_is_named_with_its_line_and_key() {
    let text = "\
workspaces:
  acme:
    vendors:
      watsi:
        secrets:
          - ${ACME_WATSI_SECRET}
          - ${ACME_WATSI_SECRET_OLD}
";
    let env = |name: &str| (name != "ACME_WATSI_SECRET_OLD").then(|| "set".to_owned());
    assert_eq!(
        problems(text, &env),
        ["routes.yaml:7: workspaces.acme.vendors.watsi.secrets[1]: environment variable \
          ACME_WATSI_SECRET_OLD is not set (write ${ACME_WATSI_SECRET_OLD:-value} to give a default)"]
    );
}

#[test]
fn every_unset_variable_is_reported_once() {
    let all = problems(EXAMPLE, &no_env);
    assert_eq!(all.len(), 6, "{all:#?}");
    assert!(all[0].starts_with("routes.yaml:6: server.admin_token: environment variable"));
    assert!(all[5].starts_with("routes.yaml:19: workspaces.acme.sinks.crm.secret: environment"));
}

#[test]
fn route_to_an_unknown_sink_lists_the_defined_sinks() {
    assert_eq!(
        only_problem(&example_with("to: [crm, audit]", "to: [crm, crmm]")),
        "routes.yaml:24: workspaces.acme.routes[0].to[1]: unknown sink `crmm` \
         (this workspace defines: audit, crm, log)"
    );
}

#[test]
fn route_vendor_must_be_enabled_in_the_workspace() {
    assert_eq!(
        only_problem(&example_with("[watsi, wappcloud]", "[watsi, whatssync]")),
        "routes.yaml:23: workspaces.acme.routes[0].match.vendor[1]: vendor `whatssync` is not \
         enabled in this workspace (it enables: wappcloud, watsi, whatsable)"
    );
}

#[test]
fn route_vendor_may_be_a_single_name() {
    let text = example_with("[watsi, wappcloud]", "watsi");
    let config = parse(&text, Path::new("routes.yaml"), &full_env).unwrap();
    let route = &config.workspaces[&ws("acme")].routes[0];
    assert_eq!(route.vendors, Some(vec![vendor("watsi")]));
}

#[test]
fn route_needs_sinks() {
    assert_eq!(
        only_problem(&example_with("to: [audit]", "to: []")),
        "routes.yaml:26: workspaces.acme.routes[1].to: empty list: a route needs at least one sink"
    );
    assert_eq!(
        only_problem(&example_with("        to: [audit]\n", "")),
        "routes.yaml:25: workspaces.acme.routes[1].to: missing: a route needs `to`, the sinks it \
         delivers to"
    );
    assert_eq!(
        only_problem(&example_with("to: [crm, audit]", "to: [crm, crm]")),
        "routes.yaml:24: workspaces.acme.routes[0].to[1]: sink `crm` is listed twice"
    );
}

#[test]
fn empty_type_glob_is_an_error() {
    assert_eq!(
        only_problem(&example_with("type: \"*\"", "type: \"\"")),
        "routes.yaml:25: workspaces.acme.routes[1].match.type: empty type pattern: expected a glob \
         such as \"message.*\" or \"*\""
    );
}

#[test]
fn vendor_needs_a_non_empty_secret() {
    let none = example_with("secrets: [ \"${ACME_WAPPCLOUD_SECRET}\" ]", "secrets: []");
    assert_eq!(
        only_problem(&none),
        "routes.yaml:14: workspaces.acme.vendors.wappcloud.secrets: at least one secret is \
         required, such as secrets: [\"${ACME_WATSI_SECRET}\"]"
    );
    let missing = example_with("        secrets: [ \"${ACME_WAPPCLOUD_SECRET}\" ]\n", "");
    assert!(only_problem(&missing).starts_with(
        "routes.yaml:13: workspaces.acme.vendors.wappcloud.secrets: at least one secret"
    ));
    let env = |name: &str| {
        Some(
            if name == "ACME_WATSI_SECRET_OLD" {
                ""
            } else {
                "s"
            }
            .to_owned(),
        )
    };
    assert_eq!(
        problems(EXAMPLE, &env),
        ["routes.yaml:12: workspaces.acme.vendors.watsi.secrets[1]: the secret is empty"]
    );
}

#[test]
fn bad_cidr_is_an_error_and_a_bare_address_is_a_host() {
    assert_eq!(
        only_problem(&example_with("203.0.113.0/24", "203.0.113.0/33")),
        "routes.yaml:17: workspaces.acme.vendors.whatsable.allow_ips[0]: invalid address or CIDR \
         \"203.0.113.0/33\": expected an address or network such as 203.0.113.0/24 or 2001:db8::1"
    );
    let text = example_with("\"203.0.113.0/24\"", "203.0.113.7, \"2001:db8::1\"");
    let config = parse(&text, Path::new("routes.yaml"), &full_env).unwrap();
    let ips = &config.workspaces[&ws("acme")].vendors[&vendor("whatsable")].allow_ips;
    let expected: Vec<ipnet::IpNet> = vec![
        "203.0.113.7/32".parse().unwrap(),
        "2001:db8::1/128".parse().unwrap(),
    ];
    assert_eq!(*ips, expected);
}

#[test]
fn signature_header_must_be_a_header_name() {
    let good = example_with(
        "allow_ips:",
        "signature_header: X-Hub-Signature\n        allow_ips:",
    );
    let config = parse(&good, Path::new("routes.yaml"), &full_env).unwrap();
    let whatsable = &config.workspaces[&ws("acme")].vendors[&vendor("whatsable")];
    assert_eq!(
        whatsable.signature_header.as_deref(),
        Some("x-hub-signature")
    );

    let bad = example_with(
        "allow_ips:",
        "signature_header: \"X Sig\"\n        allow_ips:",
    );
    assert_eq!(
        only_problem(&bad),
        "routes.yaml:17: workspaces.acme.vendors.whatsable.signature_header: invalid header name \
         \"X Sig\": expected an HTTP header name such as X-Signature"
    );
}

#[test]
fn http_sink_url_must_be_absolute_http_or_https() {
    assert_eq!(
        only_problem(&example_with(
            "http://crm.internal/events",
            "ftp://crm.internal/events"
        )),
        "routes.yaml:19: workspaces.acme.sinks.crm.url: unsupported URL scheme `ftp`: expected \
         http or https"
    );
    assert_eq!(
        only_problem(&example_with("http://crm.internal/events", "/events")),
        "routes.yaml:19: workspaces.acme.sinks.crm.url: invalid URL: expected an absolute http:// \
         or https:// URL such as https://crm.internal/events"
    );
}

#[test]
fn sink_keys_must_suit_the_sink_type() {
    assert_eq!(
        only_problem(&example_with(
            "{ type: stdout }",
            "{ type: stdout, path: x }"
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.path: `path` does not apply to a stdout sink"
    );
    assert_eq!(
        only_problem(&example_with("{ type: stdout }", "{ type: kafka }")),
        "routes.yaml:21: workspaces.acme.sinks.log.type: unknown sink type \"kafka\": expected \
         stdout, file or http"
    );
}

#[test]
fn bad_duration_says_what_was_expected() {
    assert_eq!(
        only_problem(&example_with("72h", "72 hourz")),
        "routes.yaml:9: workspaces.acme.dedupe_window: invalid duration \"72 hourz\": expected a \
         duration such as 72h or 30m"
    );
    assert_eq!(
        only_problem(&example_with("timeout: 10s", "timeout: 0s")),
        "routes.yaml:19: workspaces.acme.sinks.crm.timeout: must be greater than zero"
    );
}

#[test]
fn zero_max_body_bytes_is_an_error() {
    assert_eq!(
        only_problem(&example_with(
            "max_body_bytes: 1048576",
            "max_body_bytes: 0"
        )),
        "routes.yaml:4: server.max_body_bytes: must be greater than 0"
    );
}

#[test]
fn workspace_and_sink_names_must_be_url_safe() {
    assert_eq!(
        only_problem(&example_with("  acme:", "  \"ac me\":")),
        "routes.yaml:8: workspaces.ac me: invalid workspace name \"ac me\": expected 1-64 \
         characters of A-Z, a-z, 0-9, `_` and `-` (it is a path segment of the hook URL)"
    );
    let long = "x".repeat(65);
    let text = example_with(
        "log:   { type: stdout }",
        &format!("{long}: {{ type: stdout }}"),
    );
    assert!(only_problem(&text).starts_with(&format!(
        "routes.yaml:21: workspaces.acme.sinks.{long}: invalid sink name"
    )));
}

#[test]
fn numeric_workspace_names_are_names() {
    let text = "workspaces:\n  2024:\n    vendors: { watsi: { secrets: [s] } }\n";
    let config = parse(text, Path::new("routes.yaml"), &no_env).unwrap();
    assert!(config.workspaces.contains_key(&ws("2024")));
}

#[test]
fn workspace_needs_vendors() {
    let text = "workspaces:\n  acme:\n    dedupe_window: 1h\n";
    assert_eq!(
        problems(text, &no_env),
        ["routes.yaml:2: workspaces.acme.vendors: no vendors: a workspace must enable at least one"]
    );
}

#[test]
fn unknown_keys_are_errors_at_their_line() {
    assert_eq!(
        only_problem(&example_with("dedupe_window", "dedupe_windw")),
        "routes.yaml:9: workspaces.acme.dedupe_windw: unknown field `dedupe_windw`, expected one \
         of `dedupe_window`, `vendors`, `sinks`, `routes`"
    );
}

#[test]
fn yaml_syntax_errors_use_serde_yaml_line() {
    let all = problems(&example_with("to: [audit]", "to: [audit"), &full_env);
    assert_eq!(all.len(), 1);
    assert!(all[0].starts_with("routes.yaml:27: "), "{all:?}");
    assert_eq!(
        problems("# nothing\n", &no_env),
        ["routes.yaml: the file is empty: expected `server` and `workspaces`"]
    );
}

#[test]
fn several_problems_are_reported_together_in_file_order() {
    let text = example_with("max_body_bytes: 1048576", "max_body_bytes: 0")
        .replace("203.0.113.0/24", "203.0.113.0/99")
        .replace("to: [crm, audit]", "to: [crm, crmm]");
    let env = |name: &str| (name != "ACME_WAPPCLOUD_SECRET").then(|| "set".to_owned());
    let lines: Vec<String> = problems(&text, &env)
        .iter()
        .map(|p| p.split(": ").take(2).collect::<Vec<_>>().join(": "))
        .collect();
    assert_eq!(
        lines,
        [
            "routes.yaml:4: server.max_body_bytes",
            "routes.yaml:14: workspaces.acme.vendors.wappcloud.secrets[0]",
            "routes.yaml:17: workspaces.acme.vendors.whatsable.allow_ips[0]",
            "routes.yaml:24: workspaces.acme.routes[0].to[1]",
        ]
    );
}

#[test]
fn secret_values_never_appear_in_errors() {
    const SECRET: &str = "Zq9-UNMISTAKABLE-SECRET-7x";
    let env = |_: &str| Some(SECRET.to_owned());
    let cases = [
        // A secret where a mapping belongs: serde would quote it.
        example_with(
            "wappcloud:\n        secrets: [ \"${ACME_WAPPCLOUD_SECRET}\" ]",
            "wappcloud: ${S}",
        ),
        // A secret given as a string rather than a list.
        example_with("[ \"${ACME_WAPPCLOUD_SECRET}\" ]", "${S}"),
        example_with(
            "secret: \"${CRM_SINK_SECRET}\"",
            &format!("secret: [\"{SECRET}\"]"),
        ),
        example_with("${SWITCHYARD_ADMIN_TOKEN}", &format!("{{ t: {SECRET} }}")),
        // A literal secret with a malformed `${`.
        example_with("${ACME_WHATSABLE_SECRET}", &format!("{SECRET}${{ {SECRET}")),
        example_with("${ACME_WHATSABLE_SECRET}", &format!("x${{{SECRET} }}")),
        // A numeric secret, and a secret on a sink type that has none.
        example_with("[ \"${ACME_WAPPCLOUD_SECRET}\" ]", "[ 123456789012 ]"),
        example_with("{ type: stdout }", "{ type: stdout, secret: \"${S}\" }"),
    ];
    for text in &cases {
        let shown = problems(text, &env).join("\n");
        assert!(
            !shown.contains(SECRET) && !shown.contains("123456789012"),
            "{shown}"
        );
    }
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
