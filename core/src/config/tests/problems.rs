//! Each problem routes.yaml can have, with its exact line, key and message.

use super::*;

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
    let env =
        |name: &str| (name != "ACME_WATSI_SECRET_OLD").then(|| "set-and-16-bytes-long".to_owned());
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

/// acme with `sinks` stdout sinks s0, s1, ... and two routes: the first to s0..first, the
/// second to s(first - overlap)..sinks.
fn many_sinks(sinks: usize, first: usize, overlap: usize) -> String {
    let names = |range: std::ops::Range<usize>| {
        range
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let defined: String = (0..sinks)
        .map(|i| format!("      s{i}: {{ type: stdout }}\n"))
        .collect();
    format!(
        "workspaces:\n  acme:\n    vendors:\n      watsi:\n        secrets: [ \"s-16-bytes-long-!\" ]\n\
         \x20   sinks:\n{defined}    routes:\n      - to: [{}]\n      - match: {{ type: \"a.*\" }}\n\
         \x20       to: [{}]\n",
        names(0..first),
        names(first - overlap..sinks)
    )
}

#[test]
fn routes_that_could_send_an_event_to_more_than_255_sinks_are_refused_at_the_route() {
    // 255 sinks named, some by both routes: an event of type a.* goes to all of them.
    let most = parse(&many_sinks(255, 200, 10), Path::new("routes.yaml"), &no_env);
    assert!(most.is_ok(), "{most:?}");
    let text = many_sinks(256, 200, 10);
    // The second route's `to` is the file's last line.
    let line = text.lines().count();
    assert_eq!(
        only_problem(&text),
        format!(
            "routes.yaml:{line}: workspaces.acme.routes[1].to: the routes up to this one name 256 \
             sinks; one event can go to at most 255 (the store counts an event's sinks in one \
             byte): split the workspace"
        )
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
                "set-and-16-bytes-long"
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
        whatsable.signature,
        SignatureConfig::Plugin(SchemeChange {
            header: Some("x-hub-signature".into()),
            ..SchemeChange::default()
        })
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
         stdout, file, http, nats or redis"
    );
}

#[test]
fn a_file_sinks_sync_is_batch_or_none() {
    assert_eq!(
        only_problem(&example_with(
            "path: ./data/acme.jsonl",
            "path: ./data/acme.jsonl, sync: always"
        )),
        "routes.yaml:20: workspaces.acme.sinks.audit.sync: unknown sync \"always\": expected \
         batch or none"
    );
    assert_eq!(
        only_problem(&example_with(
            "path: ./data/acme.jsonl",
            "path: ./data/acme.jsonl, sync: 1"
        )),
        "routes.yaml:20: workspaces.acme.sinks.audit.sync: expected a string, found a number"
    );
    assert_eq!(
        only_problem(&example_with(
            "{ type: stdout }",
            "{ type: stdout, sync: none }"
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.sync: `sync` does not apply to a stdout sink"
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
         of `dedupe_window`, `limits`, `vendors`, `sinks`, `routes`"
    );
}

#[test]
fn yaml_syntax_errors_use_serde_yaml_line() {
    let all = problems(&example_with("to: [audit]", "to: [audit"), &full_env);
    assert_eq!(all.len(), 1);
    assert!(all[0].starts_with("routes.yaml:27: "), "{all:?}");
    assert_eq!(
        problems("# nothing\n", &no_env),
        ["routes.yaml:1: the file is empty: expected `server` and `workspaces`"]
    );
}

#[test]
fn several_problems_are_reported_together_in_file_order() {
    let text = example_with("max_body_bytes: 1048576", "max_body_bytes: 0")
        .replace("203.0.113.0/24", "203.0.113.0/99")
        .replace("to: [crm, audit]", "to: [crm, crmm]");
    let env =
        |name: &str| (name != "ACME_WAPPCLOUD_SECRET").then(|| "set-and-16-bytes-long".to_owned());
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
fn a_value_with_an_unset_variable_is_not_reported_again() {
    let text = example_with("\"http://crm.internal/events\"", "\"${CRM_URL}\"");
    let env = |name: &str| (name != "CRM_URL").then(|| "set-and-16-bytes-long".to_owned());
    assert_eq!(
        problems(&text, &env),
        ["routes.yaml:19: workspaces.acme.sinks.crm.url: environment variable CRM_URL is not set \
          (write ${CRM_URL:-value} to give a default)"]
    );
}

#[test]
fn sinks_need_their_required_keys() {
    assert_eq!(
        only_problem(&example_with(
            "{ type: file, path: ./data/acme.jsonl }",
            "{ type: file, path: \"\" }"
        )),
        "routes.yaml:20: workspaces.acme.sinks.audit.path: must not be empty"
    );
    assert_eq!(
        only_problem(&example_with(
            "{ type: file, path: ./data/acme.jsonl }",
            "{ type: file }"
        )),
        "routes.yaml:20: workspaces.acme.sinks.audit.path: missing: a file sink needs a `path`"
    );
    assert_eq!(
        only_problem(&example_with("{ type: stdout }", "{}")),
        "routes.yaml:21: workspaces.acme.sinks.log.type: missing sink type: expected stdout, file, \
         http, nats or redis"
    );
}

#[test]
fn listen_must_be_an_ip_address_and_port() {
    assert_eq!(
        only_problem(&example_with("listen: 127.0.0.1:8080", "listen: localhost")),
        "routes.yaml:2: server.listen: invalid listen address \"localhost\": expected an IP address \
         and port such as 127.0.0.1:8080"
    );
}

#[test]
fn no_prefix_or_mangling_of_the_example_panics() {
    let mut cut: Vec<usize> = EXAMPLE.char_indices().map(|(i, _)| i).collect();
    cut.push(EXAMPLE.len());
    for end in cut {
        let _ = parse(&EXAMPLE[..end], Path::new("routes.yaml"), &full_env);
        // Shifting one line's indentation exercises the locator on odd structure.
        let shifted = EXAMPLE[..end].replacen("\n  ", "\n", 1) + &EXAMPLE[end..];
        let _ = parse(&shifted, Path::new("routes.yaml"), &full_env);
    }
}

#[test]
fn signature_can_be_changed_per_vendor() {
    let text = example_with(
        "allow_ips:",
        "signature: { header: X-Signature, encoding: base64, prefix: \"sha256=\" }\n        \
         plugin_timeout: 500ms\n        allow_ips:",
    );
    let config = parse(&text, Path::new("routes.yaml"), &full_env).unwrap();
    let whatsable = &config.workspaces[&ws("acme")].vendors[&vendor("whatsable")];
    assert_eq!(
        whatsable.signature,
        SignatureConfig::Plugin(SchemeChange {
            header: Some("x-signature".into()),
            encoding: Some(crate::event::verify::Encoding::Base64),
            prefix: Some("sha256=".into()),
        })
    );
    assert_eq!(
        whatsable.plugin_timeout,
        Some(std::time::Duration::from_millis(500))
    );

    let bad = example_with(
        "allow_ips:",
        "signature: { encoding: base32, algorithm: sha1 }\n        allow_ips:",
    );
    assert_eq!(
        problems(&bad, &full_env),
        [
            "routes.yaml:17: workspaces.acme.vendors.whatsable.signature.encoding: unknown \
             encoding \"base32\": expected hex or base64",
            "routes.yaml:17: workspaces.acme.vendors.whatsable.signature.algorithm: unknown key \
             `algorithm`: expected `header`, `encoding` or `prefix`"
        ]
    );
}

#[test]
fn every_unknown_key_is_reported_not_only_the_first() {
    let text = example_with("dedupe_window", "dedupe_windw")
        .replace("  max_body_bytes", "  max_bodybytes")
        .replace("{ type: stdout }", "{ type: stdout, colour: red }")
        .replace("- match: { type", "- matches: { type")
        .replace("type: \"message.*\"", "types: \"message.*\"")
        + "extra: 1\n";
    let all = problems(&text, &full_env);
    assert_eq!(
        all,
        [
            "routes.yaml:4: server.max_bodybytes: unknown field `max_bodybytes`, expected one of \
             `listen`, `data_dir`, `max_body_bytes`, `plugins_dir`, `admin_token`, \
             `header_read_timeout`, `retention`, `store_cache_bytes`, `access_log`, `include`, \
             `log_format`, `admin_listen`, `tls`, `store`, `trusted_proxies`, `max_connections`, \
             `body_read_timeout`, `max_inflight_body_bytes`, `alerts`, `telemetry`",
            "routes.yaml:9: workspaces.acme.dedupe_windw: unknown field `dedupe_windw`, expected \
             one of `dedupe_window`, `limits`, `vendors`, `sinks`, `routes`",
            "routes.yaml:21: workspaces.acme.sinks.log.colour: unknown field `colour`, expected \
             one of `type`, `path`, `sync`, `url`, `timeout`, `secret`, `retry`, `concurrency`, \
             `ordered`, `max_backoff`, `max_age`, `rate`, `burst`, `disable_after`, `format`, \
             `servers`, `subject`, `stream`, `max_len`, `dedupe_ttl`, `credentials`, `tls`",
            "routes.yaml:23: workspaces.acme.routes[0].match.types: unknown field `types`, \
             expected one of `vendor`, `type`, `where`",
            "routes.yaml:25: workspaces.acme.routes[1].matches: unknown field `matches`, expected \
             one of `match`, `to`",
            "routes.yaml:27: extra: unknown field `extra`, expected one of `server`, `workspaces`",
        ]
    );
}

#[test]
fn signature_none_needs_allow_ips_and_no_secrets() {
    let unsigned = example_with(
        "secrets: [ \"${ACME_WHATSABLE_SECRET}\" ]",
        "signature: none",
    );
    let config = parse(&unsigned, Path::new("routes.yaml"), &full_env).unwrap();
    let whatsable = &config.workspaces[&ws("acme")].vendors[&vendor("whatsable")];
    assert_eq!(whatsable.signature, SignatureConfig::None);
    assert!(whatsable.secrets.is_empty());
    assert_eq!(whatsable.allow_ips.len(), 1);

    let open_to_all = unsigned.replace("        allow_ips: [ \"203.0.113.0/24\" ]\n", "");
    assert_eq!(
        only_problem(&open_to_all),
        "routes.yaml:16: workspaces.acme.vendors.whatsable.signature: `signature: none` turns the \
         signature check off, so `allow_ips` must list the addresses the vendor sends from"
    );
    let with_secrets = example_with("allow_ips:", "signature: none\n        allow_ips:");
    assert_eq!(
        only_problem(&with_secrets),
        "routes.yaml:16: workspaces.acme.vendors.whatsable.secrets: secrets are not used with \
         `signature: none`: remove them, or the `signature: none`"
    );
}

#[test]
fn values_of_the_wrong_kind_are_all_reported_without_being_quoted() {
    let text = example_with("listen: 127.0.0.1:8080", "listen: [127.0.0.1]")
        .replace(
            "allow_ips: [ \"203.0.113.0/24\" ]",
            "allow_ips: [ 1, \"203.0.113.0/24\" ]",
        )
        .replace("log:   { type: stdout }", "log: stdout")
        .replace("to: [audit]", "to: [audit]\n      - just a string");
    assert_eq!(
        problems(&text, &full_env),
        [
            "routes.yaml:2: server.listen: expected a string, found a list",
            "routes.yaml:17: workspaces.acme.vendors.whatsable.allow_ips[0]: expected a string, \
             found a number",
            "routes.yaml:21: workspaces.acme.sinks.log: expected a sink: a mapping with `type`, \
             found a string",
            "routes.yaml:27: workspaces.acme.routes[2]: expected a route: a mapping with `match` \
             and `to`, found a string",
        ]
    );
}

#[test]
fn a_scheme_change_keeps_what_it_does_not_set() {
    use crate::event::verify::{Algorithm, Encoding, SignatureScheme, Signed};
    let plugin = SignatureScheme {
        header: hyper::header::HeaderName::from_static("x-whatsable-signature"),
        encoding: Encoding::Hex,
        prefix: String::new(),
        signed: Signed::Body,
        algorithm: Algorithm::Sha256,
        several: false,
    };
    let changed = SchemeChange {
        header: None,
        encoding: Some(Encoding::Base64),
        prefix: Some("sha256=".into()),
    }
    .apply(&plugin);
    assert_eq!(changed.header, plugin.header);
    assert_eq!(changed.encoding, Encoding::Base64);
    assert_eq!(changed.prefix, "sha256=");
    assert_eq!(SchemeChange::default().apply(&plugin), plugin);
}

#[test]
fn durations_that_would_overflow_are_refused() {
    // 18446744073709553 s is under u64::MAX seconds, but not in milliseconds: it used to wrap.
    for huge in [
        "18446744073709553s",
        "99999999999999999999s",
        "36526d",
        "101y",
    ] {
        assert_eq!(
            only_problem(&example_with("72h", huge)),
            format!(
                "routes.yaml:9: workspaces.acme.dedupe_window: invalid duration \"{huge}\": longer \
                 than 100 years (36525d), the longest accepted"
            )
        );
    }
    let config = parse(
        &example_with("72h", "36525d"),
        Path::new("r.yaml"),
        &full_env,
    )
    .unwrap();
    let window = config.workspaces[&ws("acme")].dedupe_window;
    assert_eq!(window, Duration::from_secs(36525 * 86400));
}

#[test]
fn a_cidr_with_host_bits_names_the_network_it_probably_meant() {
    assert_eq!(
        only_problem(&example_with("203.0.113.0/24", "10.0.0.1/8")),
        "routes.yaml:17: workspaces.acme.vendors.whatsable.allow_ips[0]: \"10.0.0.1/8\" has host \
         bits set: write 10.0.0.0/8 for the network, or 10.0.0.1 for the one address"
    );
    assert!(
        only_problem(&example_with("203.0.113.0/24", "2001:db8::1/32"))
            .ends_with("write 2001:db8::/32 for the network, or 2001:db8::1 for the one address")
    );
}

#[test]
fn secrets_shorter_than_16_bytes_are_refused_unless_development_defaults() {
    let env = |name: &str| {
        Some(match name {
            "ACME_WATSI_SECRET" => "x".to_owned(),
            "CRM_SINK_SECRET" => "fifteen-bytes-!".to_owned(),
            "SWITCHYARD_ADMIN_TOKEN" => "sixteen-bytes-!!".to_owned(),
            _ => format!("value-of-{name}"),
        })
    };
    let refused = ": the secret is shorter than 16 bytes: use a random one of 16 or more, such \
                   as `openssl rand -hex 32` prints";
    assert_eq!(
        problems(EXAMPLE, &env),
        [
            format!("routes.yaml:12: workspaces.acme.vendors.watsi.secrets[0]{refused}"),
            format!("routes.yaml:19: workspaces.acme.sinks.crm.secret{refused}"),
        ]
    );
    // A default is accepted however short, and listed so the server warns at each start.
    let text = example_with("${ACME_WATSI_SECRET}", "${ACME_WATSI_SECRET:-dev}");
    let env = |name: &str| (name != "ACME_WATSI_SECRET").then(|| format!("value-of-{name}"));
    let config = parse(&text, Path::new("routes.yaml"), &env).unwrap();
    assert_eq!(config.default_secrets[0].var, "ACME_WATSI_SECRET");
    // Written out literally, a short secret is no default.
    let literal = example_with("${ACME_WATSI_SECRET}", "dev");
    assert!(only_problem(&literal).ends_with(refused));
}

#[test]
fn a_file_sink_at_a_directory_and_a_data_dir_at_a_file_are_refused() {
    let dir = tempfile_dir("paths");
    std::fs::create_dir_all(dir.join("sinks.d")).unwrap();
    std::fs::write(dir.join("store"), "").unwrap();
    let text = example_with("./data/acme.jsonl", "./sinks.d")
        .replace("data_dir: ./data", "data_dir: ./store");
    let file = dir.join("routes.yaml");
    let all: Vec<String> = match parse(&text, &file, &full_env) {
        Ok(_) => panic!("parsed"),
        Err(error) => error.problems().iter().map(ToString::to_string).collect(),
    };
    let shown = |p: &str| dir.join(p).display().to_string();
    assert_eq!(
        all,
        [
            format!(
                "{}:3: server.data_dir: {} is not a directory: the data dir holds the store, so \
                 it must be a directory or not exist yet",
                file.display(),
                shown("store")
            ),
            format!(
                "{}:20: workspaces.acme.sinks.audit.path: {} is a directory: a file sink appends \
                 to a file, such as ./data/events.jsonl",
                file.display(),
                shown("sinks.d")
            ),
        ]
    );
    // The default data dir, `data` beside the file, is checked too.
    std::fs::write(dir.join("data"), "").unwrap();
    let text = example_with(
        "  data_dir: ./data              # sled: dedupe state and the delivery queue\n",
        "",
    )
    .replace("./data/acme.jsonl", "./acme.jsonl");
    let all = parse(&text, &file, &full_env).unwrap_err().to_string();
    assert!(
        all.starts_with(&format!(
            "{}:1: server.data_dir: {} is not",
            file.display(),
            shown("data")
        )),
        "{all}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn problems_inside_flow_collections_name_the_value_line() {
    let text = example_with(
        "- match: { vendor: [watsi, wappcloud], type: \"message.*\" }",
        "- match: {\n          vendor: [watsi,\n                   whatssync],\n          type: \"message.*\" }",
    )
    .replace(
        "crm:   { type: http, url: \"http://crm.internal/events\", timeout: 10s,",
        "crm:   { type: http, url: \"http://crm.internal/events\",\n              timeout: 10x,",
    );
    assert_eq!(
        problems(&text, &full_env),
        [
            "routes.yaml:20: workspaces.acme.sinks.crm.timeout: invalid duration \"10x\": expected \
             a duration such as 72h or 30m",
            "routes.yaml:26: workspaces.acme.routes[0].match.vendor[1]: vendor `whatssync` is not \
             enabled in this workspace (it enables: wappcloud, watsi, whatsable)",
        ]
    );
}

#[test]
fn a_file_of_the_wrong_shape_is_one_problem_not_a_cascade() {
    assert_eq!(
        problems("- server\n- workspaces\n", &no_env),
        ["routes.yaml:1: expected a mapping with `server` and `workspaces`, found a list"]
    );
    assert_eq!(
        problems("workspaces:\n  acme: [watsi]\n", &no_env),
        ["routes.yaml:2: workspaces.acme: expected a workspace: a mapping with `vendors`, `sinks` \
          and `routes`, found a list"]
    );
}

#[test]
fn front_door_settings_that_cannot_be_meant_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("cert.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.key");
    let text = format!(
        "server:
  listen: 0.0.0.0:8443
  admin_listen: 127.0.0.1:8443
  tls: {{ cert: {:?}, key: {:?} }}
  trusted_proxies: [ 10.0.0.0/8, 10.1.2.3/16, proxy.internal ]
  max_body_bytes: 2048
  max_inflight_body_bytes: 1024
  max_connections: 0
  body_read_timeout: 0s
workspaces:
  demo:
    vendors: {{ watsi: {{ secrets: [a-16-byte-secret] }} }}
",
        not_pem.display(),
        missing.display()
    );
    let all = problems(&text, &no_env);
    let expected = [
        "routes.yaml:3: server.admin_listen: the operator listener cannot share the public \
         address 0.0.0.0:8443"
            .to_owned(),
        format!(
            "routes.yaml:4: server.tls.cert: {} holds no PEM certificate",
            not_pem.display()
        ),
        "routes.yaml:5: server.trusted_proxies[1]: \"10.1.2.3/16\" has host bits set".to_owned(),
        "routes.yaml:5: server.trusted_proxies[2]: invalid address or CIDR \"proxy.internal\""
            .to_owned(),
        "routes.yaml:7: server.max_inflight_body_bytes: 1024 is less than max_body_bytes (2048)"
            .to_owned(),
        "routes.yaml:8: server.max_connections: expected a whole number greater than 0".to_owned(),
        "routes.yaml:9: server.body_read_timeout: must be greater than zero".to_owned(),
    ];
    assert_eq!(all.len(), expected.len(), "{all:#?}");
    for (line, start) in all.iter().zip(&expected) {
        assert!(
            line.starts_with(start.as_str()),
            "{line}\n  should start with\n{start}"
        );
    }

    // The key's file is read once the certificate's problem is out of the way.
    let text = text.replace(
        &not_pem.display().to_string(),
        &missing.display().to_string(),
    );
    let tls: Vec<String> = problems(&text, &no_env)
        .into_iter()
        .filter(|p| p.contains("server.tls"))
        .collect();
    assert_eq!(tls.len(), 1, "{tls:#?}");
    assert!(
        tls[0].starts_with(&format!(
            "routes.yaml:4: server.tls.cert: cannot read {}",
            missing.display()
        )),
        "{tls:#?}"
    );
}

#[test]
fn tls_needs_both_files_and_max_connections_fits_the_open_file_limit() {
    let text = "server:
  tls: { cert: ./tls.crt }
  max_connections: 100000000
workspaces:
  demo:
    vendors: { watsi: { secrets: [a-16-byte-secret] } }
";
    let all = problems(text, &no_env);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        all[0],
        "routes.yaml:2: server.tls: missing: `tls` needs `key`, the PEM private key"
    );
    assert!(
        all[1].starts_with(
            "routes.yaml:3: server.max_connections: 100000000 connections would use up the \
             process's open-file limit"
        ),
        "{all:#?}"
    );
}

#[test]
fn a_cluster_store_names_a_bad_server_and_the_replica_limit() {
    let text = example_with(
        "  max_body_bytes: 1048576",
        "  max_body_bytes: 1048576\n  store: { type: nats, servers: [\"nats://10.0.0.1:4222\", \"http://x:1\"], replicas: 7 }",
    );
    assert_eq!(
        problems(&text, &full_env),
        [
            "routes.yaml:5: server.store.servers[1]: invalid NATS server URL: expected nats://, \
             tls://, ws:// or wss:// and a host, such as nats://127.0.0.1:4222",
            "routes.yaml:5: server.store.replicas: 7 replicas: JetStream keeps 1 to 5 copies",
        ]
    );
    let unknown = example_with(
        "  max_body_bytes: 1048576",
        "  max_body_bytes: 1048576\n  store: { type: etcd }",
    );
    assert_eq!(
        problems(&unknown, &full_env),
        ["routes.yaml:5: server.store.type: unknown store type \"etcd\": expected sled or nats"]
    );
    let parsed = parse(
        &example_with(
            "  max_body_bytes: 1048576",
            "  max_body_bytes: 1048576\n  store: { type: nats, servers: [\"nats://10.0.0.1:4222\"], replicas: 3 }",
        ),
        Path::new("routes.yaml"),
        &full_env,
    )
    .expect("a valid cluster store");
    assert_eq!(
        parsed.server.store,
        crate::store::StoreConfig::Nats(crate::store::NatsStoreConfig {
            servers: vec![crate::base::broker_url::BrokerUrl::new(
                "nats://10.0.0.1:4222"
            )],
            replicas: 3,
            timeout: std::time::Duration::from_secs(10),
            lease: std::time::Duration::from_secs(30),
            access: crate::base::nats::NatsAccess::default(),
        })
    );
}

#[test]
fn cluster_store_tls_and_credential_files_are_checked_at_config_time() {
    let text = example_with(
        "  max_body_bytes: 1048576",
        "  max_body_bytes: 1048576\n  store: { type: nats, servers: [\"tls://10.0.0.1:4222\"], credentials: /nonexistent/x.creds, tls: { ca: /nonexistent/ca.pem, cert: /nonexistent/c.pem } }",
    );
    let found = problems(&text, &full_env);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with(
            "routes.yaml:5: server.store.credentials: cannot read /nonexistent/x.creds"
        ),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("routes.yaml:5: server.store.tls.ca: cannot read /nonexistent/ca.pem"),
        "{found:?}"
    );
    assert_eq!(
        found[2],
        "routes.yaml:5: server.store.tls: missing: `tls` has a `cert`, so it needs its `key`"
    );
    let sled = example_with(
        "  max_body_bytes: 1048576",
        "  max_body_bytes: 1048576\n  store: { type: sled, credentials: x.creds }",
    );
    assert_eq!(
        problems(&sled, &full_env),
        ["routes.yaml:5: server.store.credentials: `credentials` is for `type: nats`; the sled store is embedded"]
    );
}

#[test]
fn telemetry_is_checked_key_by_key_and_read_with_its_defaults() {
    let with = |telemetry: &str| {
        example_with(
            "  admin_token: ${SWITCHYARD_ADMIN_TOKEN}\n",
            &format!("  admin_token: ${{SWITCHYARD_ADMIN_TOKEN}}\n  telemetry: {telemetry}\n"),
        )
    };
    let all = problems(
        &with("{ otlp_endpoint: collector:4318, sample_ratio: 2, service_name: \"\" }"),
        &full_env,
    );
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(all[0].starts_with("routes.yaml:7: server.telemetry.otlp_endpoint: \"collector:4318\" is not an http:// or https:// URL"), "{all:#?}");
    assert!(
        all[1].starts_with("routes.yaml:7: server.telemetry.sample_ratio: a number from 0 to 1"),
        "{all:#?}"
    );
    assert!(
        all[2].starts_with("routes.yaml:7: server.telemetry.service_name: empty"),
        "{all:#?}"
    );
    assert_eq!(
        only_problem(&with("{ sample_ratio: 0.5 }")),
        "routes.yaml:7: server.telemetry: missing: `telemetry` needs `otlp_endpoint`, the \
         collector's OTLP/HTTP address such as http://127.0.0.1:4318"
    );
    let config = parse(
        &with("{ otlp_endpoint: \"http://127.0.0.1:4318/\" }"),
        Path::new("routes.yaml"),
        &full_env,
    )
    .expect("a valid file");
    let telemetry = config.server.telemetry.expect("telemetry on");
    assert_eq!(
        telemetry.traces_url.to_string(),
        "http://127.0.0.1:4318/v1/traces"
    );
    assert_eq!(telemetry.sample_ratio, 1.0);
    assert_eq!(telemetry.service_name, "switchyard");
}
