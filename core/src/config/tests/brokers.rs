//! The nats and redis sinks' keys: defaults, and each problem on its line with its key.

use super::*;
use crate::sinks::{NatsConfig, RedisConfig};

const LOG: &str = "{ type: stdout }";

fn with_log_sink(sink: &str) -> String {
    example_with(LOG, sink)
}

fn log_sink(text: &str) -> SinkKind {
    let config = parse(text, Path::new("routes.yaml"), &full_env).unwrap();
    config.workspaces[&ws("acme")].sinks[&sink("log")]
        .kind
        .clone()
}

#[test]
fn nats_sink_reads_its_keys_with_defaults() {
    let kind = log_sink(&with_log_sink(
        r#"{ type: nats, servers: ["nats://127.0.0.1:4222", "nats-2:4222"], subject: "webhooks.{workspace}.{type}" }"#,
    ));
    let SinkKind::Nats(NatsConfig {
        servers,
        subject,
        stream,
        timeout,
        access,
    }) = kind
    else {
        panic!("expected a nats sink, got {kind:?}");
    };
    assert_eq!(access, crate::base::nats::NatsAccess::default());
    let servers: Vec<&str> = servers.iter().map(|s| s.expose()).collect();
    assert_eq!(servers, ["nats://127.0.0.1:4222", "nats-2:4222"]);
    assert_eq!(subject.as_str(), "webhooks.{workspace}.{type}");
    assert_eq!(subject.stream_subject(), "webhooks.*.>");
    assert_eq!(stream, None);
    assert_eq!(timeout, Duration::from_secs(10));

    let kind = log_sink(&with_log_sink(
        r#"{ type: nats, servers: ["nats://127.0.0.1:4222"], subject: "wh.{vendor}", stream: WEBHOOKS, timeout: 2s }"#,
    ));
    assert!(
        matches!(kind, SinkKind::Nats(NatsConfig { stream: Some(ref s), timeout, .. })
        if s == "WEBHOOKS" && timeout == Duration::from_secs(2))
    );
}

#[test]
fn redis_sink_reads_its_keys_with_defaults() {
    let kind = log_sink(&with_log_sink(
        r#"{ type: redis, url: "redis://127.0.0.1:6379/0", stream: "webhooks:{workspace}" }"#,
    ));
    let SinkKind::Redis(RedisConfig {
        url,
        stream,
        max_len,
        dedupe_ttl,
        timeout,
    }) = kind
    else {
        panic!("expected a redis sink, got {kind:?}");
    };
    assert_eq!(url.expose(), "redis://127.0.0.1:6379/0");
    assert_eq!(stream.as_str(), "webhooks:{workspace}");
    assert_eq!(max_len, 100_000);
    assert_eq!(dedupe_ttl, Duration::from_secs(72 * 3600));
    assert_eq!(timeout, Duration::from_secs(10));

    let kind = log_sink(&with_log_sink(
        r#"{ type: redis, url: "redis://127.0.0.1/1", stream: "s", max_len: 50, dedupe_ttl: 1h }"#,
    ));
    assert!(
        matches!(kind, SinkKind::Redis(RedisConfig { max_len: 50, dedupe_ttl, .. })
        if dedupe_ttl == Duration::from_secs(3600))
    );
}

