//! Fuzzing the request path with proptest (cargo-fuzz needs a nightly toolchain): arbitrary
//! headers and bodies through signature verification and every real plugin's mapping, as
//! `ingest` calls them, then into an envelope. For every input, nothing panics; a correctly
//! signed delivery verifies and any other is refused; a plugin never fails (panics or breaks
//! its contract); every mapped event makes a one-line JSON envelope. The five vendors run as
//! libraries and again as their definitions (`plugins/definitions/`).
//!
//! The plugins are built for this test's profile first, as the end-to-end tests do.
//! `PROPTEST_CASES=20000 cargo test -p switchyard --test fuzz_request -- --nocapture` runs
//! 20,000 inputs per plugin (default 1,000) and prints how many ran.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::Value;
use switchyard::base::id::EventId;
use switchyard::base::names::{Secret, WorkspaceId};
use switchyard::event::dedupe::DedupeKey;
use switchyard::event::envelope::Envelope;
use switchyard::event::verify::{Signable, Signed};
use switchyard::plugins::{MapFailure, Plugins, VendorPlugin};

const SECRET: &str = "fuzz-secret-of-more-than-16-bytes";

/// Every plugin under `plugins/` (each directory but the SDK), built into this test's target
/// and profile directories, then loaded (which also proves each plugin's test vectors).
fn real_plugins() -> Plugins {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut packages = Vec::new();
    for entry in std::fs::read_dir(root.join("plugins")).expect("plugins/") {
        let manifest = entry.expect("a plugins/ entry").path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        if !text.contains("cdylib") {
            continue; // the SDK
        }
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no package name in {}", manifest.display()));
        packages.push(name.to_owned());
    }
    packages.sort();
    // Cargo puts this test at <target>/<profile>/deps/<name>.
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("<profile>/deps");
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null());
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
    }
    for package in &packages {
        build.args(["-p", package]);
    }
    let output = build.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building the plugins failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let libraries: Vec<PathBuf> = (packages.iter())
        .map(|package| {
            profile_dir.join(format!(
                "{}{}{}",
                std::env::consts::DLL_PREFIX,
                package.replace('-', "_"),
                std::env::consts::DLL_SUFFIX
            ))
        })
        .collect();
    let plugins = Plugins::load_files(&libraries).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(plugins.len(), packages.len());
    plugins
}

/// One delivery: headers, a body, and whether to sign it correctly.
#[derive(Clone)]
struct Delivery {
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    sign: bool,
}

/// Bytes as text where they are, so a failing input reads as the request it was.
impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, String)> = (self.headers.iter())
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value).into_owned()))
            .collect();
        f.debug_struct("Delivery")
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("sign", &self.sign)
            .finish()
    }
}

