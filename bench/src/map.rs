//! `map`: the five real plugins loaded from target/release with the server's own loader, each
//! given its vendor's ~1 KB delivery: `VendorPlugin::map_event` through the C ABI (the header
//! pairs lent, the plugin's JSON parse and canonical mapping, its output written back through the
//! writer callback, and the core's parse of that output), then `VendorPlugin::verify_with`, the
//! constant-time HMAC-SHA256 check the server runs first, with one secret. Then the same five as
//! vendor definitions (`plugins/definitions/`), the same calls through the definition
//! interpreter: verify + map through a definition should take at most 1.5x the library's time.
//! Then what routing an event with payload filters costs ([`crate::filter`]).

use std::hint::black_box;
use std::time::SystemTime;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use switchyard::base::names::Secret;
use switchyard::plugins::{Plugins, VendorPlugin};

use crate::payload::{self, Template};
use crate::stats::median;
use crate::timing::{rounds, spread, Params};
use crate::{BenchResult, Env, Problems};

const SECRET: &str = "bench-map-secret";

/// The seed vendors' definitions, as the repository ships them.
const DEFINITIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/definitions");

/// verify + map through a definition, over the library's, above which the figure is a problem.
const MAX_DEFINITION_RATIO: f64 = 1.5;

/// One row of the table.
struct Row {
    vendor: &'static str,
    form: &'static str,
    body_len: usize,
    mapped_to: String,
    map_rounds: Vec<f64>,
    verify_rounds: Vec<f64>,
}

pub fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let p = Params::new(env.quick);
    println!("== map: VendorPlugin::map_event and verify_with on a 1 KB delivery, library and definition ==");
    println!(
        "settings: plugins loaded with Plugins::load_dir({}) and the definitions with Plugins::load_dir({DEFINITIONS}); per vendor and operation {} rounds x {} calls after {} warm-up calls, one thread; figure = median of the rounds' ns/call (min-max across rounds in brackets); verify = the plugin's scheme, one secret, a valid signature",
        env.profile_dir.display(),
        p.rounds,
        p.iterations,
        p.warmup
    );
    let load = |dir: &std::path::Path| {
        Plugins::load_dir(dir).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            format!(
                "the plugins in {} did not load:\n  {}",
                dir.display(),
                lines.join("\n  ")
            )
        })
    };
    let libraries = load(&env.profile_dir)?;
    let definitions = load(std::path::Path::new(DEFINITIONS))?;
    let mut rows = Vec::new();
    for template in payload::templates() {
        for (form, plugins) in [("library", &libraries), ("definition", &definitions)] {
            let Some(plugin) = plugins.get(template.vendor) else {
                problems.add(
                    "map",
                    format!("no {form} for vendor `{}` was loaded", template.vendor),
                );
                continue;
            };
            match measure(plugin, &template, &p) {
                Ok(row) => rows.push(Row { form, ..row }),
                Err(e) => problems.add("map", format!("{} ({form}): {e}", template.vendor)),
            }
        }
    }
    println!(
        "{:<10} {:<10} {:>6}  {:<17} {:>26}  {:>26}  {:>12}",
        "vendor", "form", "body", "mapped to", "map_event ns/call", "verify ns/call", "vs library"
    );
    let total = |row: &Row| median(&row.map_rounds) + median(&row.verify_rounds);
    for row in &rows {
        let library = rows
            .iter()
            .find(|r| r.vendor == row.vendor && r.form == "library");
        let ratio = library.map_or(String::new(), |l| format!("{:.2}x", total(row) / total(l)));
        println!(
            "{:<10} {:<10} {:>4} B  {:<17} {:>26}  {:>26}  {:>12}",
            row.vendor,
            row.form,
            row.body_len,
            row.mapped_to,
            spread(&row.map_rounds),
            spread(&row.verify_rounds),
            ratio
        );
    }
    let watsi = payload::templates()
        .into_iter()
        .find(|t| t.vendor == "watsi");
    match (watsi, libraries.get("watsi")) {
        (Some(template), Some(plugin)) => {
            if let Err(e) = crate::filter::run(plugin, &template, &p, problems) {
                problems.add("map", format!("routing with filters: {e}"));
            }
        }
        _ => problems.add(
            "map",
            "no watsi plugin or payload for the routing figures".into(),
        ),
    }
    for row in &rows {
        let ns = median(&row.map_rounds);
        if ns > 100_000.0 {
            problems.add(
                "map",
                format!(
                    "{} ({}): map_event takes {:.0} µs on 1 KB; the issue asks for microseconds",
                    row.vendor,
                    row.form,
                    ns / 1e3
                ),
            );
        }
        let library = rows
            .iter()
            .find(|r| r.vendor == row.vendor && r.form == "library");
        if let Some(library) = library.filter(|_| row.form == "definition") {
            let ratio = total(row) / total(library);
            if ratio > MAX_DEFINITION_RATIO {
                problems.add(
                    "map",
                    format!(
                        "{}: verify + map through the definition takes {ratio:.2}x the library's \
                         time; the target is at most {MAX_DEFINITION_RATIO}x",
                        row.vendor
                    ),
                );
            }
        }
    }
    Ok(())
}

fn measure(plugin: &VendorPlugin, template: &Template, p: &Params) -> BenchResult<Row> {
    let body = template.body(&payload::event_id(1, 1, 1));
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in template.headers {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    headers.insert(
        HeaderName::from_bytes(template.signature_header.as_bytes())?,
        HeaderValue::from_str(&template.signature(SECRET.as_bytes(), &body))?,
    );
    let delivery_id = plugin
        .delivery_id_header
        .as_ref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let secrets = [Secret::new(SECRET)];
    let now = SystemTime::now();

    // Both must succeed before their cost means anything.
    let mapped = plugin
        .map_event(&headers, &body)
        .map_err(|e| format!("map_event refused the benchmark payload: {e}"))?;
    if mapped.canonical_type != template.canonical_type {
        return Err(format!(
            "mapped to `{}`, expected `{}`",
            mapped.canonical_type, template.canonical_type
        )
        .into());
    }
    let verify = || {
        plugin.verify_with(
            plugin.scheme.as_ref(),
            black_box(&headers),
            black_box(&body),
            delivery_id.as_deref(),
            &secrets,
            now,
        )
    };
    verify().map_err(|e| format!("verify_with refused a valid signature: {e}"))?;

    let map_rounds = rounds(p, || {
        let _ = black_box(plugin.map_event(black_box(&headers), black_box(&body)));
    });
    let verify_rounds = rounds(p, || {
        let _ = black_box(verify());
    });
    Ok(Row {
        vendor: template.vendor,
        form: "",
        body_len: body.len(),
        mapped_to: mapped.canonical_type,
        map_rounds,
        verify_rounds,
    })
}
