//! routes.yaml: the server settings and, per workspace, its vendors, sinks and routes.
//!
//! Loading runs in stages: YAML to a `serde_yaml::Value`, `${VAR}` expansion of every string
//! ([`env`]), reading the shapes ([`raw`]), then checking and typing them ([`validate`]). Every
//! problem carries a key path, placed on a line of its file by [`locate`], and every problem
//! found is reported, not just the first. The files `server.include` names ([`include`]) go
//! through the same stages, each holding workspaces only.

mod early;
mod env;
mod error;
mod fields;
mod include;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_yaml::Value;

pub use self::early::{log_format, operator_access, OperatorAccess};
use self::error::Problems;
pub use self::error::{ConfigError, Problem};
// Key paths and their lines live on the ground floor, shared with vendor definitions.
use crate::base::locate::{self, KeyPath, Locator, MAX_DEPTH};
use crate::base::names::{Secret, SinkName, VendorName, WorkspaceId};
use crate::event::filter::Filter;
use crate::event::verify::SchemeChange;
use crate::http::tls::TlsFiles;
use crate::sinks::SinkKind;
use crate::store::StoreConfig;
use crate::telemetry::TelemetryConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The files `server.include` named, in the order they were read.
    pub included: Vec<PathBuf>,
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
    /// sled's page cache in bytes; default 16 MiB.
    pub store_cache_bytes: u64,
    /// One info line per request (method, path, status, outcome, latency); default off, as
    /// per-request lines are debug.
    pub access_log: bool,
    /// Default text.
    pub log_format: LogFormat,
    /// The operator listener (`/readyz`, `/metrics`, `/admin/*`); default 127.0.0.1:9090. Never
    /// the public address (a port of 0 excepted: each asks for its own free port).
    pub admin_listen: SocketAddr,
    /// `None`: the public listener speaks plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Where accepted events are kept; default: embedded, in `data_dir`.
    pub store: StoreConfig,
    /// Peers whose `X-Forwarded-For` is believed; empty: none, the peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Public connections open at once; default min(4096, half the open-file soft limit).
    pub max_connections: usize,
    /// How long a client may take to send a body once its headers are in; default 30s.
    pub body_read_timeout: Duration,
    /// Request bodies held in memory at once, all requests together; default 64 MiB, never less
    /// than `max_body_bytes`.
    pub max_inflight_body_bytes: usize,
    /// `None`: no traces.
    pub telemetry: Option<TelemetryConfig>,
    /// Where a sink's state changes (failing, disabled, recovered) are posted; `None`: logged
    /// only.
    pub alerts: Option<AlertsConfig>,
}

/// `server.alerts`: an endpoint that receives Standard Webhooks-signed notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    pub url: hyper::Uri,
    pub secret: Secret,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: `TIMESTAMP LEVEL target: message key=value...`.
    #[default]
    Text,
    /// One JSON object per line, every field a key, for log pipelines.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}: expected text or json"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceConfig {
    /// The file that defines it: the main file or an included one.
    pub source: PathBuf,
    /// Default 72h.
    pub dedupe_window: Duration,
    /// Default: none.
    pub limits: Limits,
    /// Never empty.
    pub vendors: BTreeMap<VendorName, VendorConfig>,
    pub sinks: BTreeMap<SinkName, SinkConfig>,
    pub routes: Vec<RouteConfig>,
}

/// A workspace's quotas; over one, a delivery is answered 429 with Retry-After.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `None`: any rate.
    pub rate: Option<Rate>,
    /// The most events the workspace's sinks may owe together; `None`: no ceiling.
    pub max_queue: Option<u64>,
}

/// `count` requests per `per` on average, up to `burst` at once (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    /// From 1 ns to 24 h.
    pub per: Duration,
    /// Default `count`.
    pub burst: NonZeroU32,
}

impl Rate {
    /// The time one request's token takes to come back; never zero.
    pub fn interval(&self) -> Duration {
        self.per / self.count.get()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => "s".to_owned(),
            60 if self.per.subsec_nanos() == 0 => "m".to_owned(),
            3600 if self.per.subsec_nanos() == 0 => "h".to_owned(),
            _ => humantime::format_duration(self.per).to_string(),
        };
        write!(f, "{}/{per}, burst {}", self.count, self.burst)
    }
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

