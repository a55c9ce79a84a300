//! From the raw shapes to the typed configuration, collecting every problem on the way.
//!
//! A field with a problem is reported and replaced by its default, so checking goes on; the
//! caller discards the result whenever any problem was reported.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use hyper::header::HeaderName;
use hyper::Uri;
use ipnet::IpNet;
use serde_yaml::Value;

use super::error::Problems;
use super::locate::KeyPath;
use super::raw::{RawConfig, RawRoute, RawServer, RawSink, RawVendor, RawWorkspace};
use super::{DefaultSecret, RouteConfig, ServerConfig, SinkConfig, VendorConfig, WorkspaceConfig};
use crate::names::{Secret, SinkName, VendorName, WorkspaceId};

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
const DEFAULT_MAX_BODY_BYTES: usize = 1_048_576;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(72 * 60 * 60);
const DURATION_HINT: &str = "expected a duration such as 72h or 30m";
const SIZE_HINT: &str = "expected a whole number of bytes such as 1048576";
const NAME_RULE: &str = "expected 1-64 characters of A-Z, a-z, 0-9, `_` and `-`";

pub(crate) struct Built {
    pub(crate) server: ServerConfig,
    pub(crate) workspaces: BTreeMap<WorkspaceId, WorkspaceConfig>,
    pub(crate) default_secrets: Vec<DefaultSecret>,
}

/// Checks `raw`; relative paths resolve against `base`, the directory of the file.
pub(crate) fn build(
    raw: RawConfig,
    base: &Path,
    defaulted: &BTreeMap<String, Vec<String>>,
    problems: &mut Problems,
) -> Built {
    let mut checker = Checker {
        base,
        defaulted,
        problems,
        default_secrets: Vec::new(),
    };
    let server = checker.server(raw.server);
    let workspaces = checker.workspaces(raw.workspaces.unwrap_or_default());
    Built {
        server,
        workspaces,
        default_secrets: checker.default_secrets,
    }
}

struct Checker<'a> {
    base: &'a Path,
    defaulted: &'a BTreeMap<String, Vec<String>>,
    problems: &'a mut Problems,
    default_secrets: Vec<DefaultSecret>,
}

