//! Routing: which of a workspace's sinks an event goes to. Every matching route contributes its
//! sinks; a sink named by several matching routes still receives the event once.

use wildmatch::WildMatch;

use crate::base::names::{SinkName, VendorName};
use crate::config::RouteConfig;

struct Route {
    vendors: Option<Vec<VendorName>>,
    event_type: WildMatch,
    to: Vec<SinkName>,
}

/// A workspace's ordered routes, compiled once at start-up.
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: &[RouteConfig]) -> Router {
        Router {
            routes: routes
                .iter()
                .map(|r| Route {
                    vendors: r.vendors.clone(),
                    event_type: WildMatch::new(&r.event_type),
                    to: r.to.clone(),
                })
                .collect(),
        }
    }

    /// The sinks for an event, in the order routes first name them; empty = unrouted.
    pub fn sinks_for(&self, vendor: &VendorName, event_type: &str) -> Vec<&SinkName> {
        let mut sinks: Vec<&SinkName> = Vec::new();
        let matching = self.routes.iter().filter(|r| {
            r.vendors.as_ref().is_none_or(|v| v.contains(vendor))
                && r.event_type.matches(event_type)
        });
        for route in matching {
            for sink in &route.to {
                if !sinks.contains(&sink) {
                    sinks.push(sink);
                }
            }
        }
        sinks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(vendors: Option<&[&str]>, event_type: &str, to: &[&str]) -> RouteConfig {
        RouteConfig {
            vendors: vendors.map(|v| v.iter().map(|s| VendorName::new(*s)).collect()),
            event_type: event_type.into(),
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
            names(router.sinks_for(&watsi, "message.received")),
            ["crm", "audit"]
        );
        assert_eq!(
            names(router.sinks_for(&watsi, "contact.updated")),
            ["audit"]
        );
        assert_eq!(
            names(router.sinks_for(&docssmith, "message.created")),
            ["audit"]
        );
    }

    #[test]
    fn no_match_is_unrouted() {
        let router = Router::new(&[route(None, "message.*", &["crm"])]);
        assert!(router
            .sinks_for(&VendorName::new("watsi"), "group.created")
            .is_empty());
        assert!(router
            .sinks_for(&VendorName::new("watsi"), "messages")
            .is_empty());
    }
}
