//! routes.yaml as written, after `${VAR}` expansion and before any check.
//!
//! Read from the `Value` by hand rather than by serde's derive, which stops at the first unknown
//! key or wrong type: here every one is reported, and reading goes on around it. Every field is
//! optional, so a missing one is reported by `validate` with the other problems. Secrets and
//! fields that may come from a variable stay `Value`s. A value of the wrong type is named by its
//! kind, never quoted: it may be a secret.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::error::Problems;
use super::fields::Reader;
use super::locate::KeyPath;

#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub(crate) server: Option<RawServer>,
    pub(crate) workspaces: Option<BTreeMap<String, RawWorkspace>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawServer {
    pub(crate) listen: Option<String>,
    pub(crate) data_dir: Option<String>,
    pub(crate) max_body_bytes: Option<Value>,
    pub(crate) plugins_dir: Option<String>,
    pub(crate) admin_token: Option<Value>,
    pub(crate) header_read_timeout: Option<Value>,
    pub(crate) retention: Option<Value>,
    pub(crate) store_cache_bytes: Option<Value>,
    pub(crate) access_log: Option<Value>,
    /// A directory or glob, or a list of them: checked by `include`.
    pub(crate) include: Option<Value>,
    pub(crate) log_format: Option<String>,
    pub(crate) admin_listen: Option<String>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) store: Option<RawStore>,
    /// `None` for an item already reported as not a string; indices stay those of the file.
    pub(crate) trusted_proxies: Option<Vec<Option<String>>>,
    pub(crate) max_connections: Option<Value>,
    pub(crate) body_read_timeout: Option<Value>,
    pub(crate) max_inflight_body_bytes: Option<Value>,
    pub(crate) alerts: Option<RawAlerts>,
    pub(crate) telemetry: Option<RawTelemetry>,
}

/// `server.telemetry`: OpenTelemetry traces.
#[derive(Debug, Default)]
pub(crate) struct RawTelemetry {
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) sample_ratio: Option<Value>,
    pub(crate) service_name: Option<String>,
}

/// `server.alerts`: where sink state changes are posted.
#[derive(Debug, Default)]
pub(crate) struct RawAlerts {
    pub(crate) url: Option<String>,
    pub(crate) secret: Option<Value>,
}

/// `server.store`: where accepted events are kept.
#[derive(Debug, Default)]
pub(crate) struct RawStore {
    pub(crate) kind: Option<String>,
    /// `None` for an item already reported as not a string.
    pub(crate) servers: Option<Vec<Option<String>>>,
    pub(crate) replicas: Option<Value>,
    pub(crate) timeout: Option<Value>,
    pub(crate) lease: Option<Value>,
    pub(crate) credentials: Option<String>,
    pub(crate) tls: Option<RawNatsTls>,
}