/// A JSON value made of names the vendors use, so the plugins' mapping goes deep.
fn json(names: Vec<String>) -> impl Strategy<Value = Value> {
    let name = proptest::sample::select(names);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from("")),
        "[a-z._]{0,12}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(Value::from("2024-03-23T21:41:44Z")),
        Just(Value::from("message.received")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((name.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Replaces the `n`th node (in a pre-order walk) of `value` by `with`.
fn replace_nth(value: &mut Value, n: &mut usize, with: &Value) -> bool {
    if *n == 0 {
        *value = with.clone();
        return true;
    }
    *n -= 1;
    match value {
        Value::Array(items) => items.iter_mut().any(|item| replace_nth(item, n, with)),
        Value::Object(map) => map.values_mut().any(|item| replace_nth(item, n, with)),
        _ => false,
    }
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn collect_names(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| collect_names(item, names)),
        Value::Object(map) => {
            for (name, item) in map {
                names.push(name.clone());
                collect_names(item, names);
            }
        }
        _ => {}
    }
}

/// Bodies: the vendor's example with some nodes replaced, arbitrary JSON, or arbitrary bytes.
fn body(example: Value) -> impl Strategy<Value = Vec<u8>> {
    let mut names = vec!["type".to_owned(), "id".to_owned(), "data".to_owned()];
    collect_names(&example, &mut names);
    let nodes = count_nodes(&example);
    let edits = proptest::collection::vec((0..nodes, json(names.clone())), 0..4);
    prop_oneof![
        6 => edits.prop_map(move |edits| {
            let mut body = example.clone();
            for (n, with) in &edits {
                replace_nth(&mut body, &mut n.clone(), with);
            }
            serde_json::to_vec(&body).expect("JSON serialises")
        }),
        2 => json(names).prop_map(|value| serde_json::to_vec(&value).expect("JSON serialises")),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

/// Header names the plugin reads, and some it does not.
fn header_names(plugin: &VendorPlugin) -> Vec<String> {
    let mut names = vec!["content-type".to_owned(), "x-unrelated".to_owned()];
    names.extend(plugin.scheme.iter().map(|s| s.header.to_string()));
    if let Some(Signed::Template {
        timestamp_header: Some(name),
        ..
    }) = plugin.scheme.as_ref().map(|s| &s.signed)
    {
        names.push(name.to_string());
    }
    for name in [&plugin.delivery_id_header, &plugin.event_type_header] {
        names.extend(name.iter().map(ToString::to_string));
    }
    names
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        "[ -~]{0,80}".prop_map(String::into_bytes),
        Just(b"sha256=".to_vec()),
        Just(b"message.received".to_vec()),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        Just(b"".to_vec()),
    ]
}

fn delivery(plugin: &VendorPlugin, example: Value) -> impl Strategy<Value = Delivery> {
    let header = (
        proptest::sample::select(header_names(plugin)),
        header_value(),
    );
    (
        proptest::collection::vec(header, 0..6),
        body(example),
        any::<bool>(),
    )
        .prop_map(|(headers, body, sign)| Delivery {
            headers,
            body,
            sign,
        })
}

/// What the runs saw, for the report.
#[derive(Default)]
struct Tally {
    inputs: u64,
    verified: u64,
    refused: u64,
    mapped: u64,
    invalid_payload: u64,
}

/// The property, for one plugin and one delivery.
fn check(plugin: &VendorPlugin, d: &Delivery, tally: &mut Tally) -> Result<(), TestCaseError> {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut headers = HeaderMap::new();
    for (name, value) in &d.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let scheme = plugin.scheme.as_ref().expect("the five vendors sign");
    if d.sign {
        if let Signed::Template {
            timestamp_header: Some(name),
            ..
        } = &scheme.signed
        {
            headers.insert(name.clone(), HeaderValue::from_static("1700000000"));
        }
    }
    // As ingest does: the delivery id, when the vendor sends one, may be signed over.
    let delivery_id = (plugin.delivery_id_header.as_ref())
        .and_then(|name| headers.get(name))
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if d.sign {
        let timestamp = match &scheme.signed {
            Signed::Template {
                timestamp_header: Some(name),
                ..
            } => headers.get(name).and_then(|v| v.to_str().ok()),
            _ => None,
        };
        let signable = Signable {
            body: &d.body,
            timestamp,
            delivery_id: delivery_id.as_deref(),
        };
        let signature = scheme.sign(SECRET.as_bytes(), &signable);
        let value = HeaderValue::from_str(&signature).expect("a signature is a header value");
        headers.insert(scheme.header.clone(), value);
    }
    let secrets = [
        Secret::new("another-secret-in-rotation"),
        Secret::new(SECRET),
    ];
    let verified = plugin.verify_with(
        Some(scheme),
        &headers,
        &d.body,
        delivery_id.as_deref(),
        &secrets,
        now,
    );
    if d.sign {
        prop_assert!(
            verified.is_ok(),
            "a signed delivery refused: {:?}",
            verified
        );
        tally.verified += 1;
    } else {
        // Random bytes do not make an HMAC-SHA256 under the secret.
        prop_assert!(verified.is_err(), "an unsigned delivery verified");
        tally.refused += 1;
    }

    match plugin.map_event(&headers, &d.body) {
        Ok(mapped) => {
            tally.mapped += 1;
            let workspace = WorkspaceId::new("fuzz");
            let (key, basis) = DedupeKey::derive(&workspace, &plugin.vendor, &mapped.identity);
            let id = EventId::generate();
            let json = Envelope::new(&id, &workspace, &plugin.vendor, &mapped, (&key, basis), now)
                .to_json();
            prop_assert!(!json.contains(&b'\n'), "an envelope spans lines");
            let parsed: Result<Value, _> = serde_json::from_slice(&json);
            prop_assert!(parsed.is_ok(), "an envelope is not JSON: {:?}", parsed);
        }
        Err(MapFailure::InvalidPayload(_)) => tally.invalid_payload += 1,
        Err(MapFailure::PluginFailed(why)) => {
            return Err(TestCaseError::fail(format!(
                "{} failed (500) on a delivery: {why}",
                plugin.vendor
            )));
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn arbitrary_deliveries_through_verify_and_every_plugin_never_fail() {
    let plugins = real_plugins();
    // The same five as definitions: the interpreter must never fail on input either.
    let definitions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/definitions");
    let definitions = Plugins::load_dir(&definitions).unwrap_or_else(|e| panic!("{e:?}"));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut failures = Vec::new();
    let mut total = 0;
    for plugin in plugins.iter().chain(definitions.iter()) {
        let example = examples.join(format!("{}.json", plugin.vendor));
        let example: Value = std::fs::read(&example)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        let config = RunnerConfig {
            cases: cases(),
            failure_persistence: None,
            ..RunnerConfig::default()
        };
        let mut runner = TestRunner::new(config);
        let tally = std::cell::RefCell::new(Tally::default());
        let started = std::time::Instant::now();
        let outcome = runner.run(&delivery(plugin, example), |d| {
            let mut tally = tally.borrow_mut();
            tally.inputs += 1;
            check(plugin, &d, &mut tally)
        });
        let t = tally.into_inner();
        total += t.inputs;
        println!(
            "fuzz_request {} ({}): {} inputs (shrinking included) in {:.1?}: {} signed and \
             verified, {} unsigned and refused; {} mapped, {} invalid payloads (400)",
            plugin.vendor,
            plugin.form(),
            t.inputs,
            started.elapsed(),
            t.verified,
            t.refused,
            t.mapped,
            t.invalid_payload
        );
        if let Err(failure) = outcome {
            failures.push(format!("{} ({}): {failure}", plugin.vendor, plugin.form()));
        }
    }
    println!(
        "fuzz_request: {total} inputs over {} plugins",
        plugins.len() + definitions.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
