//! Fuzzing `config::parse` with proptest (cargo-fuzz needs a nightly toolchain): YAML-ish token
//! soup, arbitrary bytes, and structured mutations of valid files. For every input, parsing
//! returns (never panics), and every problem names the file, a line of it, and a message.
//!
//! `PROPTEST_CASES=20000 cargo test -p switchyard --test fuzz_config -- --nocapture` runs
//! 20,000 inputs per strategy (default 1,000) and prints how many ran.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use switchyard::config::{parse, ConfigError};

/// Valid files the mutations start from: the shipped default and a fuller one using every key.
fn seeds() -> Vec<String> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../routes.yaml");
    let shipped = std::fs::read_to_string(&shipped).expect("routes.yaml at the repository root");
    vec![shipped, FULL.to_owned()]
}

const FULL: &str = r#"server:
  listen: 127.0.0.1:8080
  data_dir: ./data
  max_body_bytes: 1048576
  plugins_dir: ./target/release
  admin_token: ${SWITCHYARD_ADMIN_TOKEN:-}
  header_read_timeout: 10s
  retention: 7d
  log_format: json
workspaces:
  acme: &acme
    dedupe_window: 72h
    limits: { rate: 500/s, burst: 2000, max_queue: 1000000 }
    vendors:
      watsi:
        secrets: [ "${ACME_WATSI_SECRET}", "${ACME_WATSI_SECRET_OLD:-an-old-secret-0000}" ]
        signature_header: X-Watsi-Signature
      whatsable:
        secrets:
          - "${ACME_WHATSABLE_SECRET}"
        allow_ips: [ "203.0.113.0/24", 2001:db8::1 ]
    sinks:
      crm: { type: http, url: "https://crm.internal/events", timeout: 10s, secret: "${CRM_SINK_SECRET}", retry: [1s, 5m], concurrency: 4 }
      audit: { type: file, path: ./data/acme.jsonl }
      log:
        type: stdout
    routes:
      - match: { vendor: [watsi, whatsable], type: "message.*" }
        to: [crm, audit]
      - match:
          type: "*"
        to: audit
  beta:
    <<: *acme
    dedupe_window: 1h
"#;

/// Fragments that YAML and routes.yaml give meaning to, so random text often gets far.
const TOKENS: &[&str] = &[
    "\n",
    "\n",
    "\n",
    " ",
    " ",
    "  ",
    "    ",
    "\t",
    "- ",
    "-",
    ": ",
    ":",
    ",",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "#",
    "&a ",
    "*a",
    "<<: ",
    "!tag ",
    "!!str ",
    "|",
    ">",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "~",
    "null",
    "true",
    "0",
    "-1",
    "1e400",
    "0x1F",
    "18446744073709553s",
    "99999999999999999999",
    "10s",
    "0s",
    "72h",
    "36526d",
    "1y",
    "10.0.0.1/8",
    "203.0.113.0/24",
    "::1/200",
    "127.0.0.1:8080",
    "http://x",
    "https://crm.internal/e",
    "ftp://x",
    "${",
    "${A}",
    "${A:-default}",
    "${A:-}",
    "$${",
    "$",
    "server",
    "workspaces",
    "acme",
    "vendors",
    "watsi",
    "sinks",
    "routes",
    "secrets",
    "type",
    "path",
    "url",
    "timeout",
    "secret",
    "retry",
    "concurrency",
    "match",
    "vendor",
    "to",
    "listen",
    "data_dir",
    "admin_token",
    "retention",
    "limits",
    "rate",
    "burst",
    "max_queue",
    "500/s",
    "allow_ips",
    "signature_header",
    "file",
    "http",
    "stdout",
    "crm",
    "a-secret-of-16-bytes",
    "é",
    "\u{feff}",
    "\r\n",
    "\0",
    "\u{85}",
];

fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        8 => proptest::sample::select(TOKENS).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(token, 0..300).prop_map(|tokens| tokens.concat())
}