/// One sink: what it is, and how its delivery worker treats failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// Waits before each retry: a failed delivery is retried `retry.len()` times, each after
    /// (a random part of) the next wait, then moved to the dead letters. Default
    /// [`DEFAULT_RETRY_SCHEDULE`].
    pub retry: Vec<Duration>,
    /// Deliveries in flight at once: default 8 for http, 1 for file and stdout (which write
    /// batches instead); always 1 when `ordered`.
    pub concurrency: usize,
    /// Strictly one at a time, in accept order; a failing event holds back the rest.
    pub ordered: bool,
    /// The longest the sink as a whole backs off after failures before it probes again;
    /// default 5 s.
    pub max_backoff: Duration,
    /// An event that has kept failing this long after it was accepted becomes a dead letter,
    /// however the sink fared; default 72 h.
    pub max_age: Duration,
    /// At most this many deliveries per period; what is over waits in the queue, never
    /// dropped. `None`: as fast as the sink takes them.
    pub rate: Option<Rate>,
    /// A sink that has failed continuously this long is disabled: no more attempts until an
    /// operator enables it, its queue kept. `None` (the default): never.
    pub disable_after: Option<Duration>,
}

/// Sink-wide backoff is capped here unless a sink sets `max_backoff`: a receiver that comes
/// back is found within this long.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(72 * 3600);
/// http sinks keep this many requests in flight unless told otherwise.
pub const DEFAULT_HTTP_CONCURRENCY: usize = 8;

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
pub struct RouteConfig {
    /// `match.vendor`: `None` matches any vendor.
    pub vendors: Option<Vec<VendorName>>,
    /// `match.type`: a glob such as `message.*`; default `*`.
    pub event_type: String,
    /// `match.where`: payload conditions; `None` matches any payload.
    pub filter: Option<Filter>,
    /// Never empty.
    pub to: Vec<SinkName>,
}

/// Reads and checks the file at `path`, and the files it includes, with variables from the
/// process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Checks `text`, read from `path` (which names it in errors and anchors relative paths), and
/// the files its `server.include` names, read from disk.
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut problems = Problems::new(path, Locator::new(text));
    let empty = "the file is empty: expected `server` and `workspaces`";
    let Some((value, defaulted)) = document(text, empty, env, &mut problems) else {
        return Err(problems.into_error());
    };
    let mut raw = raw::read(value, &mut problems);
    let include = raw.server.as_mut().and_then(|server| server.include.take());
    let mut checker = validate::Checker::new(path, &defaulted, &mut problems);
    let server = checker.server(raw.server);
    let mut workspaces = checker.workspaces(raw.workspaces.unwrap_or_default());
    let mut default_secrets = checker.into_default_secrets();

    let workspaces_at = KeyPath::root().key("workspaces");
    // Where each workspace was first defined, to name both places of a second definition.
    let mut defined: BTreeMap<WorkspaceId, (PathBuf, usize)> = (workspaces.keys())
        .map(|id| {
            let line = problems.line(&workspaces_at.key(id.as_str()));
            (id.clone(), (path.to_owned(), line))
        })
        .collect();
    let includes = include.is_some();
    let included = include::files(include, path, &mut problems);
    let mut others = Vec::new();
    for file in &included {
        let mut file_problems = Problems::new(&file.path, Locator::new(&file.text));
        let empty = "the file is empty: expected `workspaces`";
        if let Some((value, defaulted)) = document(&file.text, empty, env, &mut file_problems) {
            let raw = raw::read_included(value, &mut file_problems).unwrap_or_default();
            let mut checker = validate::Checker::new(&file.path, &defaulted, &mut file_problems);
            let found = checker.workspaces(raw);
            default_secrets.extend(checker.into_default_secrets());
            for (id, workspace) in found {
                let at = workspaces_at.key(id.as_str());
                if let Some((first, line)) = defined.get(&id) {
                    let message = format!(
                        "workspace `{id}` is defined twice: first in {}:{line}",
                        first.display()
                    );
                    file_problems.add(&at, message);
                    continue;
                }
                defined.insert(id.clone(), (file.path.clone(), file_problems.line(&at)));
                workspaces.insert(id, workspace);
            }
        }
        others.push(file_problems);
    }
    if workspaces.is_empty() {
        let message = if !includes {
            "no workspaces: define at least one"
        } else {
            "no workspaces: define at least one here or in an included file"
        };
        problems.add(&workspaces_at, message);
    }

    let mut all = problems.into_sorted();
    for file_problems in others {
        all.extend(file_problems.into_sorted());
    }
    if !all.is_empty() {
        return Err(ConfigError::Invalid(all));
    }
    Ok(Config {
        path: path.to_owned(),
        included: included.into_iter().map(|file| file.path).collect(),
        server,
        workspaces,
        default_secrets,
    })
}

