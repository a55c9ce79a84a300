//! Sinks: where a workspace's events go.

use std::time::Duration;

use hyper::Uri;
use serde_yaml::Value;

use super::{Checker, DEFAULT_TIMEOUT};
use crate::config::locate::KeyPath;
use crate::config::raw::RawSink;
use crate::config::{
    SinkConfig, SinkKind, DEFAULT_HTTP_CONCURRENCY, DEFAULT_MAX_AGE, DEFAULT_MAX_BACKOFF,
    DEFAULT_RETRY_SCHEDULE,
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
        SinkConfig {
            kind: self.sink_kind(at, raw),
            retry,
            concurrency: if ordered { 1 } else { concurrency },
            ordered,
            max_backoff,
            max_age,
        }
    }

    fn sink_kind(&mut self, at: &KeyPath, raw: RawSink) -> SinkKind {
        let kind = raw.kind.as_deref().unwrap_or_default();
        let fields = [
            ("path", raw.path.is_some(), kind == "file"),
            ("url", raw.url.is_some(), kind == "http"),
            ("timeout", raw.timeout.is_some(), kind == "http"),
            ("secret", raw.secret.is_some(), kind == "http"),
        ];
        if matches!(kind, "stdout" | "file" | "http") {
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
                path.map_or(SinkKind::Stdout, |path| SinkKind::File { path })
            }
            "http" => SinkKind::Http {
                url: self.url(&at.key("url"), raw.url),
                timeout: self.duration(&at.key("timeout"), raw.timeout, DEFAULT_TIMEOUT),
                secret: match raw.secret {
                    None | Some(Value::Null) => None,
                    Some(secret) => self.secret(&at.key("secret"), &secret),
                },
            },
            "" => {
                self.problems.add(
                    &at.key("type"),
                    "missing sink type: expected stdout, file or http",
                );
                SinkKind::Stdout
            }
            other => {
                let message = format!("unknown sink type {other:?}: expected stdout, file or http");
                self.problems.add(&at.key("type"), message);
                SinkKind::Stdout
            }
        }
    }

    /// An absolute http(s) URL. It is not quoted back: a URL may carry credentials.
    fn url(&mut self, at: &KeyPath, raw: Option<String>) -> Uri {
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
