//! `switchyard vendor test`: one vendor definition loaded and proven as the server would, and
//! what it makes of a delivery: the envelope, or the exact reason the server would refuse it.

use std::time::SystemTime;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use switchyard::base::id::EventId;
use switchyard::base::names::{Secret, WorkspaceId};
use switchyard::event::dedupe::DedupeKey;
use switchyard::event::envelope::Envelope;
use switchyard::plugins::{definition, refusal_message, MapFailure, VendorPlugin};

use crate::args::VendorTestArgs;
use crate::failure::Failure;

/// The workspace the printed envelope is shown in.
const WORKSPACE: &str = "test";

pub fn test(args: VendorTestArgs) -> Result<(), Failure> {
    let file = args.file.display();
    if !definition::is_definition(&args.file) {
        return Err(Failure::Config(format!(
            "{file}: a vendor definition is a file named <vendor>{}",
            definition::FILE_SUFFIX
        )));
    }
    let plugin = VendorPlugin::load(&args.file)
        .map_err(|errors| Failure::Config(refusal_message(&errors)))?;
    println!(
        "{file}: ok: vendor `{}` {}, {} test vector(s) proven",
        plugin.vendor, plugin.version, plugin.test_vector_count
    );
    println!("  signature: {}", plugin.scheme_summary());
    println!("  dedupe: {}", plugin.dedupe_summary());
    let Some(body_path) = &args.body else {
        return Ok(());
    };
    let body = std::fs::read(body_path)
        .map_err(|e| format!("cannot read the body {}: {e}", body_path.display()))?;
    let headers = headers(&args.headers)?;
    let delivery_id = (plugin.delivery_id_header.as_ref())
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok());
    match (&plugin.scheme, &args.secret) {
        (Some(scheme), Some(secret)) => {
            let secrets = [Secret::new(secret)];
            let now = SystemTime::now();
            if let Err(e) =
                plugin.verify_with(Some(scheme), &headers, &body, delivery_id, &secrets, now)
            {
                return Err(refused(401, e.code(), &e.to_string()));
            }
            println!("signature: verified");
        }
        (Some(scheme), None) => println!(
            "signature: not checked (give --secret to check {})",
            scheme.header
        ),
        (None, _) => println!("signature: none (the vendor signs nothing)"),
    }
    let mapped = plugin.map_event(&headers, &body).map_err(|e| match e {
        MapFailure::InvalidPayload(why) => refused(400, "invalid_payload", &why),
        MapFailure::PluginFailed(why) => refused(500, "plugin_failed", &why),
    })?;
    let workspace = WorkspaceId::new(WORKSPACE);
    let (key, basis) = DedupeKey::derive(&workspace, &plugin.vendor, &mapped.identity);
    let envelope = Envelope::new(
        &EventId::generate(),
        &workspace,
        &plugin.vendor,
        &mapped,
        (&key, basis),
        SystemTime::now(),
    )
    .to_json();
    let shown: serde_json::Value =
        serde_json::from_slice(&envelope).map_err(|e| format!("the envelope is not JSON: {e}"))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&shown).unwrap_or_default()
    );
    Ok(())
}

/// What the server would answer, as this command's failure (exit 1).
fn refused(status: u16, code: &str, why: &str) -> Failure {
    Failure::Runtime(format!(
        "refused: the server would answer {status} {code}: {why}"
    ))
}

fn headers(pairs: &[String]) -> Result<HeaderMap, Failure> {
    let mut headers = HeaderMap::new();
    for pair in pairs {
        let parsed = pair.split_once(':').and_then(|(name, value)| {
            let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
            Some((name, HeaderValue::from_str(value.trim()).ok()?))
        });
        let (name, value) = parsed
            .ok_or_else(|| Failure::Config(format!("--header {pair:?}: expected `Name: value`")))?;
        headers.append(name, value);
    }
    Ok(headers)
}