/// `tls` of `server.store` or a nats sink: how switchyard checks NATS, and proves itself to it.
#[derive(Debug, Default)]
pub(crate) struct RawNatsTls {
    pub(crate) ca: Option<String>,
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawWorkspace {
    pub(crate) dedupe_window: Option<Value>,
    pub(crate) limits: Option<RawLimits>,
    pub(crate) vendors: Option<BTreeMap<String, RawVendor>>,
    pub(crate) sinks: Option<BTreeMap<String, RawSink>>,
    pub(crate) routes: Option<Vec<RawRoute>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawLimits {
    pub(crate) rate: Option<Value>,
    pub(crate) burst: Option<Value>,
    pub(crate) max_queue: Option<Value>,
}

#[derive(Debug, Default)]
pub(crate) struct RawVendor {
    pub(crate) secrets: Option<Value>,
    pub(crate) signature_header: Option<String>,
    /// `none`, or a mapping of `header`, `encoding`, `prefix`: checked by `validate`.
    pub(crate) signature: Option<Value>,
    /// `None` for an item already reported as not a string; indices stay those of the file.
    pub(crate) allow_ips: Option<Vec<Option<String>>>,
    pub(crate) plugin_timeout: Option<Value>,
}

#[derive(Debug, Default)]
pub(crate) struct RawSink {
    pub(crate) kind: Option<String>,
    pub(crate) path: Option<String>,
    /// file: when lines reach the disk.
    pub(crate) sync: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) timeout: Option<Value>,
    pub(crate) secret: Option<Value>,
    pub(crate) retry: Option<Vec<Value>>,
    pub(crate) concurrency: Option<Value>,
    pub(crate) ordered: Option<Value>,
    pub(crate) max_backoff: Option<Value>,
    pub(crate) max_age: Option<Value>,
    /// The most deliveries a second (minute, hour): `50/s`, with `burst`.
    pub(crate) rate: Option<Value>,
    pub(crate) burst: Option<Value>,
    pub(crate) disable_after: Option<Value>,
    /// http: `envelope` or `raw`.
    pub(crate) format: Option<String>,
    /// nats: `None` for an item already reported as not a string; indices stay those of the file.
    pub(crate) servers: Option<Vec<Option<String>>>,
    pub(crate) subject: Option<String>,
    /// nats: the stream's name; redis: the stream key template.
    pub(crate) stream: Option<String>,
    pub(crate) max_len: Option<Value>,
    pub(crate) dedupe_ttl: Option<Value>,
    /// nats: how to reach the servers, as for `server.store`.
    pub(crate) credentials: Option<String>,
    pub(crate) tls: Option<RawNatsTls>,
}

#[derive(Debug, Default)]
pub(crate) struct RawRoute {
    pub(crate) matcher: Option<RawMatch>,
    pub(crate) to: Option<Value>,
}

#[derive(Debug, Default)]
pub(crate) struct RawMatch {
    pub(crate) vendor: Option<Value>,
    pub(crate) event_type: Option<String>,
    /// `where`: payload conditions, compiled by `validate`.
    pub(crate) filter: Option<Value>,
}

/// Reads the whole file's value. A problem is settled at its key: what `validate` would say
/// about that key, or anything below it, would only repeat it.
pub(crate) fn read(value: Value, problems: &mut Problems) -> RawConfig {
    let at = KeyPath::root();
    let mut reader = Reader { problems };
    let mut fields = reader.fields(&at, value, "a mapping with `server` and `workspaces`");
    let server = fields
        .take("server")
        .map(|v| reader.server(&at.key("server"), v));
    let workspaces = fields.take("workspaces").map(|v| {
        let expecting = "a mapping of workspaces by name";
        reader.map(&at.key("workspaces"), v, expecting, Reader::workspace)
    });
    reader.finish(fields);
    RawConfig { server, workspaces }
}

/// Reads an included file's value: its `workspaces` and nothing else (`None` when absent).
pub(crate) fn read_included(
    value: Value,
    problems: &mut Problems,
) -> Option<BTreeMap<String, RawWorkspace>> {
    let at = KeyPath::root();
    let mut reader = Reader { problems };
    let mut fields = reader.fields(&at, value, "a mapping with `workspaces`");
    let workspaces = fields.take("workspaces").map(|v| {
        let expecting = "a mapping of workspaces by name";
        reader.map(&at.key("workspaces"), v, expecting, Reader::workspace)
    });
    reader.finish(fields);
    workspaces
}

impl Reader<'_> {
    fn server(&mut self, at: &KeyPath, value: Value) -> RawServer {
        let mut f = self.fields(at, value, "a mapping of server settings");
        let raw = RawServer {
            listen: self.string(&f.at.key("listen"), f.take("listen")),
            data_dir: self.string(&f.at.key("data_dir"), f.take("data_dir")),
            max_body_bytes: f.take("max_body_bytes"),
            plugins_dir: self.string(&f.at.key("plugins_dir"), f.take("plugins_dir")),
            admin_token: f.take("admin_token"),
            header_read_timeout: f.take("header_read_timeout"),
            retention: f.take("retention"),
            store_cache_bytes: f.take("store_cache_bytes"),
            access_log: f.take("access_log"),
            include: f.take("include"),
            log_format: self.string(&f.at.key("log_format"), f.take("log_format")),
            admin_listen: self.string(&f.at.key("admin_listen"), f.take("admin_listen")),
            tls: f.take("tls").map(|v| self.tls(&f.at.key("tls"), v)),
            store: f.take("store").map(|v| self.store(&f.at.key("store"), v)),
            trusted_proxies: f.take("trusted_proxies").map(|v| {
                let expecting = "a list of addresses and networks";
                self.list(&f.at.key("trusted_proxies"), v, expecting, |r, at, item| {
                    r.string(at, Some(item))
                })
            }),
            max_connections: f.take("max_connections"),
            body_read_timeout: f.take("body_read_timeout"),
            max_inflight_body_bytes: f.take("max_inflight_body_bytes"),
            alerts: f.take("alerts").map(|v| {
                let at = f.at.key("alerts");
                let mut a = self.fields(&at, v, "a mapping with `url` and `secret`");
                let alerts = RawAlerts {
                    url: self.string(&at.key("url"), a.take("url")),
                    secret: a.take("secret"),
                };
                self.finish(a);
                alerts
            }),
            telemetry: (f.take("telemetry")).map(|v| self.telemetry(&f.at.key("telemetry"), v)),
        };
        self.finish(f);
        raw
    }

