//! `switchyard route test`: a body mapped through the vendor's plugin (its signature is not
//! checked) into the envelope the server would write, then each of the workspace's routes
//! tried on it: matched, or the first condition that failed; and the sinks it would reach.

use std::path::Path;
use std::time::SystemTime;

use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::HeaderMap;
use switchyard::base::id::EventId;
use switchyard::base::names::{VendorName, WorkspaceId};
use switchyard::event::dedupe::DedupeKey;
use switchyard::event::envelope::Envelope;
use switchyard::runtime::route::Router;

use crate::args::RouteTestArgs;
use crate::failure::Failure;
use crate::load::load;

pub fn test(args: &RouteTestArgs) -> Result<(), Failure> {
    let (config, plugins) = load(&args.config)?;
    let workspace = WorkspaceId::new(args.workspace.as_str());
    let vendor = VendorName::new(args.vendor.as_str());
    let ws = config.workspaces.get(&workspace).ok_or_else(|| {
        let defined: Vec<&str> = config.workspaces.keys().map(|w| w.as_str()).collect();
        Failure::Runtime(format!(
            "no workspace `{workspace}` in {} (it defines: {})",
            config.path.display(),
            defined.join(", ")
        ))
    })?;
    if !ws.vendors.contains_key(&vendor) {
        let enabled: Vec<&str> = ws.vendors.keys().map(|v| v.as_str()).collect();
        return Err(Failure::Runtime(format!(
            "workspace `{workspace}` does not enable vendor `{vendor}` (it enables: {})",
            enabled.join(", ")
        )));
    }
    // Present: `load` checked every enabled vendor has a plugin.
    let plugin = plugins
        .get(vendor.as_str())
        .ok_or_else(|| format!("no plugin for vendor `{vendor}`"))?;
    let headers = headers(&args.headers)?;
    let body = read(&args.file)?;
    let mapped = plugin
        .map_event(&headers, &body)
        .map_err(|e| Failure::Runtime(format!("the {vendor} plugin cannot map this body: {e}")))?;
    let (key, basis) = DedupeKey::derive(&workspace, &vendor, &mapped.identity);
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let envelope = Envelope::new(
        &EventId::generate(),
        &workspace,
        &vendor,
        &mapped,
        (&key, basis),
        SystemTime::now(),
    )
    .received_as(content_type, &body)
    .to_json();
    let event_type = &mapped.canonical_type;
    println!(
        "event: type {event_type} (vendor type {}), vendor event id {}",
        mapped.vendor_type,
        mapped.vendor_event_id.as_deref().unwrap_or("none")
    );
    let router = Router::new(&ws.routes);
    for (i, trace) in router
        .explain(&vendor, event_type, &envelope)
        .iter()
        .enumerate()
    {
        let to: Vec<&str> = trace.to.iter().map(|s| s.as_str()).collect();
        let outcome = match &trace.missed {
            None => "matched".to_owned(),
            Some(why) => format!("not matched: {why}"),
        };
        println!("routes[{i}] -> {}: {outcome}", to.join(", "));
    }
    let sinks = router.sinks_for(&vendor, event_type, &envelope);
    if sinks.is_empty() {
        println!("sinks: none (the event would be kept as unrouted)");
    } else {
        let sinks: Vec<&str> = sinks.iter().map(|s| s.as_str()).collect();
        println!("sinks: {}", sinks.join(", "));
    }
    Ok(())
}

/// `Name: value` pairs; `Content-Type: application/json` unless one is given.
fn headers(pairs: &[String]) -> Result<HeaderMap, Failure> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for pair in pairs {
        let invalid = || Failure::Runtime(format!("--header {pair:?}: expected `Name: value`"));
        let (name, value) = pair.split_once(':').ok_or_else(invalid)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| invalid())?;
        headers.insert(name, value);
    }
    Ok(headers)
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::Runtime(format!("cannot read body file {}: {e}", path.display())))
}
