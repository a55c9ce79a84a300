//! The `server` block: listeners, limits, TLS, the store and how NATS is reached.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;

use super::{Checker, DEFAULT_TIMEOUT};
use crate::base::nats::NatsAccess;
use crate::config::locate::KeyPath;
use crate::config::raw::{RawNatsTls, RawServer, RawStore, RawTls};
use crate::config::{AlertsConfig, LogFormat, ServerConfig};
use crate::http::tls::{self, TlsFiles, TlsPart};
use crate::store::{NatsStoreConfig, StoreConfig};

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Loopback: the operator endpoints name every workspace and sink.
const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
const DEFAULT_MAX_BODY_BYTES: usize = 1_048_576;
/// sled's page cache, far below sled's own 1 GiB default. sled holds about two and a half
/// times what it counts against it: at 64 MiB a 1M-event backlog peaked at 311 MB resident,
/// at 16 MiB at 186 MB with intake and drain no slower (BENCHMARKS.md, issue 18); 8 MiB saved
/// only 5 MB more.
const DEFAULT_STORE_CACHE_BYTES: usize = 16 * 1024 * 1024;
const DEFAULT_MAX_INFLIGHT_BODY_BYTES: usize = 64 * 1_048_576;
/// How long a cluster instance holds queued events without renewing them.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The default connection limit is half the open-file soft limit, and at most this.
const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept for everything but public connections: the store's files, plugins,
/// file sinks, outgoing sink connections, the operator listener.
const RESERVED_FILES: u64 = 64;
const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Checker<'_> {
    /// `server`, but for `include`, which [`super::include`] reads.
    pub(crate) fn server(&mut self, raw: Option<RawServer>) -> ServerConfig {
        let at = KeyPath::root().key("server");
        let raw = raw.unwrap_or_default();
        let listen = self.socket_addr(&at.key("listen"), raw.listen, DEFAULT_LISTEN);
        let admin_listen = self.socket_addr(
            &at.key("admin_listen"),
            raw.admin_listen,
            DEFAULT_ADMIN_LISTEN,
        );
        if shares_socket(listen, admin_listen) {
            let message = format!(
                "the operator listener cannot share the public address {listen}: /metrics and \
                 /admin would face vendors; use another port, on loopback such as 127.0.0.1:9090"
            );
            self.problems.add(&at.key("admin_listen"), message);
        }
        let data_dir = self.path(&at.key("data_dir"), raw.data_dir);
        let data_dir = data_dir.unwrap_or_else(|| self.resolve("data"));
        if data_dir.exists() && !data_dir.is_dir() {
            let message = format!(
                "{} is not a directory: the data dir holds the store, so it must be a directory \
                 or not exist yet",
                data_dir.display()
            );
            self.problems.add(&at.key("data_dir"), message);
        }
        let plugins_dir = self.path(&at.key("plugins_dir"), raw.plugins_dir);
        let admin_token = match raw.admin_token {
            // Empty, as from `${SWITCHYARD_ADMIN_TOKEN:-}`, means no token is configured.
            None | Some(Value::Null) => None,
            Some(Value::String(token)) if token.is_empty() => None,
            Some(token) => self.secret(&at.key("admin_token"), &token),
        };
        let max_body_bytes = self.bytes(
            &at.key("max_body_bytes"),
            raw.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
        );
        let inflight_at = at.key("max_inflight_body_bytes");
        let max_inflight_body_bytes = self.bytes(
            &inflight_at,
            raw.max_inflight_body_bytes,
            DEFAULT_MAX_INFLIGHT_BODY_BYTES.max(max_body_bytes),
        );
        if max_inflight_body_bytes < max_body_bytes {
            let message = format!(
                "{max_inflight_body_bytes} is less than max_body_bytes ({max_body_bytes}): a \
                 body of the largest size allowed could never be taken"
            );
            self.problems.add(&inflight_at, message);
        }
        let trusted_proxies = (raw
            .trusted_proxies
            .unwrap_or_default()
            .into_iter()
            .enumerate())
        .filter_map(|(i, text)| self.ip_net(&at.key("trusted_proxies").index(i), &text?))
        .collect();
        let tls = raw.tls.and_then(|raw| self.tls(&at.key("tls"), raw));
        let store = raw.store.map_or(StoreConfig::Embedded, |raw| {
            self.store(&at.key("store"), raw)
        });
        let alerts = raw.alerts.and_then(|raw| {
            let at = at.key("alerts");
            let url = self.url(&at.key("url"), raw.url);
            let secret = match raw.secret {
                None => {
                    let message = "missing: alerts are signed (Standard Webhooks); set a \
                                   `secret`, such as \"${SWITCHYARD_ALERTS_SECRET}\"";
                    self.problems.add(&at.key("secret"), message);
                    None
                }
                Some(secret) => self.secret(&at.key("secret"), &secret),
            };
            Some(AlertsConfig {
                url,
                secret: secret?,
            })
        });
        let telemetry = (raw.telemetry).and_then(|raw| self.telemetry(&at.key("telemetry"), raw));
        ServerConfig {
            alerts,
            telemetry,
            listen,
            admin_listen,
            tls,
            store,
            trusted_proxies,
            max_connections: self.max_connections(&at.key("max_connections"), raw.max_connections),
            body_read_timeout: self.duration(
                &at.key("body_read_timeout"),
                raw.body_read_timeout,
                DEFAULT_BODY_READ_TIMEOUT,
            ),
            max_inflight_body_bytes,
            data_dir,
            max_body_bytes,
            plugins_dir,
            admin_token,
            header_read_timeout: self.duration(
                &at.key("header_read_timeout"),
                raw.header_read_timeout,
                DEFAULT_TIMEOUT,
            ),
            retention: self.duration(&at.key("retention"), raw.retention, DEFAULT_RETENTION),
            store_cache_bytes: self.bytes(
                &at.key("store_cache_bytes"),
                raw.store_cache_bytes,
                DEFAULT_STORE_CACHE_BYTES,
            ) as u64,
            access_log: self.boolean(&at.key("access_log"), raw.access_log, false),
            log_format: match raw.log_format {
                None => LogFormat::Text,
                Some(text) => text.parse().unwrap_or_else(|message: String| {
                    self.problems.add(&at.key("log_format"), message);
                    LogFormat::Text
                }),
            },
        }
    }

    /// `server.tls`: both files named, readable, PEM, and a key that belongs to the
    /// certificate, so `check` finds what would stop the server.
    pub(super) fn tls(&mut self, at: &KeyPath, raw: RawTls) -> Option<TlsFiles> {
        let mut file = |part: &str, path: Option<String>, what: &str| {
            let found = self.path(&at.key(part), path.clone());
            if path.is_none() {
                let message = format!("missing: `tls` needs `{part}`, {what}");
                self.problems.add(at, message);
            }
            found
        };
        let cert = file("cert", raw.cert, "the PEM certificate chain");
        let key = file("key", raw.key, "the PEM private key");
        let files = TlsFiles {
            cert: cert?,
            key: key?,
        };
        if let Err(e) = tls::load(&files) {
            let at = match e.part() {
                Some(TlsPart::Cert) => at.key("cert"),
                Some(TlsPart::Key) => at.key("key"),
                None => at.clone(),
            };
            self.problems.add(&at, e.to_string());
            return None;
        }
        Some(files)
    }

    /// `server.store`: `sled` (the default) or `nats` with its servers.
    pub(super) fn store(&mut self, at: &KeyPath, raw: RawStore) -> StoreConfig {
        match raw.kind.as_deref() {
            None | Some("sled") => {
                for (key, given) in [
                    ("servers", raw.servers.is_some()),
                    ("replicas", raw.replicas.is_some()),
                    ("timeout", raw.timeout.is_some()),
                    ("lease", raw.lease.is_some()),
                    ("credentials", raw.credentials.is_some()),
                    ("tls", raw.tls.is_some()),
                ] {
                    if given {
                        let message =
                            format!("`{key}` is for `type: nats`; the sled store is embedded");
                        self.problems.add(&at.key(key), message);
                    }
                }
                StoreConfig::Embedded
            }
            Some("nats") => {
                let servers = self
                    .nats_servers(&at.key("servers"), raw.servers, "the nats store")
                    .unwrap_or_default();
                let replicas = match self.count(&at.key("replicas"), raw.replicas) {
                    None => 1,
                    Some(n @ 1..=5) => n,
                    Some(n) => {
                        let message = format!("{n} replicas: JetStream keeps 1 to 5 copies");
                        self.problems.add(&at.key("replicas"), message);
                        1
                    }
                };
                let timeout = self.duration(&at.key("timeout"), raw.timeout, DEFAULT_TIMEOUT);
                let lease = self.duration(&at.key("lease"), raw.lease, DEFAULT_LEASE);
                if lease < Duration::from_secs(1) {
                    let message = "at least 1s: a lease is renewed every third of it";
                    self.problems.add(&at.key("lease"), message.to_owned());
                }
                let access = self.nats_access(at, raw.credentials, raw.tls);
                StoreConfig::Nats(NatsStoreConfig {
                    servers,
                    replicas,
                    timeout,
                    lease,
                    access,
                })
            }
            Some(other) => {
                let message = format!("unknown store type {other:?}: expected sled or nats");
                self.problems.add(&at.key("type"), message);
                StoreConfig::Embedded
            }
        }
    }

    /// A file the server must read at start-up; a problem now rather than then.
    pub(super) fn readable_file(&mut self, at: &KeyPath, raw: Option<String>) -> Option<PathBuf> {
        let path = self.path(at, raw)?;
        match std::fs::File::open(&path) {
            Ok(_) if path.is_file() => Some(path),
            Ok(_) => {
                self.problems
                    .add(at, format!("{} is not a file", path.display()));
                None
            }
            Err(e) => {
                self.problems
                    .add(at, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// `credentials` and `tls` (a CA, and a client certificate with its key, both or
    /// neither) of the cluster store or a nats sink at `at`.
    pub(super) fn nats_access(
        &mut self,
        at: &KeyPath,
        credentials: Option<String>,
        tls: Option<RawNatsTls>,
    ) -> NatsAccess {
        let credentials = self.readable_file(&at.key("credentials"), credentials);
        let Some(raw) = tls else {
            return NatsAccess {
                credentials,
                ..NatsAccess::default()
            };
        };
        let at = at.key("tls");
        let tls_ca = self.readable_file(&at.key("ca"), raw.ca);
        let tls_client = match (raw.cert, raw.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let cert = self.readable_file(&at.key("cert"), Some(cert));
                let key = self.readable_file(&at.key("key"), Some(key));
                cert.zip(key)
            }
            (Some(_), None) => {
                self.problems
                    .add(&at, "missing: `tls` has a `cert`, so it needs its `key`");
                None
            }
            (None, Some(_)) => {
                self.problems
                    .add(&at, "missing: `tls` has a `key`, so it needs its `cert`");
                None
            }
        };
        NatsAccess {
            credentials,
            tls_ca,
            tls_client,
        }
    }

    /// `server.max_connections`: by default half the open-file soft limit, at most
    /// [`DEFAULT_MAX_CONNECTIONS`]; never so many that the process would run out of files.
    pub(super) fn max_connections(&mut self, at: &KeyPath, raw: Option<Value>) -> usize {
        let soft = crate::http::open_files_soft_limit();
        let default = soft.map_or(DEFAULT_MAX_CONNECTIONS, |soft| {
            (soft / 2).clamp(1, DEFAULT_MAX_CONNECTIONS as u64) as usize
        });
        let Some(wanted) = self.count(at, raw) else {
            return default;
        };
        match soft {
            Some(soft) if wanted as u64 + RESERVED_FILES > soft => {
                let message = format!(
                    "{wanted} connections would use up the process's open-file limit ({soft}, \
                     `ulimit -n`), {RESERVED_FILES} of which stay for the store, plugins and \
                     sinks: raise the limit or lower max_connections"
                );
                self.problems.add(at, message);
                default
            }
            _ => wanted,
        }
    }
}

/// Whether two listeners would want the same socket. Port 0 asks for any free port, so two of
/// them never clash.
fn shares_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
