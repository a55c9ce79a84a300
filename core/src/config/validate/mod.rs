//! From the raw shapes to the typed configuration, collecting every problem on the way.
//!
//! A field with a problem is reported and replaced by its default, so checking goes on; the
//! caller discards the result whenever any problem was reported.

mod limits;
mod route;
mod scalar;
mod server;
mod sink;
mod telemetry;
mod vendor;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::error::Problems;
use super::locate::KeyPath;
use super::raw::RawWorkspace;
use super::{DefaultSecret, RouteConfig, WorkspaceConfig};
use crate::base::names::{SinkName, VendorName, WorkspaceId};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(72 * 60 * 60);

/// Checks the shapes read from one file. Relative paths resolve against the directory of that
/// file; every problem goes to that file's [`Problems`].
pub(crate) struct Checker<'a> {
    /// The file being checked.
    file: &'a Path,
    base: &'a Path,
    defaulted: &'a BTreeMap<String, Vec<String>>,
    problems: &'a mut Problems,
    default_secrets: Vec<DefaultSecret>,
}

impl<'a> Checker<'a> {
    /// `defaulted`: the strings of the file that used a `${VAR:-default}`, by key path.
    pub(crate) fn new(
        file: &'a Path,
        defaulted: &'a BTreeMap<String, Vec<String>>,
        problems: &'a mut Problems,
    ) -> Checker<'a> {
        Checker {
            file,
            base: file.parent().unwrap_or(Path::new("")),
            defaulted,
            problems,
            default_secrets: Vec::new(),
        }
    }

    /// The secrets checked so far that came from a variable's default.
    pub(crate) fn into_default_secrets(self) -> Vec<DefaultSecret> {
        self.default_secrets
    }
}

impl Checker<'_> {
    /// The file's workspaces. That there is at least one in the whole set is checked by the
    /// caller, which sees every file.
    pub(crate) fn workspaces(
        &mut self,
        raw: BTreeMap<String, RawWorkspace>,
    ) -> BTreeMap<WorkspaceId, WorkspaceConfig> {
        let at = KeyPath::root().key("workspaces");
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
        let limits = self.limits(&at.key("limits"), raw.limits);
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
        let routes: Vec<RouteConfig> = (raw.routes.unwrap_or_default().into_iter().enumerate())
            .map(|(i, raw)| self.route(&at.key("routes").index(i), raw, &enabled, &defined))
            .collect();
        self.sinks_per_event(&at.key("routes"), &routes);
        WorkspaceConfig {
            source: self.file.to_owned(),
            dedupe_window,
            limits,
            vendors,
            sinks,
            routes,
        }
    }
}