/// One file's YAML, merged (`<<: *defaults` lets workspaces share settings) and with its
/// variables expanded; with, by key path, the strings that used a default. `None` when the
/// file cannot be read as YAML at all (the problem is reported).
fn document(
    text: &str,
    empty: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<(Value, BTreeMap<String, Vec<String>>)> {
    // Refused before serde_yaml reads it, whose scanner is quadratic in the nesting depth.
    if let Some(line) = problems.too_deep() {
        let message = format!(
            "collections are nested more than {MAX_DEPTH} deep (a routes file needs 6 at most)"
        );
        problems.add_file(Some(line), message);
        return None;
    }
    let mut value: Value = match serde_yaml::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            problems.syntax(&error);
            return None;
        }
    };
    if let Err(error) = value.apply_merge() {
        problems.syntax(&error);
        return None;
    }
    if value.is_null() {
        problems.add_file(None, empty);
        return None;
    }
    let expanded = env::expand_tree(&mut value, env);
    for (at, message) in &expanded.problems {
        problems.add_settled(at, message.as_str());
    }
    Some((value, expanded.defaulted))
}

impl Config {
    /// `file:line: server.KEY`: where a `server` setting is, for a message about its value.
    pub fn server_key_at(&self, key: &str) -> String {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let at = KeyPath::root().key("server").key(key);
        match Locator::new(&text).line(&at) {
            Some(line) => format!("{}:{line}: {at}", self.path.display()),
            None => format!("{}: {at}", self.path.display()),
        }
    }

    /// Every vendor a workspace enables must have a loaded plugin.
    /// Every vendor whose plugin signs nothing (a definition's `signature: none`) must be bound
    /// with `signature: none` here, which asks for `allow_ips`: nothing else tells its deliveries
    /// apart from anyone's.
    pub fn check_unsigned(
        &self,
        signs_nothing: &dyn Fn(&VendorName) -> bool,
    ) -> Result<(), ConfigError> {
        let mut problems: Vec<Problem> = Vec::new();
        for (workspace, config) in &self.workspaces {
            for (vendor, _) in (config.vendors.iter())
                .filter(|(v, c)| signs_nothing(v) && c.signature != SignatureConfig::None)
            {
                let text = std::fs::read_to_string(&config.source).unwrap_or_default();
                let mut found = Problems::new(&config.source, Locator::new(&text));
                let at = KeyPath::root().key("workspaces").key(workspace.as_str());
                let message = format!(
                    "vendor `{vendor}`'s definition signs nothing (`signature: none`): set \
                     `signature: none` and `allow_ips` for it"
                );
                found.add(&at.key("vendors").key(vendor.as_str()), message);
                problems.extend(found.into_sorted());
            }
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(ConfigError::Invalid(problems)),
        }
    }

    pub fn check_vendors(
        &self,
        is_loaded: &dyn Fn(&VendorName) -> bool,
    ) -> Result<(), ConfigError> {
        // Each file's problems placed on its lines; a file gone since loading just loses them.
        let mut files: BTreeMap<&Path, Problems> = BTreeMap::new();
        for (workspace, config) in &self.workspaces {
            for vendor in config.vendors.keys().filter(|vendor| !is_loaded(vendor)) {
                let problems = files.entry(&config.source).or_insert_with(|| {
                    let text = std::fs::read_to_string(&config.source).unwrap_or_default();
                    Problems::new(&config.source, Locator::new(&text))
                });
                let at = KeyPath::root().key("workspaces").key(workspace.as_str());
                let message = format!("no loaded plugin provides vendor `{vendor}`");
                problems.add(&at.key("vendors").key(vendor.as_str()), message);
            }
        }
        if files.is_empty() {
            return Ok(());
        }
        // The main file first, then the included ones in the order they were read.
        let order = |path: &Path| self.included.iter().position(|p| p == path);
        let mut files: Vec<(&Path, Problems)> = files.into_iter().collect();
        files.sort_by_key(|(path, _)| order(path));
        let problems = files.into_iter().flat_map(|(_, p)| p.into_sorted());
        Err(ConfigError::Invalid(problems.collect()))
    }
}