fn arbitrary_bytes() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 0..600)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// One edit of a file, by line; positions are taken modulo the file's length.
#[derive(Clone, Debug)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
    Dedent(usize),
    ReplaceValue(usize, String),
    ReplaceKey(usize, String),
    Insert(usize, String),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = || proptest::sample::select(TOKENS).prop_map(str::to_owned);
    let n = || any::<usize>();
    prop_oneof![
        n().prop_map(Edit::DeleteLine),
        n().prop_map(Edit::DuplicateLine),
        (n(), n()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (n(), 1..6usize).prop_map(|(a, by)| Edit::Indent(a, by)),
        n().prop_map(Edit::Dedent),
        (n(), token()).prop_map(|(a, t)| Edit::ReplaceValue(a, t)),
        (n(), token()).prop_map(|(a, t)| Edit::ReplaceKey(a, t)),
        (n(), token()).prop_map(|(a, t)| Edit::Insert(a, t)),
        n().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        return text.to_owned();
    }
    let len = lines.len();
    match edit {
        Edit::DeleteLine(a) => {
            lines.remove(a % len);
        }
        Edit::DuplicateLine(a) => {
            let line = lines[a % len].clone();
            lines.insert(a % len, line);
        }
        Edit::SwapLines(a, b) => lines.swap(a % len, b % len),
        Edit::Indent(a, by) => lines[a % len].insert_str(0, &" ".repeat(*by)),
        Edit::Dedent(a) => {
            let line = &mut lines[a % len];
            *line = line.strip_prefix("  ").unwrap_or(line).to_owned();
        }
        Edit::ReplaceValue(a, token) => {
            let line = &mut lines[a % len];
            if let Some(colon) = line.find(": ") {
                line.replace_range(colon + 2.., token);
            }
        }
        Edit::ReplaceKey(a, token) => {
            let line = &mut lines[a % len];
            let start = line.len() - line.trim_start_matches([' ', '-']).len();
            if let Some(colon) = line.find(':').filter(|&c| c >= start) {
                line.replace_range(start..colon, token);
            }
        }
        Edit::Insert(a, token) => {
            let at = a % (text.len() + 1);
            let at = (0..=at)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            return format!("{}{token}{}", &text[..at], &text[at..]);
        }
        Edit::Truncate(a) => {
            let at = a % (text.len() + 1);
            let at = (0..=at)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            return text[..at].to_owned();
        }
    }
    lines.join("\n") + "\n"
}

fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(edit(), 1..6),
    )
        .prop_map(|(seed, edits)| edits.iter().fold(seed, |text, e| apply(&text, e)))
}

/// Variables the seeds use are set to values of 16 bytes or more; the rest are unset.
fn env(name: &str) -> Option<String> {
    name.starts_with("ACME_")
        .then(|| format!("value-of-{name}"))
        .or_else(|| (name == "CRM_SINK_SECRET").then(|| "a-sink-secret-of-16-bytes".to_owned()))
}

/// What YAML 1.1 (libyaml, so serde_yaml) counts as a line break; `\r\n` counts once.
const YAML_BREAKS: [char; 5] = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];

/// The property: `parse` returns, and every problem names the file and a line of it.
fn check(text: &str) -> Result<(), TestCaseError> {
    let file = Path::new("fuzz/routes.yaml");
    let Err(error) = parse(text, file, &env) else {
        return Ok(());
    };
    let ConfigError::Invalid(problems) = &error else {
        return Err(TestCaseError::fail(format!(
            "not a list of problems: {error}"
        )));
    };
    prop_assert!(!problems.is_empty(), "an error without problems");
    // serde_yaml may place an error just past the last line, and counts lines as YAML 1.1 does.
    let breaks = text.replace("\r\n", "\n").matches(YAML_BREAKS).count();
    let last = breaks + 2;
    for problem in problems {
        prop_assert_eq!(&problem.path, file);
        let line = problem.line.unwrap_or(0);
        prop_assert!(
            (1..=last).contains(&line),
            "line {} outside 1..={} in {:?}",
            line,
            last,
            problem.to_string()
        );
        prop_assert!(!problem.message.is_empty());
        let prefix = format!("fuzz/routes.yaml:{line}: ");
        prop_assert!(problem.to_string().starts_with(&prefix));
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// Runs `strategy` through [`check`]; returns how many inputs ran.
fn run(name: &str, strategy: impl Strategy<Value = String>) -> u64 {
    let config = RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let ran = std::cell::Cell::new(0u64);
    let started = std::time::Instant::now();
    let outcome = runner.run(&strategy, |text| {
        ran.set(ran.get() + 1);
        check(&text)
    });
    let ran = ran.get();
    if let Err(failure) = outcome {
        panic!("{name}: {failure}");
    }
    println!(
        "fuzz_config {name}: {ran} inputs (shrinking included) in {:.1?}, none panicked, every \
         problem named a line",
        started.elapsed()
    );
    ran
}

#[test]
fn token_soup_never_panics_and_every_problem_names_a_line() {
    assert!(run("token soup", token_soup()) >= u64::from(cases()));
}

#[test]
fn arbitrary_bytes_never_panic_and_every_problem_names_a_line() {
    assert!(run("arbitrary bytes", arbitrary_bytes()) >= u64::from(cases()));
}

#[test]
fn mutated_valid_files_never_panic_and_every_problem_names_a_line() {
    let seeds = seeds();
    for seed in &seeds {
        // The starting points themselves must be valid, or the mutations prove little.
        parse(seed, Path::new("routes.yaml"), &env).expect("a seed parses");
    }
    assert!(run("mutations of valid files", mutated(seeds)) >= u64::from(cases()));
}
