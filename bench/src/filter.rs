//! `map`'s routing figures: a route's `where` evaluated on Watsi's ~1 KB `message.received`
//! envelope, as the server compiles it from routes.yaml (`config::parse`) and runs it; the JSON
//! parse of the envelope a workspace with filters pays once per event; and `Router::sinks_for`
//! over four routes, two with `where`, parse included: what routing costs an event.

use std::hint::black_box;
use std::path::Path;
use std::time::SystemTime;

use switchyard::base::id::EventId;
use switchyard::base::names::{VendorName, WorkspaceId};
use switchyard::config;
use switchyard::event::dedupe::DedupeKey;
use switchyard::event::envelope::Envelope;
use switchyard::event::filter::Filter;
use switchyard::plugins::VendorPlugin;
use switchyard::runtime::route::Router;

use crate::payload::Template;
use crate::stats::median;
use crate::timing::{rounds, spread, Params};
use crate::{BenchResult, Problems};

/// Four routes as a shared service's teams would write them; the first `where` is measured
/// alone: four conditions, every one of which holds, so each is evaluated.
const ROUTES: &str = r#"
workspaces:
  bench:
    vendors: { watsi: { secrets: [ "bench-filter-secret-0123" ] } }
    sinks: { support: { type: stdout }, brazil: { type: stdout }, audit: { type: stdout } }
    routes:
      - match:
          type: "message.*"
          where:
            data.from: { prefix: "+1555" }
            data.contact.name: { in: [Ada Lovelace, Grace Hopper] }
            data.media: { exists: true }
            occurred_at: { gte: "2024-01-01T00:00:00Z" }
        to: [support]
      - match: { type: "message.*", where: { any: [ { data.from: { prefix: "+55" } }, { data.to: { prefix: "+55" } } ] } }
        to: [brazil]
      - match: { vendor: watsi, type: "message.*" }
        to: [audit]
      - match: { type: "*" }
        to: [audit]
"#;

pub fn run(
    plugin: &VendorPlugin,
    template: &Template,
    p: &Params,
    problems: &mut Problems,
) -> BenchResult<()> {
    let config = config::parse(ROUTES, Path::new("bench-routes.yaml"), &|_| None)
        .map_err(|e| format!("the bench's routes do not load: {e}"))?;
    let workspace = WorkspaceId::new("bench");
    let routes = &config.workspaces[&workspace].routes;
    let filter: &Filter = routes[0]
        .filter
        .as_ref()
        .ok_or("the first route has a where")?;
    let router = Router::new(routes);

    let body = template.body(&crate::payload::event_id(1, 1, 1));
    let mapped = plugin
        .map_event(&hyper::HeaderMap::new(), &body)
        .map_err(|e| format!("map_event refused the benchmark payload: {e}"))?;
    let vendor = VendorName::new("watsi");
    let (key, basis) = DedupeKey::derive(&workspace, &vendor, &mapped.identity);
    let id = EventId::generate();
    let envelope = Envelope::new(
        &id,
        &workspace,
        &vendor,
        &mapped,
        (&key, basis),
        SystemTime::now(),
    )
    .to_json();
    let event: serde_json::Value = serde_json::from_slice(&envelope)?;
    if !filter.matches(&event) {
        return Err(format!(
            "the measured where does not match: {:?}",
            filter.explain(&event)
        )
        .into());
    }
    let sinks = router.sinks_for(&vendor, &mapped.canonical_type, &envelope);
    if sinks.len() != 2 {
        return Err(format!("expected support and audit, routed to {sinks:?}").into());
    }

    let eval = rounds(p, || {
        black_box(filter.matches(black_box(&event)));
    });
    let parse = rounds(p, || {
        let _ = black_box(serde_json::from_slice::<serde_json::Value>(black_box(
            &envelope,
        )));
    });
    let route = rounds(p, || {
        black_box(router.sinks_for(&vendor, &mapped.canonical_type, black_box(&envelope)));
    });
    println!(
        "routing a {} B watsi envelope: one where (4 conditions) {} ns/route; the envelope's JSON parse, once per event with filters {} ns; Router::sinks_for, 4 routes of which 2 with where, parse included {} ns/event",
        envelope.len(),
        spread(&eval),
        spread(&parse),
        spread(&route)
    );
    if median(&eval) >= 1000.0 {
        problems.add(
            "map",
            format!(
                "a route's where takes {:.0} ns; the issue asks well under a microsecond",
                median(&eval)
            ),
        );
    }
    Ok(())
}
