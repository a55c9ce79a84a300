//! Sinks: where a workspace's events go.

use std::num::NonZeroU32;
use std::time::Duration;

use hyper::Uri;
use serde_yaml::Value;

use super::{Checker, DEFAULT_TIMEOUT};
use crate::base::broker_url::BrokerUrl;
use crate::config::locate::KeyPath;
use crate::config::raw::RawSink;
use crate::config::{
    Rate, SinkConfig, DEFAULT_HTTP_CONCURRENCY, DEFAULT_MAX_AGE, DEFAULT_MAX_BACKOFF,
    DEFAULT_RETRY_SCHEDULE,
};
use crate::sinks::nats::valid_stream_name;
use crate::sinks::{
    self, FileSync, HttpFormat, NatsConfig, RedisConfig, SinkKind, Template, TemplateError,
};

impl Checker<'_> {
    pub(super) fn sink(&mut self, at: &KeyPath, mut raw: RawSink) -> SinkConfig {
        let retry = match raw.retry.take() {
            None => DEFAULT_RETRY_SCHEDULE.to_vec(),
            Some(waits) => waits
                .into_iter()
                .enumerate()
                .map(|(i, wait)| {
                    self.duration(&at.key("retry").index(i), Some(wait), Duration::ZERO)
                })
                .collect(),
        };
        let ordered = self.boolean(&at.key("ordered"), raw.ordered.take(), false);
        let is_http = raw.kind.as_deref() == Some("http");
        let default_concurrency = if is_http && !ordered {
            DEFAULT_HTTP_CONCURRENCY
        } else {
            1
        };
        let concurrency = match raw.concurrency.take() {
            Some(value) if !value.is_null() => {
                let n = self.concurrency(&at.key("concurrency"), Some(value));
                if ordered && n > 1 {
                    let message = "an ordered sink delivers one at a time: remove `concurrency` \
                                   or `ordered: true`";
                    self.problems.add(&at.key("concurrency"), message);
                }
                n
            }
            _ => default_concurrency,
        };
        let max_backoff = self.duration(
            &at.key("max_backoff"),
            raw.max_backoff.take(),
            DEFAULT_MAX_BACKOFF,
        );
        let max_age = self.duration(&at.key("max_age"), raw.max_age.take(), DEFAULT_MAX_AGE);
        let rate = self.sink_rate(at, raw.rate.take(), raw.burst.take());
        let disable_after = (raw.disable_after.take())
            .map(|after| self.duration(&at.key("disable_after"), Some(after), Duration::ZERO));
        SinkConfig {
            kind: self.sink_kind(at, raw),
            retry,
            concurrency: if ordered { 1 } else { concurrency },
            ordered,
            max_backoff,
            max_age,
            rate,
            disable_after,
        }
    }

    /// `rate` with its `burst`, which defaults to 1: deliveries spread evenly, as a receiver's
    /// own limit is often counted over less than the period.
    fn sink_rate(
        &mut self,
        at: &KeyPath,
        rate: Option<Value>,
        burst: Option<Value>,
    ) -> Option<Rate> {
        let rate = rate.and_then(|rate| self.rate(&at.key("rate"), &rate));
        let burst = burst.and_then(|burst| {
            let why = " (deliveries sent at once before the rate applies)";
            self.burst(&at.key("burst"), &burst, "deliveries", why)
        });
        match (rate, burst) {
            (Some(rate), burst) => Some(Rate {
                burst: burst.unwrap_or(NonZeroU32::MIN),
                ..rate
            }),
            (None, Some(_)) => {
                let message = "`burst` applies to `rate`: set a rate such as 50/s too";
                self.problems.add(&at.key("burst"), message);
                None
            }
            (None, None) => None,
        }
    }

    fn sink_kind(&mut self, at: &KeyPath, raw: RawSink) -> SinkKind {
        let kind = raw.kind.as_deref().unwrap_or_default();
        let fields = [
            ("path", raw.path.is_some(), kind == "file"),
            ("sync", raw.sync.is_some(), kind == "file"),
            ("url", raw.url.is_some(), matches!(kind, "http" | "redis")),
            (
                "timeout",
                raw.timeout.is_some(),
                matches!(kind, "http" | "nats" | "redis"),
            ),
            ("secret", raw.secret.is_some(), kind == "http"),
            ("format", raw.format.is_some(), kind == "http"),
            ("servers", raw.servers.is_some(), kind == "nats"),
            ("subject", raw.subject.is_some(), kind == "nats"),
            (
                "stream",
                raw.stream.is_some(),
                matches!(kind, "nats" | "redis"),
            ),
            ("max_len", raw.max_len.is_some(), kind == "redis"),
            ("dedupe_ttl", raw.dedupe_ttl.is_some(), kind == "redis"),
        ];
        if matches!(kind, "stdout" | "file" | "http" | "nats" | "redis") {
            for (key, present, applies) in fields {
                if present && !applies {
                    let message = format!("`{key}` does not apply to a {kind} sink");
                    self.problems.add(&at.key(key), message);
                }
            }
        }
        match kind {
            "stdout" => SinkKind::Stdout,
            "file" => {
                let path = self.path(&at.key("path"), raw.path.clone());
                if raw.path.is_none() {
                    self.problems
                        .add(&at.key("path"), "missing: a file sink needs a `path`");
                }
                if let Some(dir) = path.as_ref().filter(|path| path.is_dir()) {
                    let message = format!(
                        "{} is a directory: a file sink appends to a file, such as \
                         ./data/events.jsonl",
                        dir.display()
                    );
                    self.problems.add(&at.key("path"), message);
                }
                let sync = self.file_sync(&at.key("sync"), raw.sync.as_deref());
                path.map_or(SinkKind::Stdout, |path| SinkKind::File { path, sync })
            }
            "http" => SinkKind::Http {
                url: self.url(&at.key("url"), raw.url),
                timeout: self.duration(&at.key("timeout"), raw.timeout, DEFAULT_TIMEOUT),
                secret: match raw.secret {
                    None | Some(Value::Null) => None,
                    Some(secret) => self.secret(&at.key("secret"), &secret),
                },
                format: self.http_format(&at.key("format"), raw.format.as_deref()),
            },
            "nats" => self
                .nats_sink(at, raw)
                .map_or(SinkKind::Stdout, SinkKind::Nats),
            "redis" => self
                .redis_sink(at, raw)
                .map_or(SinkKind::Stdout, SinkKind::Redis),
            "" => {
                self.problems.add(
                    &at.key("type"),
                    "missing sink type: expected stdout, file, http, nats or redis",
                );
                SinkKind::Stdout
            }
            other => {
                let message = format!(
                    "unknown sink type {other:?}: expected stdout, file, http, nats or redis"
                );
                self.problems.add(&at.key("type"), message);
                SinkKind::Stdout
            }
        }
    }

    /// An http sink's `format`: `envelope` when absent.
    fn http_format(&mut self, at: &KeyPath, raw: Option<&str>) -> HttpFormat {
        let Some(text) = raw else {
            return HttpFormat::default();
        };
        HttpFormat::parse(text).unwrap_or_else(|| {
            let message = format!("unknown format {text:?}: expected {}", HttpFormat::VALUES);
            self.problems.add(at, message);
            HttpFormat::default()
        })
    }

    /// A file sink's `sync`: `batch` when absent.
    fn file_sync(&mut self, at: &KeyPath, raw: Option<&str>) -> FileSync {
        let Some(text) = raw else {
            return FileSync::default();
        };
        FileSync::parse(text).unwrap_or_else(|| {
            let message = format!("unknown sync {text:?}: expected {}", FileSync::VALUES);
            self.problems.add(at, message);
            FileSync::default()
        })
    }

    /// `servers`, `subject`, `stream`, `timeout`; `None` after a problem.
    fn nats_sink(&mut self, at: &KeyPath, raw: RawSink) -> Option<NatsConfig> {
        let timeout = self.duration(&at.key("timeout"), raw.timeout, DEFAULT_TIMEOUT);
        let servers = self.nats_servers(&at.key("servers"), raw.servers, "a nats sink");
        let subject = match raw.subject {
            None => {
                let message = "missing: a nats sink needs a `subject`, such as \
                               \"webhooks.{workspace}.{type}\"";
                self.problems.add(&at.key("subject"), message);
                None
            }
            Some(text) => {
                let checked = Template::parse(&text).and_then(|t| t.check_subject().map(|()| t));
                self.template(&at.key("subject"), checked)
            }
        };
        let stream = match raw.stream {
            Some(name) if !valid_stream_name(&name) => {
                let message = format!(
                    "invalid stream name {name:?}: expected a name without spaces, `.`, `*`, \
                     `>`, `/` or `\\`, such as WEBHOOKS"
                );
                self.problems.add(&at.key("stream"), message);
                None
            }
            other => other,
        };
        let access = self.nats_access(at, raw.credentials, raw.tls);
        Some(NatsConfig {
            servers: servers?,
            subject: subject?,
            stream,
            timeout,
            access,
        })
    }

    /// NATS server URLs for `what` (a nats sink, the cluster store).
    pub(super) fn nats_servers(
        &mut self,
        at: &KeyPath,
        raw: Option<Vec<Option<String>>>,
        what: &str,
    ) -> Option<Vec<BrokerUrl>> {
        const EXAMPLE: &str = "such as [\"nats://127.0.0.1:4222\"]";
        let Some(items) = raw else {
            self.problems
                .add(at, format!("missing: {what} needs `servers`, {EXAMPLE}"));
            return None;
        };
        if items.is_empty() {
            self.problems.add(
                at,
                format!("empty list: {what} needs at least one server, {EXAMPLE}"),
            );
            return None;
        }
        let mut servers = Vec::new();
        let mut valid = true;
        for (i, item) in items.into_iter().enumerate() {
            // An item that is not a string is already reported.
            let Some(text) = item else {
                valid = false;
                continue;
            };
            // Not quoted back: a server URL may carry credentials.
            if text.parse::<async_nats::ServerAddr>().is_err() {
                let message = "invalid NATS server URL: expected nats://, tls://, ws:// or \
                               wss:// and a host, such as nats://127.0.0.1:4222";
                self.problems.add(&at.index(i), message);
                valid = false;
                continue;
            }
            servers.push(BrokerUrl::new(text));
        }
        if !valid {
            return None;
        }
        Some(servers)
    }

    /// `url`, `stream`, `max_len`, `dedupe_ttl`, `timeout`; `None` after a problem.
    fn redis_sink(&mut self, at: &KeyPath, raw: RawSink) -> Option<RedisConfig> {
        let timeout = self.duration(&at.key("timeout"), raw.timeout, DEFAULT_TIMEOUT);
        let dedupe_ttl = self.duration(
            &at.key("dedupe_ttl"),
            raw.dedupe_ttl,
            sinks::redis::DEFAULT_DEDUPE_TTL,
        );
        let max_len_given = raw.max_len.as_ref().is_some_and(|v| !v.is_null());
        let max_len = self.count(&at.key("max_len"), raw.max_len);
        let url = match raw.url {
            None => {
                let message = "missing: a redis sink needs a `url`, such as \
                               redis://127.0.0.1:6379/0";
                self.problems.add(&at.key("url"), message);
                None
            }
            // Not quoted back: the URL may carry a password.
            Some(url) => match redis::Client::open(url.as_str()) {
                Ok(_) => Some(BrokerUrl::new(url)),
                Err(_) => {
                    let message =
                        "invalid redis URL: expected redis://[:password@]host[:port][/db] \
                                   or unix:///path/to/redis.sock";
                    self.problems.add(&at.key("url"), message);
                    None
                }
            },
        };
        let stream = match raw.stream {
            None => {
                let message = "missing: a redis sink needs a `stream`, such as \
                               \"webhooks:{workspace}\"";
                self.problems.add(&at.key("stream"), message);
                None
            }
            Some(text) => self.template(&at.key("stream"), Template::parse(&text)),
        };
        if max_len_given && max_len.is_none() {
            return None;
        }
        Some(RedisConfig {
            url: url?,
            stream: stream?,
            max_len: max_len.unwrap_or(sinks::redis::DEFAULT_MAX_LEN),
            dedupe_ttl,
            timeout,
        })
    }

    fn template(
        &mut self,
        at: &KeyPath,
        checked: Result<Template, TemplateError>,
    ) -> Option<Template> {
        match checked {
            Ok(template) => Some(template),
            Err(error) => {
                self.problems.add(at, format!("invalid template: {error}"));
                None
            }
        }
    }

    /// An absolute http(s) URL. It is not quoted back: a URL may carry credentials.
    pub(super) fn url(&mut self, at: &KeyPath, raw: Option<String>) -> Uri {
        const EXPECTED: &str =
            "expected an absolute http:// or https:// URL such as https://crm.internal/events";
        let Some(text) = raw else {
            self.problems.add(at, format!("missing: {EXPECTED}"));
            return Uri::default();
        };
        let Ok(uri) = text.parse::<Uri>() else {
            self.problems.add(at, format!("invalid URL: {EXPECTED}"));
            return Uri::default();
        };
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some_and(|host| !host.is_empty()) => uri,
            Some(scheme @ ("http" | "https")) => {
                let message = format!("invalid URL: a {scheme} URL needs a host");
                self.problems.add(at, message);
                Uri::default()
            }
            Some(scheme) => {
                let message = format!("unsupported URL scheme `{scheme}`: expected http or https");
                self.problems.add(at, message);
                Uri::default()
            }
            None => {
                self.problems.add(at, format!("invalid URL: {EXPECTED}"));
                Uri::default()
            }
        }
    }
}