    fn telemetry(&mut self, at: &KeyPath, value: Value) -> RawTelemetry {
        let expecting = "a mapping with `otlp_endpoint`, `sample_ratio` and `service_name`";
        let mut f = self.fields(at, value, expecting);
        let raw = RawTelemetry {
            otlp_endpoint: self.string(&f.at.key("otlp_endpoint"), f.take("otlp_endpoint")),
            sample_ratio: f.take("sample_ratio"),
            service_name: self.string(&f.at.key("service_name"), f.take("service_name")),
        };
        self.finish(f);
        raw
    }

    fn tls(&mut self, at: &KeyPath, value: Value) -> RawTls {
        let expecting = "a mapping with `cert` and `key`, the PEM files";
        let mut f = self.fields(at, value, expecting);
        let raw = RawTls {
            cert: self.string(&f.at.key("cert"), f.take("cert")),
            key: self.string(&f.at.key("key"), f.take("key")),
        };
        self.finish(f);
        raw
    }

    fn store(&mut self, at: &KeyPath, value: Value) -> RawStore {
        let expecting =
            "a mapping with `type` (sled or nats), and for nats `servers` and `replicas`";
        let mut f = self.fields(at, value, expecting);
        let raw = RawStore {
            kind: self.string(&f.at.key("type"), f.take("type")),
            servers: f.take("servers").map(|v| {
                let expecting = "a list of NATS server URLs";
                self.list(&f.at.key("servers"), v, expecting, |r, at, item| {
                    r.string(at, Some(item))
                })
            }),
            replicas: f.take("replicas"),
            timeout: f.take("timeout"),
            lease: f.take("lease"),
            credentials: self.string(&f.at.key("credentials"), f.take("credentials")),
            tls: f.take("tls").map(|v| self.nats_tls(&f.at.key("tls"), v)),
        };
        self.finish(f);
        raw
    }

    fn workspace(&mut self, at: &KeyPath, value: Value) -> RawWorkspace {
        let expecting = "a workspace: a mapping with `vendors`, `sinks` and `routes`";
        let mut f = self.fields(at, value, expecting);
        let raw = RawWorkspace {
            dedupe_window: f.take("dedupe_window"),
            limits: f.take("limits").map(|v| {
                let at = f.at.key("limits");
                let expecting = "limits: a mapping with `rate`, `burst` and `max_queue`";
                let mut l = self.fields(&at, v, expecting);
                let limits = RawLimits {
                    rate: l.take("rate"),
                    burst: l.take("burst"),
                    max_queue: l.take("max_queue"),
                };
                self.finish(l);
                limits
            }),
            vendors: f.take("vendors").map(|v| {
                let expecting = "a mapping of vendors by name";
                self.map(&f.at.key("vendors"), v, expecting, Reader::vendor)
            }),
            sinks: f.take("sinks").map(|v| {
                let expecting = "a mapping of sinks by name";
                self.map(&f.at.key("sinks"), v, expecting, Reader::sink)
            }),
            routes: f.take("routes").map(|v| {
                let expecting = "a list of routes";
                self.list(&f.at.key("routes"), v, expecting, Reader::route)
            }),
        };
        self.finish(f);
        raw
    }

