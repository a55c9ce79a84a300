//! Single values: durations, sizes, paths, addresses, header names.

use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use hyper::header::HeaderName;
use ipnet::IpNet;
use serde_yaml::Value;

use super::Checker;
use crate::config::locate::KeyPath;

const DURATION_HINT: &str = "expected a duration such as 72h or 30m";
/// 100 years: longer cannot be meant, and what is added to timestamps in milliseconds must not
/// overflow (18446744073709553s would wrap to about 1.4s).
const MAX_DURATION: Duration = Duration::from_secs(36525 * 24 * 3600);
const NAME_RULE: &str = "expected 1-64 characters of A-Z, a-z, 0-9, `_` and `-`";
const SIZE_HINT: &str = "expected a whole number of bytes such as 1048576";

impl Checker<'_> {
    pub(super) fn duration(
        &mut self,
        at: &KeyPath,
        raw: Option<Value>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw.filter(|raw| !raw.is_null()) else {
            return default;
        };
        let Some(text) = scalar_text(&raw) else {
            self.problems.add(at, DURATION_HINT);
            return default;
        };
        match humantime::parse_duration(text.trim()) {
            Ok(duration) if duration > MAX_DURATION => self.too_long(at, &text),
            Ok(duration) if !duration.is_zero() => return duration,
            Ok(_) => self.problems.add(at, "must be greater than zero"),
            Err(humantime::DurationError::NumberOverflow) => self.too_long(at, &text),
            Err(_) => {
                let message = format!("invalid duration {text:?}: {DURATION_HINT}");
                self.problems.add(at, message);
            }
        }
        default
    }

    fn too_long(&mut self, at: &KeyPath, text: &str) {
        let message = format!(
            "invalid duration {text:?}: longer than 100 years (36525d), the longest accepted"
        );
        self.problems.add(at, message);
    }

    /// A size in bytes, greater than 0.
    pub(super) fn bytes(&mut self, at: &KeyPath, raw: Option<Value>, default: usize) -> usize {
        let Some(raw) = raw.filter(|raw| !raw.is_null()) else {
            return default;
        };
        let Some(text) = scalar_text(&raw) else {
            self.problems.add(at, SIZE_HINT);
            return default;
        };
        match text.trim().parse::<usize>() {
            Ok(0) => self.problems.add(at, "must be greater than 0"),
            Ok(bytes) => return bytes,
            Err(_) => self
                .problems
                .add(at, format!("invalid size {text:?}: {SIZE_HINT}")),
        }
        default
    }

    /// `true` or `false`.
    pub(super) fn boolean(&mut self, at: &KeyPath, raw: Option<Value>, default: bool) -> bool {
        match raw {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                self.problems.add(at, "expected true or false");
                default
            }
        }
    }

    /// A whole number greater than 0; `None` when absent or reported.
    pub(super) fn count(&mut self, at: &KeyPath, raw: Option<Value>) -> Option<usize> {
        let raw = raw.filter(|raw| !raw.is_null())?;
        match scalar_text(&raw).and_then(|text| text.trim().parse::<usize>().ok()) {
            Some(n) if n > 0 => Some(n),
            _ => {
                self.problems
                    .add(at, "expected a whole number greater than 0");
                None
            }
        }
    }

    /// Deliveries in flight at once for one sink: 1 to 256, default 1.
    pub(super) fn concurrency(&mut self, at: &KeyPath, raw: Option<Value>) -> usize {
        let Some(raw) = raw.filter(|raw| !raw.is_null()) else {
            return 1;
        };
        match scalar_text(&raw).and_then(|text| text.trim().parse::<usize>().ok()) {
            Some(n @ 1..=256) => n,
            _ => {
                self.problems.add(
                    at,
                    "expected a whole number from 1 to 256 (deliveries in flight)",
                );
                1
            }
        }
    }

    /// A directory or file path, resolved; `None` when absent or reported empty.
    pub(super) fn path(&mut self, at: &KeyPath, raw: Option<String>) -> Option<PathBuf> {
        match raw {
            Some(text) if text.is_empty() => {
                self.problems.add(at, "must not be empty");
                None
            }
            Some(text) => Some(self.resolve(&text)),
            None => None,
        }
    }

    pub(super) fn resolve(&self, path: &str) -> PathBuf {
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

    pub(super) fn ip_net(&mut self, at: &KeyPath, text: &str) -> Option<IpNet> {
        if let Ok(net) = text.parse::<IpNet>() {
            if net.trunc() == net {
                return Some(net);
            }
            // `10.0.0.1/8` is most likely the network 10.0.0.0/8; it may be the one address.
            let message = format!(
                "{text:?} has host bits set: write {} for the network, or {} for the one address",
                net.trunc(),
                net.addr()
            );
            self.problems.add(at, message);
            return None;
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

    pub(super) fn header_name(&mut self, at: &KeyPath, text: &str) -> Option<String> {
        match HeaderName::from_bytes(text.as_bytes()) {
            Ok(name) => Some(name.as_str().to_owned()),
            Err(_) => {
                let message = format!(
                    "invalid header name {text:?}: expected an HTTP header name such as X-Signature"
                );
                self.problems.add(at, message);
                None
            }
        }
    }

    pub(super) fn socket_addr(
        &mut self,
        at: &KeyPath,
        raw: Option<String>,
        default: SocketAddr,
    ) -> SocketAddr {
        let Some(text) = raw else {
            return default;
        };
        text.parse().unwrap_or_else(|_| {
            let message = format!(
                "invalid listen address {text:?}: expected an IP address and port such as \
                 127.0.0.1:8080"
            );
            self.problems.add(at, message);
            default
        })
    }

    pub(super) fn name(&mut self, at: &KeyPath, kind: &str, name: &str, why: &str) {
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
}

/// A scalar as text: durations and sizes may be written bare (`3600`) or come from a variable.
fn scalar_text(raw: &Value) -> Option<String> {
    match raw {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}
