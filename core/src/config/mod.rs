//! routes.yaml: the server settings and, per workspace, its vendors, sinks and routes.
//!
//! Loading runs in stages: YAML to a `serde_yaml::Value`, `${VAR}` expansion of every string
//! ([`env`]), reading the shapes ([`raw`]), then checking and typing them ([`validate`]). Every
//! problem carries a key path, placed on a line of the file by [`locate`], and every problem
//! found is reported, not just the first.

mod env;
mod error;
mod locate;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use self::error::Problems;
pub use self::error::{ConfigError, Problem};
use self::locate::{KeyPath, Locator, MAX_DEPTH};
use crate::names::{Secret, SinkName, VendorName, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub workspaces: BTreeMap<WorkspaceId, WorkspaceConfig>,
    /// Secrets that came from a `${VAR:-default}` because VAR was unset (or empty).
    pub default_secrets: Vec<DefaultSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultSecret {
    /// Where the secret is, such as `workspaces.demo.vendors.watsi.secrets[0]`.
    pub key: String,
    /// The environment variable that was not set.
    pub var: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// Default `data` beside the configuration file.
    pub data_dir: PathBuf,
    /// Default 1 MiB; never 0.
    pub max_body_bytes: usize,
    /// `None`: the binary decides (beside itself).
    pub plugins_dir: Option<PathBuf>,
    /// `None` when absent or empty (as `${SWITCHYARD_ADMIN_TOKEN:-}` gives).
    pub admin_token: Option<Secret>,
    /// Default 10s.
    pub header_read_timeout: Duration,
    /// How long accepted events stay available for lookup and replay; default 7 days.
    pub retention: Duration,
    /// The operator listener (`/readyz`, `/metrics`, `/admin/*`); default 127.0.0.1:9090. Never
    /// the public address (a port of 0 excepted: each asks for its own free port).
    pub admin_listen: SocketAddr,
    /// `None`: the public listener speaks plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Peers whose `X-Forwarded-For` is believed; empty: none, the peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Public connections open at once; default min(4096, half the open-file soft limit).
    pub max_connections: usize,
    /// How long a client may take to send a body once its headers are in; default 30s.
    pub body_read_timeout: Duration,
    /// Request bodies held in memory at once, all requests together; default 64 MiB, never less
    /// than `max_body_bytes`.
    pub max_inflight_body_bytes: usize,
}

/// `server.tls`: PEM files, read at start and again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceConfig {
    /// Default 72h.
    pub dedupe_window: Duration,
    /// Never empty.
    pub vendors: BTreeMap<VendorName, VendorConfig>,
    pub sinks: BTreeMap<SinkName, SinkConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorConfig {
    /// At least one, none empty, several while a secret is rotated; none with `signature: none`.
    pub secrets: Vec<Secret>,
    pub signature: SignatureConfig,
    /// Empty: any source address. A bare address is a /32 or /128. Never empty with
    /// `signature: none`.
    pub allow_ips: Vec<ipnet::IpNet>,
    /// How long one call into the vendor's plugin may take; `None`: the core's default.
    pub plugin_timeout: Option<Duration>,
}

/// How a workspace checks a vendor's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureConfig {
    /// `signature: none`: not checked, for vendors that sign nothing and are told apart by their
    /// source addresses instead (WhatsAble's document leans on IP allow-lists).
    None,
    /// The plugin's scheme, with whatever routes.yaml changes of it.
    Plugin(SchemeChange),
}

/// Changes to a plugin's signature scheme (`signature: { header, encoding, prefix }`, or the
/// older `signature_header`), for a vendor account that signs differently from what its
/// document suggests. Unset parts keep the plugin's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemeChange {
    /// A valid header name, in lower case.
    pub header: Option<String>,
    pub encoding: Option<crate::verify::Encoding>,
    pub prefix: Option<String>,
}