    fn vendor(&mut self, at: &KeyPath, value: Value) -> RawVendor {
        let mut f = self.fields(at, value, "a vendor: a mapping with `secrets`");
        let header_at = f.at.key("signature_header");
        let raw = RawVendor {
            secrets: f.take("secrets"),
            signature_header: self.string(&header_at, f.take("signature_header")),
            signature: f.take("signature"),
            plugin_timeout: f.take("plugin_timeout"),
            allow_ips: f.take("allow_ips").map(|v| {
                let expecting = "a list of addresses and networks";
                self.list(&f.at.key("allow_ips"), v, expecting, |r, at, item| {
                    r.string(at, Some(item))
                })
            }),
        };
        self.finish(f);
        raw
    }

    fn sink(&mut self, at: &KeyPath, value: Value) -> RawSink {
        let mut f = self.fields(at, value, "a sink: a mapping with `type`");
        let raw = RawSink {
            kind: self.string(&f.at.key("type"), f.take("type")),
            path: self.string(&f.at.key("path"), f.take("path")),
            sync: self.string(&f.at.key("sync"), f.take("sync")),
            url: self.string(&f.at.key("url"), f.take("url")),
            timeout: f.take("timeout"),
            secret: f.take("secret"),
            retry: f.take("retry").map(|v| {
                let expecting = "a list of waits such as [5s, 5m]";
                self.list(&f.at.key("retry"), v, expecting, |_, _, wait| wait)
            }),
            concurrency: f.take("concurrency"),
            ordered: f.take("ordered"),
            max_backoff: f.take("max_backoff"),
            max_age: f.take("max_age"),
            rate: f.take("rate"),
            burst: f.take("burst"),
            disable_after: f.take("disable_after"),
            format: self.string(&f.at.key("format"), f.take("format")),
            servers: f.take("servers").map(|v| {
                let expecting = "a list of NATS server URLs such as [\"nats://127.0.0.1:4222\"]";
                self.list(&f.at.key("servers"), v, expecting, |r, at, item| {
                    r.string(at, Some(item))
                })
            }),
            subject: self.string(&f.at.key("subject"), f.take("subject")),
            stream: self.string(&f.at.key("stream"), f.take("stream")),
            max_len: f.take("max_len"),
            dedupe_ttl: f.take("dedupe_ttl"),
            credentials: self.string(&f.at.key("credentials"), f.take("credentials")),
            tls: f.take("tls").map(|v| self.nats_tls(&f.at.key("tls"), v)),
        };
        self.finish(f);
        raw
    }

    fn nats_tls(&mut self, at: &KeyPath, value: Value) -> RawNatsTls {
        let expecting = "a mapping with `ca`, and `cert` and `key` for a client certificate";
        let mut t = self.fields(at, value, expecting);
        let tls = RawNatsTls {
            ca: self.string(&t.at.key("ca"), t.take("ca")),
            cert: self.string(&t.at.key("cert"), t.take("cert")),
            key: self.string(&t.at.key("key"), t.take("key")),
        };
        self.finish(t);
        tls
    }

    fn route(&mut self, at: &KeyPath, value: Value) -> RawRoute {
        let mut f = self.fields(at, value, "a route: a mapping with `match` and `to`");
        let raw = RawRoute {
            matcher: f.take("match").map(|v| {
                let at = f.at.key("match");
                let expecting = "a match: a mapping with `vendor`, `type` and `where`";
                let mut m = self.fields(&at, v, expecting);
                let matcher = RawMatch {
                    vendor: m.take("vendor"),
                    event_type: self.string(&at.key("type"), m.take("type")),
                    filter: m.take("where"),
                };
                self.finish(m);
                matcher
            }),
            to: f.take("to"),
        };
        self.finish(f);
        raw
    }
}
