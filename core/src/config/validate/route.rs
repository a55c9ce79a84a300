//! Routes: which events go to which sinks.

use std::collections::BTreeSet;

use serde_yaml::Value;

use super::Checker;
use crate::base::names::{SinkName, VendorName};
use crate::config::locate::KeyPath;
use crate::config::raw::RawRoute;
use crate::config::RouteConfig;
use crate::event::filter::{self, Filter, ProblemStep};
use crate::store::MAX_QUEUES_PER_EVENT;

impl Checker<'_> {
    /// `enabled` and `defined` are the workspace's vendor and sink names.
    pub(super) fn route(
        &mut self,
        at: &KeyPath,
        raw: RawRoute,
        enabled: &[String],
        defined: &[String],
    ) -> RouteConfig {
        let (vendor, event_type, filter) = raw
            .matcher
            .map_or((None, None, None), |m| (m.vendor, m.event_type, m.filter));
        let vendors = vendor
            .filter(|vendor| !vendor.is_null())
            .map(|vendor| self.route_vendors(&at.key("match").key("vendor"), vendor, enabled));
        let event_type = match event_type {
            None => "*".to_owned(),
            Some(glob) if glob.trim().is_empty() => {
                let message = "empty type pattern: expected a glob such as \"message.*\" or \"*\"";
                self.problems.add(&at.key("match").key("type"), message);
                "*".to_owned()
            }
            Some(glob) => glob,
        };
        let filter = filter.and_then(|raw| self.filter(&at.key("match").key("where"), &raw));
        let to = self.route_sinks(&at.key("to"), raw.to, defined);
        RouteConfig {
            vendors,
            event_type,
            filter,
            to,
        }
    }

    /// `match.where`, compiled; each problem at its own key below `where`.
    fn filter(&mut self, at: &KeyPath, raw: &Value) -> Option<Filter> {
        match filter::compile(raw) {
            Ok(filter) => Some(filter),
            Err(problems) => {
                for problem in problems {
                    let key = problem.at.iter().fold(at.clone(), |key, step| match step {
                        ProblemStep::Key(name) => key.key(name),
                        ProblemStep::Index(i) => key.index(*i),
                    });
                    self.problems.add(&key, problem.message);
                }
                None
            }
        }
    }

    /// An event goes to every sink its matching routes name, and the store keeps at most
    /// [`MAX_QUEUES_PER_EVENT`] per event: the routes together may name no more (counted over
    /// all of them, since which types their patterns share cannot be known in advance).
    pub(super) fn sinks_per_event(&mut self, at: &KeyPath, routes: &[RouteConfig]) {
        let mut named = BTreeSet::new();
        for (i, route) in routes.iter().enumerate() {
            named.extend(route.to.iter().map(SinkName::as_str));
            if named.len() > MAX_QUEUES_PER_EVENT {
                let message = format!(
                    "the routes up to this one name {} sinks; one event can go to at most \
                     {MAX_QUEUES_PER_EVENT} (the store counts an event's sinks in one byte): \
                     split the workspace",
                    named.len()
                );
                self.problems.add(&at.index(i).key("to"), message);
                return;
            }
        }
    }

    fn route_vendors(&mut self, at: &KeyPath, raw: Value, enabled: &[String]) -> Vec<VendorName> {
        let names = self.names(at, raw, "a vendor name", "omit `vendor` to match any");
        for (item_at, name) in &names {
            if !enabled.contains(name) {
                let message = format!(
                    "vendor `{name}` is not enabled in this workspace (it enables: {})",
                    listing(enabled)
                );
                self.problems.add(item_at, message);
            }
        }
        names
            .into_iter()
            .map(|(_, name)| VendorName::new(name))
            .collect()
    }

    fn route_sinks(
        &mut self,
        at: &KeyPath,
        raw: Option<Value>,
        defined: &[String],
    ) -> Vec<SinkName> {
        let names = match raw {
            None | Some(Value::Null) => {
                self.problems
                    .add(at, "missing: a route needs `to`, the sinks it delivers to");
                Vec::new()
            }
            Some(raw) => self.names(at, raw, "a sink name", "a route needs at least one sink"),
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
        names
            .into_iter()
            .map(|(_, name)| SinkName::new(name))
            .collect()
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
}

fn listing(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