impl SchemeChange {
    pub fn apply(&self, scheme: &crate::verify::SignatureScheme) -> crate::verify::SignatureScheme {
        let mut scheme = scheme.clone();
        if let Some(header) = &self.header {
            // Validated as a header name when the configuration was read.
            if let Ok(header) = hyper::header::HeaderName::from_bytes(header.as_bytes()) {
                scheme.header = header;
            }
        }
        if let Some(encoding) = self.encoding {
            scheme.encoding = encoding;
        }
        if let Some(prefix) = &self.prefix {
            scheme.prefix = prefix.clone();
        }
        scheme
    }
}

/// One sink: what it is, and how its delivery worker treats failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// Waits before each retry: a failed delivery is retried `retry.len()` times, each after
    /// (a random part of) the next wait, then moved to the dead letters. Default
    /// [`DEFAULT_RETRY_SCHEDULE`].
    pub retry: Vec<Duration>,
    /// Deliveries in flight at once; default 1, which keeps the sink's order strict.
    pub concurrency: usize,
}

/// About 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: close to what Svix and Convoy use, spanning
/// the day and a half a consumer may take to recover.
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    Stdout,
    File {
        path: PathBuf,
    },
    Http {
        /// Absolute, http or https.
        url: hyper::Uri,
        /// Default 10s.
        timeout: Duration,
        /// Signs deliveries (Standard Webhooks) when present.
        secret: Option<Secret>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// `match.vendor`: `None` matches any vendor.
    pub vendors: Option<Vec<VendorName>>,
    /// `match.type`: a glob such as `message.*`; default `*`.
    pub event_type: String,
    /// Never empty.
    pub to: Vec<SinkName>,
}

/// Reads and checks the file at `path`, with variables from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Checks `text`, read from `path` (which names it in errors and anchors relative paths).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let locator = Locator::new(text);
    let mut problems = Problems::new(path, locator);
    // Refused before serde_yaml reads it, whose scanner is quadratic in the nesting depth.
    if let Some(line) = problems.too_deep() {
        let message = format!(
            "collections are nested more than {MAX_DEPTH} deep (a routes file needs 6 at most)"
        );
        problems.add_file(Some(line), message);
        return Err(problems.into_error());
    }
    let mut value: Value = match serde_yaml::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            problems.syntax(&error);
            return Err(problems.into_error());
        }
    };
    // `<<: *defaults` lets workspaces share settings.
    if let Err(error) = value.apply_merge() {
        problems.syntax(&error);
        return Err(problems.into_error());
    }
    if value.is_null() {
        problems.add_file(
            None,
            "the file is empty: expected `server` and `workspaces`",
        );
        return Err(problems.into_error());
    }

    let expanded = env::expand_tree(&mut value, env);
    for (at, message) in &expanded.problems {
        problems.add_settled(at, message.as_str());
    }
    let raw = raw::read(value, &mut problems);
    let base = path.parent().unwrap_or(Path::new(""));
    let built = validate::build(raw, base, &expanded.defaulted, &mut problems);
    if !problems.is_empty() {
        return Err(problems.into_error());
    }
    Ok(Config {
        path: path.to_owned(),
        server: built.server,
        workspaces: built.workspaces,
        default_secrets: built.default_secrets,
    })
}

impl Config {
    /// Every vendor a workspace enables must have a loaded plugin.
    pub fn check_vendors(
        &self,
        is_loaded: &dyn Fn(&VendorName) -> bool,
    ) -> Result<(), ConfigError> {
        // Only to place problems on lines: a file gone since loading just loses them.
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut problems = Problems::new(&self.path, Locator::new(&text));
        for (workspace, config) in &self.workspaces {
            for vendor in config.vendors.keys().filter(|vendor| !is_loaded(vendor)) {
                let at = KeyPath::root().key("workspaces").key(workspace.as_str());
                let message = format!("no loaded plugin provides vendor `{vendor}`");
                problems.add(&at.key("vendors").key(vendor.as_str()), message);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.into_error())
        }
    }
}