impl Checker<'_> {
    fn server(&mut self, raw: Option<RawServer>) -> ServerConfig {
        let at = KeyPath::root().key("server");
        let raw = raw.unwrap_or_default();
        let listen = match raw.listen {
            None => DEFAULT_LISTEN,
            Some(text) => text.parse().unwrap_or_else(|_| {
                let message = format!(
                    "invalid listen address {text:?}: expected an IP address and port such as \
                     127.0.0.1:8080"
                );
                self.problems.add(&at.key("listen"), message);
                DEFAULT_LISTEN
            }),
        };
        let data_dir = self.path(&at.key("data_dir"), raw.data_dir);
        let plugins_dir = self.path(&at.key("plugins_dir"), raw.plugins_dir);
        let admin_token = match raw.admin_token {
            // Empty, as from `${SWITCHYARD_ADMIN_TOKEN:-}`, means no token is configured.
            None | Some(Value::Null) => None,
            Some(Value::String(token)) if token.is_empty() => None,
            Some(token) => self.secret(&at.key("admin_token"), &token),
        };
        ServerConfig {
            listen,
            data_dir: data_dir.unwrap_or_else(|| self.resolve("data")),
            max_body_bytes: self.max_body_bytes(&at.key("max_body_bytes"), raw.max_body_bytes),
            plugins_dir,
            admin_token,
            header_read_timeout: self.duration(
                &at.key("header_read_timeout"),
                raw.header_read_timeout,
                DEFAULT_TIMEOUT,
            ),
        }
    }

    fn workspaces(
        &mut self,
        raw: BTreeMap<String, RawWorkspace>,
    ) -> BTreeMap<WorkspaceId, WorkspaceConfig> {
        let at = KeyPath::root().key("workspaces");
        if raw.is_empty() {
            self.problems.add(&at, "no workspaces: define at least one");
        }
        let mut workspaces = BTreeMap::new();
        for (name, raw) in raw {
            let at = at.key(&name);
            self.name(
                &at,
                "workspace",
                &name,
                " (it is a path segment of the hook URL)",
            );
            let workspace = self.workspace(&at, raw);
            workspaces.insert(WorkspaceId::new(name), workspace);
        }
        workspaces
    }

    fn workspace(&mut self, at: &KeyPath, raw: RawWorkspace) -> WorkspaceConfig {
        let dedupe_window = self.duration(
            &at.key("dedupe_window"),
            raw.dedupe_window,
            DEFAULT_DEDUPE_WINDOW,
        );
        let raw_vendors = raw.vendors.unwrap_or_default();
        if raw_vendors.is_empty() {
            self.problems.add(
                &at.key("vendors"),
                "no vendors: a workspace must enable at least one",
            );
        }
        let raw_sinks = raw.sinks.unwrap_or_default();
        // Routes are checked against every name written, valid or not, so one bad name is
        // reported once rather than again at each route using it.
        let enabled: Vec<String> = raw_vendors.keys().cloned().collect();
        let defined: Vec<String> = raw_sinks.keys().cloned().collect();

        let mut vendors = BTreeMap::new();
        for (name, raw) in raw_vendors {
            let at = at.key("vendors").key(&name);
            self.name(
                &at,
                "vendor",
                &name,
                " (it is a path segment of the hook URL)",
            );
            let vendor = self.vendor(&at, raw);
            vendors.insert(VendorName::new(name), vendor);
        }
        let mut sinks = BTreeMap::new();
        for (name, raw) in raw_sinks {
            let at = at.key("sinks").key(&name);
            self.name(&at, "sink", &name, "");
            let sink = self.sink(&at, raw);
            sinks.insert(SinkName::new(name), sink);
        }
        let routes = (raw.routes.unwrap_or_default().into_iter().enumerate())
            .map(|(i, raw)| self.route(&at.key("routes").index(i), raw, &enabled, &defined))
            .collect();
        WorkspaceConfig {
            dedupe_window,
            vendors,
            sinks,
            routes,
        }
    }

    fn vendor(&mut self, at: &KeyPath, raw: RawVendor) -> VendorConfig {
        let secrets = self.secrets(&at.key("secrets"), raw.secrets);
        let signature_header =
            raw.signature_header.and_then(|header| {
                match HeaderName::from_bytes(header.as_bytes()) {
                    Ok(name) => Some(name.as_str().to_owned()),
                    Err(_) => {
                        let message = format!(
                            "invalid header name {header:?}: expected an HTTP header name such as \
                         X-Signature"
                        );
                        self.problems.add(&at.key("signature_header"), message);
                        None
                    }
                }
            });
        let allow_ips = (raw.allow_ips.unwrap_or_default().iter().enumerate())
            .filter_map(|(i, text)| self.ip_net(&at.key("allow_ips").index(i), text))
            .collect();
        VendorConfig {
            secrets,
            signature_header,
            allow_ips,
        }
    }

    fn secrets(&mut self, at: &KeyPath, raw: Option<Value>) -> Vec<Secret> {
        const EXAMPLE: &str = "such as secrets: [\"${ACME_WATSI_SECRET}\"]";
        match raw {
            Some(Value::Sequence(items)) if !items.is_empty() => (items.iter().enumerate())
                .filter_map(|(i, item)| self.secret(&at.index(i), item))
                .collect(),
            None | Some(Value::Null | Value::Sequence(_)) => {
                self.problems
                    .add(at, format!("at least one secret is required, {EXAMPLE}"));
                Vec::new()
            }
            Some(_) => {
                self.problems
                    .add(at, format!("expected a list of secrets, {EXAMPLE}"));
                Vec::new()
            }
        }
    }

    /// A secret: a non-empty string. Messages say what is wrong, never what was written.
    fn secret(&mut self, at: &KeyPath, raw: &Value) -> Option<Secret> {
        match raw {
            Value::String(text) if !text.is_empty() => {
                let key = at.to_string();
                for var in self.defaulted.get(&key).into_iter().flatten() {
                    let secret = DefaultSecret {
                        key: key.clone(),
                        var: var.clone(),
                    };
                    self.default_secrets.push(secret);
                }
                Some(Secret::new(text))
            }
            Value::String(_) | Value::Null => {
                self.problems.add(at, "the secret is empty");
                None
            }
            _ => {
                self.problems.add(
                    at,
                    "expected a string: quote the secret so YAML keeps it as written",
                );
                None
            }
        }
    }

    fn ip_net(&mut self, at: &KeyPath, text: &str) -> Option<IpNet> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Some(net.trunc());
        }
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Some(IpNet::from(addr));
        }
        let message = format!(
            "invalid address or CIDR {text:?}: expected an address or network such as \
             203.0.113.0/24 or 2001:db8::1"
        );
        self.problems.add(at, message);
        None
    }

    fn sink(&mut self, at: &KeyPath, raw: RawSink) -> SinkConfig {
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
            "stdout" => SinkConfig::Stdout,
            "file" => match self.path(&at.key("path"), raw.path) {
                Some(path) => SinkConfig::File { path },
                None => {
                    self.problems
                        .add(&at.key("path"), "missing: a file sink needs a `path`");
                    SinkConfig::Stdout
                }
            },
            "http" => SinkConfig::Http {
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
                SinkConfig::Stdout
            }
            other => {
                let message = format!("unknown sink type {other:?}: expected stdout, file or http");
                self.problems.add(&at.key("type"), message);
                SinkConfig::Stdout
            }
        }
    }

    /// An absolute http(s) URL. It is not quoted back: a URL may carry credentials.
    fn url(&mut self, at: &KeyPath, raw: Option<String>) -> Uri {
        let Some(text) = raw else {
            self.problems.add(at, "missing: an http sink needs a `url`");
            return Uri::default();
        };
        let uri = text.parse::<Uri>().ok();
        match uri
            .as_ref()
            .and_then(|uri| uri.scheme_str().map(|s| (uri, s)))
        {
            Some((uri, "http" | "https")) if uri.host().is_some_and(|h| !h.is_empty()) => {
                return uri.clone();
            }
            Some((_, scheme @ ("http" | "https"))) => {
                self.problems
                    .add(at, format!("invalid URL: a {scheme} URL needs a host"));
            }
            Some((_, scheme)) => {
                let message = format!("unsupported URL scheme `{scheme}`: expected http or https");
                self.problems.add(at, message);
            }
            None => self.problems.add(
                at,
                "invalid URL: expected an absolute http:// or https:// URL such as \
                 https://crm.internal/events",
            ),
        }
        Uri::default()
    }

    fn route(
        &mut self,
        at: &KeyPath,
        raw: RawRoute,
        enabled: &[String],
        defined: &[String],
    ) -> RouteConfig {
        let (vendor, event_type) = raw
            .matcher
            .map_or((None, None), |m| (m.vendor, m.event_type));
        let vendors = match vendor {
            None | Some(Value::Null) => None,
            Some(raw) => {
                let at = at.key("match").key("vendor");
                let names = self.names(&at, raw, "a vendor name", "omit `vendor` to match any");
                for (item_at, name) in &names {
                    if !enabled.contains(name) {
                        let message = format!(
                            "vendor `{name}` is not enabled in this workspace (it enables: {})",
                            listing(enabled)
                        );
                        self.problems.add(item_at, message);
                    }
                }
                Some(
                    names
                        .into_iter()
                        .map(|(_, name)| VendorName::new(name))
                        .collect(),
                )
            }
        };
        let event_type = match event_type {
            None => "*".to_owned(),
            Some(glob) if glob.trim().is_empty() => {
                let message = "empty type pattern: expected a glob such as \"message.*\" or \"*\"";
                self.problems.add(&at.key("match").key("type"), message);
                "*".to_owned()
            }
            Some(glob) => glob,
        };
        let at = at.key("to");
        let names = match raw.to {
            None | Some(Value::Null) => {
                self.problems
                    .add(&at, "missing: a route needs `to`, the sinks it delivers to");
                Vec::new()
            }
            Some(raw) => self.names(&at, raw, "a sink name", "a route needs at least one sink"),
        };
        let mut seen = BTreeSet::new();
        for (item_at, name) in &names {
            if !defined.contains(name) {
                let message = format!(
                    "unknown sink `{name}` (this workspace defines: {})",
                    listing(defined)
                );
                self.problems.add(item_at, message);
            } else if !seen.insert(name.as_str()) {
                self.problems
                    .add(item_at, format!("sink `{name}` is listed twice"));
            }
        }
        let to = names
            .iter()
            .map(|(_, name)| SinkName::new(name.as_str()))
            .collect();
        RouteConfig {
            vendors,
            event_type,
            to,
        }
    }

    /// One name or a non-empty list of names, each with its own key path.
    fn names(
        &mut self,
        at: &KeyPath,
        raw: Value,
        what: &str,
        if_empty: &str,
    ) -> Vec<(KeyPath, String)> {
        match raw {
            Value::String(name) => vec![(at.clone(), name)],
            Value::Sequence(items) if items.is_empty() => {
                self.problems.add(at, format!("empty list: {if_empty}"));
                Vec::new()
            }
            Value::Sequence(items) => (items.into_iter().enumerate())
                .filter_map(|(i, item)| match item {
                    Value::String(name) => Some((at.index(i), name)),
                    _ => {
                        self.problems.add(&at.index(i), format!("expected {what}"));
                        None
                    }
                })
                .collect(),
            _ => {
                self.problems
                    .add(at, format!("expected {what} or a list of them"));
                Vec::new()
            }
        }
    }

    fn name(&mut self, at: &KeyPath, kind: &str, name: &str, why: &str) {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            self.problems.add(
                at,
                format!("invalid {kind} name {name:?}: {NAME_RULE}{why}"),
            );
        }
    }

    fn duration(&mut self, at: &KeyPath, raw: Option<Value>, default: Duration) -> Duration {
        let Some(raw) = raw.filter(|raw| !raw.is_null()) else {
            return default;
        };
        let Some(text) = scalar_text(&raw) else {
            self.problems.add(at, DURATION_HINT);
            return default;
        };
        match humantime::parse_duration(text.trim()) {
            Ok(duration) if !duration.is_zero() => return duration,
            Ok(_) => self.problems.add(at, "must be greater than zero"),
            Err(_) => {
                let message = format!("invalid duration {text:?}: {DURATION_HINT}");
                self.problems.add(at, message);
            }
        }
        default
    }

    fn max_body_bytes(&mut self, at: &KeyPath, raw: Option<Value>) -> usize {
        let Some(raw) = raw.filter(|raw| !raw.is_null()) else {
            return DEFAULT_MAX_BODY_BYTES;
        };
        let Some(text) = scalar_text(&raw) else {
            self.problems.add(at, SIZE_HINT);
            return DEFAULT_MAX_BODY_BYTES;
        };
        match text.trim().parse::<usize>() {
            Ok(0) => self.problems.add(at, "must be greater than 0"),
            Ok(bytes) => return bytes,
            Err(_) => self
                .problems
                .add(at, format!("invalid size {text:?}: {SIZE_HINT}")),
        }
        DEFAULT_MAX_BODY_BYTES
    }

    /// A directory or file path, resolved; `None` when absent or reported empty.
    fn path(&mut self, at: &KeyPath, raw: Option<String>) -> Option<PathBuf> {
        match raw {
            Some(text) if text.is_empty() => {
                self.problems.add(at, "must not be empty");
                None
            }
            Some(text) => Some(self.resolve(&text)),
            None => None,
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            return path.to_owned();
        }
        // Drop `./` so `./data` reads as `<dir>/data` in logs.
        let relative: PathBuf = path
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        if relative.as_os_str().is_empty() {
            self.base.to_owned()
        } else {
            self.base.join(relative)
        }
    }
}

/// A scalar as text: durations and sizes may be written bare (`3600`) or come from a variable.
fn scalar_text(raw: &Value) -> Option<String> {
    match raw {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn listing(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
