//! Routing: which of a workspace's sinks an event goes to. A route matches by vendor, by type
//! (a glob) and, with `where`, by what the event holds ([`Filter`]). Every matching route
//! contributes its sinks; a sink named by several matching routes still receives the event once.
//!
//! The envelope is parsed as JSON only for a route whose vendor and type match and that has a
//! `where`, and then once for all of them.

use serde_json::Value;
use wildmatch::WildMatch;

use crate::base::names::{SinkName, VendorName};
use crate::config::RouteConfig;
use crate::event::filter::Filter;

struct Route {
    vendors: Option<Vec<VendorName>>,
    event_type: WildMatch,
    filter: Option<Filter>,
    to: Vec<SinkName>,
}

/// A workspace's ordered routes, compiled once at start-up.
pub struct Router {
    routes: Vec<Route>,
}

/// What became of one route for one event: `switchyard route test`.
pub struct Trace<'a> {
    pub to: &'a [SinkName],
    /// `None`: matched; else why not.
    pub missed: Option<String>,
}

impl Router {
    pub fn new(routes: &[RouteConfig]) -> Router {
        Router {
            routes: routes
                .iter()
                .map(|r| Route {
                    vendors: r.vendors.clone(),
                    event_type: WildMatch::new(&r.event_type),
                    filter: r.filter.clone(),
                    to: r.to.clone(),
                })
                .collect(),
        }
    }

    /// The sinks for an event (`envelope`, its JSON), in the order routes first name them;
    /// empty = unrouted.
    pub fn sinks_for(
        &self,
        vendor: &VendorName,
        event_type: &str,
        envelope: &[u8],
    ) -> Vec<&SinkName> {
        let mut event = None;
        let mut sinks: Vec<&SinkName> = Vec::new();
        for route in &self.routes {
            if !route.selects(vendor, event_type) {
                continue;
            }
            if let Some(filter) = &route.filter {
                if !filter.matches(event.get_or_insert_with(|| parse(envelope))) {
                    continue;
                }
            }
            for sink in &route.to {
                if !sinks.contains(&sink) {
                    sinks.push(sink);
                }
            }
        }
        sinks
    }

    /// Each route in order, with whether the event matches it and, if not, why.
    pub fn explain(
        &self,
        vendor: &VendorName,
        event_type: &str,
        envelope: &[u8],
    ) -> Vec<Trace<'_>> {
        let event = parse(envelope);
        (self.routes.iter())
            .map(|route| {
                let missed = if !route.vendors.as_ref().is_none_or(|v| v.contains(vendor)) {
                    Some(format!("vendor is {vendor}, not one of the route's"))
                } else if !route.event_type.matches(event_type) {
                    Some(format!("type {event_type} does not match the route's"))
                } else {
                    route.filter.as_ref().and_then(|f| f.explain(&event))
                };
                Trace {
                    to: &route.to,
                    missed,
                }
            })
            .collect()
    }
}

impl Route {
    fn selects(&self, vendor: &VendorName, event_type: &str) -> bool {
        self.vendors.as_ref().is_none_or(|v| v.contains(vendor))
            && self.event_type.matches(event_type)
    }
}

/// An envelope switchyard wrote is JSON; anything else matches no condition.
fn parse(envelope: &[u8]) -> Value {
    serde_json::from_slice(envelope).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(vendors: Option<&[&str]>, event_type: &str, to: &[&str]) -> RouteConfig {
        RouteConfig {
            vendors: vendors.map(|v| v.iter().map(|s| VendorName::new(*s)).collect()),
            event_type: event_type.into(),
            filter: None,
            to: to.iter().map(|s| SinkName::new(*s)).collect(),
        }
    }

    fn names(sinks: Vec<&SinkName>) -> Vec<&str> {
        sinks.into_iter().map(SinkName::as_str).collect()
    }

    #[test]
    fn every_matching_route_contributes_each_sink_once() {
        let router = Router::new(&[
            route(
                Some(&["watsi", "wappcloud"]),
                "message.*",
                &["crm", "audit"],
            ),
            route(None, "*", &["audit"]),
        ]);
        let watsi = VendorName::new("watsi");
        let docssmith = VendorName::new("docssmith");
        assert_eq!(
            names(router.sinks_for(&watsi, "message.received", b"{}")),
            ["crm", "audit"]
        );
        assert_eq!(
            names(router.sinks_for(&watsi, "contact.updated", b"{}")),
            ["audit"]
        );
        assert_eq!(
            names(router.sinks_for(&docssmith, "message.created", b"{}")),
            ["audit"]
        );
    }

    #[test]
    fn no_match_is_unrouted() {
        let router = Router::new(&[route(None, "message.*", &["crm"])]);
        assert!(router
            .sinks_for(&VendorName::new("watsi"), "group.created", b"{}")
            .is_empty());
        assert!(router
            .sinks_for(&VendorName::new("watsi"), "messages", b"{}")
            .is_empty());
    }

    #[test]
    fn a_where_selects_by_payload_and_a_non_matching_event_reaches_no_sink() {
        let filtered = |to: &[&str], yaml: &str| RouteConfig {
            filter: Some(
                crate::event::filter::compile(&serde_yaml::from_str(yaml).unwrap()).unwrap(),
            ),
            ..route(None, "message.*", to)
        };
        let router = Router::new(&[
            filtered(
                &["support"],
                "{ data.status: { in: [failed, undelivered] } }",
            ),
            filtered(&["brazil"], "{ data.from: { prefix: \"+55\" } }"),
        ]);
        let watsi = VendorName::new("watsi");
        let failed_br = br#"{"data":{"status":"failed","from":"+5511"}}"#;
        let read_uk = br#"{"data":{"status":"read","from":"+4420"}}"#;
        assert_eq!(
            names(router.sinks_for(&watsi, "message.status", failed_br)),
            ["support", "brazil"]
        );
        assert!(router
            .sinks_for(&watsi, "message.status", read_uk)
            .is_empty());
        let traces = router.explain(&watsi, "message.status", read_uk);
        assert_eq!(
            traces[0].missed.as_deref(),
            Some("data.status is \"read\", not one of [\"failed\", \"undelivered\"]")
        );
        assert_eq!(
            traces[1].missed.as_deref(),
            Some("data.from is \"+4420\", does not start with \"+55\"")
        );
        let traces = router.explain(&watsi, "contact.updated", failed_br);
        assert!(traces[0]
            .missed
            .as_deref()
            .unwrap()
            .starts_with("type contact.updated"));
    }
}
