//! Settings read from a routes file on their own, without loading the rest of it: the log
//! format, so logging is set up before loading reports anything, and what the operator commands
//! need to reach the server, so they work even when the file has problems elsewhere.

use std::net::SocketAddr;
use std::path::Path;

use serde_yaml::Value;

use super::env;
use super::locate::Locator;
use super::LogFormat;
use crate::base::names::Secret;

/// `server.log_format` of the file at `path`, read before anything else so that logging can be
/// set up first; `None` if the file or the key cannot be read (loading reports why).
pub fn log_format(path: &Path) -> Option<LogFormat> {
    let text = std::fs::read_to_string(path).ok()?;
    if Locator::new(&text).too_deep().is_some() {
        return None;
    }
    let value: Value = serde_yaml::from_str(&text).ok()?;
    let mut format = value.get("server")?.get("log_format")?.clone();
    env::expand_tree(&mut format, &|name| std::env::var(name).ok());
    format.as_str()?.parse().ok()
}

/// What the operator commands need of a routes file, read on its own so that they reach the
/// server even when the rest of the file has problems (`switchyard reload` lists them).
#[derive(Debug, Default)]
pub struct OperatorAccess {
    /// `server.admin_listen`; `None` when absent or unreadable.
    pub admin_listen: Option<SocketAddr>,
    /// `server.admin_token`; `None` when absent, empty, or naming a variable that is not set.
    pub admin_token: Option<Secret>,
}

/// `server.admin_listen` and `server.admin_token` of the file at `path`; the error says why the
/// file cannot be read at all.
pub fn operator_access(path: &Path) -> Result<OperatorAccess, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if Locator::new(&text).too_deep().is_some() {
        return Err(format!("{} is nested too deep", path.display()));
    }
    let value: Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let setting = |key: &str| {
        let mut setting = value.get("server")?.get(key)?.clone();
        let expanded = env::expand_tree(&mut setting, &|name| std::env::var(name).ok());
        (expanded.problems.is_empty()).then_some(())?;
        setting.as_str().map(str::to_owned)
    };
    Ok(OperatorAccess {
        admin_listen: setting("admin_listen").and_then(|text| text.parse().ok()),
        admin_token: (setting("admin_token").filter(|token| !token.is_empty())).map(Secret::new),
    })
}