#[test]
fn unknown_placeholder_in_a_subject_names_file_line_and_key() {
    assert_eq!(
        only_problem(&with_log_sink(
            r#"{ type: nats, servers: ["nats://127.0.0.1:4222"], subject: "wh.{tenant}.{type}" }"#
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.subject: invalid template: unknown placeholder \
         `{tenant}`: expected {workspace}, {vendor} or {type}"
    );
    assert_eq!(
        only_problem(&with_log_sink(
            r#"{ type: redis, url: "redis://127.0.0.1", stream: "wh:{workspace" }"#
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.stream: invalid template: a `{` is never \
         closed: placeholders are {workspace}, {vendor} and {type}"
    );
}

#[test]
fn subjects_nats_cannot_carry_are_refused() {
    for (subject, why) in [
        (
            "wh events.{type}",
            "a NATS subject cannot hold spaces or other whitespace",
        ),
        (
            "wh.*.{type}",
            "a NATS subject to publish to cannot hold the wildcards `*` or `>`",
        ),
        (
            "wh..{type}",
            "a NATS subject cannot have an empty token: no `..`, and no `.` at either end",
        ),
    ] {
        let text = with_log_sink(&format!(
            r#"{{ type: nats, servers: ["nats://127.0.0.1:4222"], subject: "{subject}" }}"#
        ));
        assert_eq!(
            only_problem(&text),
            format!("routes.yaml:21: workspaces.acme.sinks.log.subject: invalid template: {why}")
        );
    }
}

#[test]
fn broker_sinks_need_their_required_keys() {
    assert_eq!(
        only_problem(&with_log_sink(r#"{ type: redis, stream: "wh" }"#)),
        "routes.yaml:21: workspaces.acme.sinks.log.url: missing: a redis sink needs a `url`, such \
         as redis://127.0.0.1:6379/0"
    );
    assert_eq!(
        only_problem(&with_log_sink(
            r#"{ type: redis, url: "redis://127.0.0.1" }"#
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.stream: missing: a redis sink needs a \
         `stream`, such as \"webhooks:{workspace}\""
    );
    assert_eq!(
        problems(&with_log_sink("{ type: nats }"), &full_env),
        [
            "routes.yaml:21: workspaces.acme.sinks.log.servers: missing: a nats sink needs \
             `servers`, such as [\"nats://127.0.0.1:4222\"]",
            "routes.yaml:21: workspaces.acme.sinks.log.subject: missing: a nats sink needs a \
             `subject`, such as \"webhooks.{workspace}.{type}\"",
        ]
    );
    assert_eq!(
        only_problem(&with_log_sink(
            r#"{ type: nats, servers: [], subject: "wh" }"#
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.servers: empty list: a nats sink needs at \
         least one server, such as [\"nats://127.0.0.1:4222\"]"
    );
}

#[test]
fn bad_broker_urls_are_refused_without_quoting_them() {
    let problem = only_problem(&with_log_sink(
        r#"{ type: nats, servers: ["http://user:hunter2@nats:4222"], subject: "wh" }"#,
    ));
    assert!(
        problem.starts_with(
            "routes.yaml:21: workspaces.acme.sinks.log.servers[0]: invalid NATS server URL"
        ),
        "{problem}"
    );
    assert!(!problem.contains("hunter2"), "{problem}");
    let problem = only_problem(&with_log_sink(
        r#"{ type: redis, url: "mysql://root:hunter2@db", stream: "wh" }"#,
    ));
    assert!(
        problem.starts_with("routes.yaml:21: workspaces.acme.sinks.log.url: invalid redis URL"),
        "{problem}"
    );
    assert!(!problem.contains("hunter2"), "{problem}");
}

#[test]
fn broker_keys_must_suit_the_sink_type() {
    assert_eq!(
        only_problem(&with_log_sink(r#"{ type: stdout, subject: "wh" }"#)),
        "routes.yaml:21: workspaces.acme.sinks.log.subject: `subject` does not apply to a stdout \
         sink"
    );
    assert_eq!(
        only_problem(&with_log_sink(
            r#"{ type: nats, servers: ["nats://127.0.0.1:4222"], subject: "wh", max_len: 5 }"#
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.max_len: `max_len` does not apply to a nats \
         sink"
    );
    assert_eq!(
        only_problem(&with_log_sink(
            r#"{ type: nats, servers: ["nats://127.0.0.1:4222"], subject: "wh", stream: "a.b" }"#
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.stream: invalid stream name \"a.b\": expected \
         a name without spaces, `.`, `*`, `>`, `/` or `\\`, such as WEBHOOKS"
    );
    assert_eq!(
        only_problem(&with_log_sink(
            r#"{ type: redis, url: "redis://127.0.0.1", stream: "wh", max_len: 0 }"#
        )),
        "routes.yaml:21: workspaces.acme.sinks.log.max_len: expected a whole number greater than 0"
    );
}
