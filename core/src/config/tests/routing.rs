//! The keys for routing by content and delivering at the receiver's pace: `match.where`, a
//! sink's `rate`, `burst`, `disable_after` and `format`, and `server.alerts`.

use super::*;

#[test]
fn a_where_is_compiled_and_its_problems_are_at_their_lines() {
    let text = example_with(
        "      - match: { type: \"*\" }",
        "      - match:\n          type: \"message.*\"\n          where:\n            \
         data.status: { in: [failed, undelivered] }\n            data.from: { prefix: +55 }\n            \
         colour: { like: red }",
    );
    assert_eq!(
        problems(&text, &full_env),
        [
            "routes.yaml:29: workspaces.acme.routes[1].match.where.data.from.prefix: `prefix` \
             matches text, and this is a number: quote it, such as \"55\" (a leading + or 0 is \
             lost otherwise)",
            "routes.yaml:30: workspaces.acme.routes[1].match.where.colour: unknown field \
             `colour`: a path starts with one of id, workspace, vendor, type, vendor_type, \
             vendor_event_id, dedupe_key, dedupe_basis, occurred_at, received_at, data, raw",
            "routes.yaml:30: workspaces.acme.routes[1].match.where.colour.like: unknown operator \
             `like`: expected in, not_in, exists, prefix, suffix, contains, gt, gte, lt or lte \
             (or a value to equal)",
        ]
    );
    let text = example_with(
        "      - match: { type: \"*\" }",
        "      - match: { type: \"*\", where: { data.from: { prefix: \"+55\" } } }",
    );
    let config = parse(&text, Path::new("routes.yaml"), &full_env).unwrap();
    let routes = &config.workspaces[&ws("acme")].routes;
    assert!(routes[0].filter.is_none());
    let filter = routes[1].filter.as_ref().unwrap();
    assert!(filter.matches(&serde_json::json!({"data": {"from": "+5511"}})));
    assert!(!filter.matches(&serde_json::json!({"data": {"from": "+4420"}})));
}

#[test]
fn a_sink_rate_takes_s_min_and_h_and_its_burst_defaults_to_one() {
    let with = |keys: &str| {
        let text = example_with("{ type: stdout }", &format!("{{ type: stdout, {keys} }}"));
        parse(&text, Path::new("routes.yaml"), &full_env)
            .map(|c| c.workspaces[&ws("acme")].sinks[&sink("log")].clone())
    };
    let log = with("rate: 50/s").unwrap();
    let rate = log.rate.unwrap();
    assert_eq!(
        (rate.count.get(), rate.per, rate.burst.get()),
        (50, Duration::from_secs(1), 1)
    );
    let rate = with("rate: 30/min, burst: 5").unwrap().rate.unwrap();
    assert_eq!(
        (rate.count.get(), rate.per, rate.burst.get()),
        (30, Duration::from_secs(60), 5)
    );
    let rate = with("rate: 1000/h").unwrap().rate.unwrap();
    assert_eq!(rate.per, Duration::from_secs(3600));
    assert_eq!(log.disable_after, None);
    let log = with("disable_after: 24h").unwrap();
    assert_eq!(log.disable_after, Some(Duration::from_secs(24 * 3600)));
    assert_eq!(with("").unwrap().rate, None);
}

#[test]
fn sink_rate_problems_are_named() {
    let problems_of = |keys: &str| {
        let text = example_with("{ type: stdout }", &format!("{{ type: stdout, {keys} }}"));
        problems(&text, &full_env)
    };
    assert_eq!(
        problems_of("rate: fast"),
        ["routes.yaml:21: workspaces.acme.sinks.log.rate: invalid rate \"fast\": expected a rate \
          such as 500/s, 30/m, 1000/h or 100/10s"]
    );
    assert_eq!(
        problems_of("burst: 5"),
        ["routes.yaml:21: workspaces.acme.sinks.log.burst: `burst` applies to `rate`: set a rate \
          such as 50/s too"]
    );
    assert_eq!(
        problems_of("rate: 5/s, burst: 0"),
        ["routes.yaml:21: workspaces.acme.sinks.log.burst: expected a whole number of deliveries \
          from 1 to 4294967295 (deliveries sent at once before the rate applies)"]
    );
    assert_eq!(
        problems_of("disable_after: soon"),
        [
            "routes.yaml:21: workspaces.acme.sinks.log.disable_after: invalid duration \"soon\": \
          expected a duration such as 72h or 30m"
        ]
    );
    assert_eq!(
        problems_of("format: raw"),
        ["routes.yaml:21: workspaces.acme.sinks.log.format: `format` does not apply to a stdout \
          sink"]
    );
}

#[test]
fn an_http_sink_relays_raw_bodies_when_told() {
    let text = example_with("timeout: 10s,", "timeout: 10s, format: raw,");
    let config = parse(&text, Path::new("routes.yaml"), &full_env).unwrap();
    let crm = &config.workspaces[&ws("acme")].sinks[&sink("crm")];
    assert!(matches!(
        crm.kind,
        SinkKind::Http {
            format: HttpFormat::Raw,
            ..
        }
    ));
    let text = example_with("timeout: 10s,", "timeout: 10s, format: verbatim,");
    assert_eq!(
        only_problem(&text),
        "routes.yaml:19: workspaces.acme.sinks.crm.format: unknown format \"verbatim\": expected \
         envelope or raw"
    );
}

#[test]
fn alerts_need_a_url_and_a_secret() {
    let with = |alerts: &str| {
        example_with(
            "  admin_token:",
            &format!("  alerts: {alerts}\n  admin_token:"),
        )
    };
    let text = with("{ url: \"https://ops.internal/alerts\", secret: \"${ALERTS_SECRET}\" }");
    let config = parse(&text, Path::new("routes.yaml"), &full_env).unwrap();
    let alerts = config.server.alerts.unwrap();
    assert_eq!(alerts.url, "https://ops.internal/alerts");
    assert_eq!(alerts.secret.expose(), b"value-of-ALERTS_SECRET");
    assert_eq!(
        problems(&with("{ url: \"https://ops.internal/alerts\" }"), &full_env),
        [
            "routes.yaml:6: server.alerts.secret: missing: alerts are signed (Standard Webhooks); \
          set a `secret`, such as \"${SWITCHYARD_ALERTS_SECRET}\""
        ]
    );
    assert_eq!(
        problems(&with("{ url: ftp://x, secret: \"${ALERTS_SECRET}\" }"), &full_env),
        ["routes.yaml:6: server.alerts.url: unsupported URL scheme `ftp`: expected http or https"]
    );
}
