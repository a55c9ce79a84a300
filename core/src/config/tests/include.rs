//! `server.include` (per-team files), `limits` and `log_format`.

use std::fs;

use super::*;

const WATSI: &str = "    vendors: { watsi: { secrets: [a-16-byte-secret] } }\n";

/// A directory with `routes.yaml` and the given files (relative paths, parents created).
fn site(main: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    let main_path = dir.path().join("routes.yaml");
    fs::write(&main_path, main).unwrap();
    (dir, main_path)
}

fn team(name: &str) -> String {
    format!("workspaces:\n  {name}:\n{WATSI}")
}

/// `load`'s problems, with the temporary directory's path shortened to `DIR`.
fn load_problems(main: &Path, dir: &Path) -> Vec<String> {
    match load(main) {
        Ok(config) => panic!("expected problems, loaded {config:?}"),
        Err(error) => {
            let prefix = format!("{}/", dir.display());
            (error.to_string().lines())
                .map(|line| line.replace(&prefix, "DIR/"))
                .collect()
        }
    }
}

#[test]
fn a_directory_includes_its_yaml_files_in_name_order() {
    let beta = "workspaces:\n  beta:\n    vendors: { watsi: { secrets: [a-16-byte-secret] } }\n    \
                sinks: { out: { type: file, path: ./beta.jsonl } }\n    routes: [ { to: [out] } ]\n";
    let (dir, main) = site(
        "server:\n  include: ./routes.d\n",
        &[
            ("routes.d/b.yaml", beta),
            ("routes.d/a.yml", &team("alpha")),
            ("routes.d/notes.txt", "not yaml"),
            ("routes.d/nested/c.yaml", &team("nested")),
        ],
    );
    let config = load(&main).unwrap();
    let d = dir.path().join("routes.d");
    assert_eq!(config.included, [d.join("a.yml"), d.join("b.yaml")]);
    let names: Vec<&str> = config.workspaces.keys().map(|w| w.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let beta = &config.workspaces[&ws("beta")];
    assert_eq!(beta.source, d.join("b.yaml"));
    // Relative paths in an included file resolve against that file's directory.
    assert_eq!(
        beta.sinks[&sink("out")].kind,
        SinkKind::File {
            path: d.join("beta.jsonl"),
            sync: FileSync::Batch
        }
    );
}

#[test]
fn a_list_of_globs_includes_each_match_once_and_never_the_main_file() {
    let main = format!(
        "server:\n  include: [\"teams/*.yaml\", ./extra.yaml, \"teams/a.yaml\", \"*.yaml\"]\n\
         workspaces:\n  main:\n{WATSI}"
    );
    let (dir, main) = site(
        &main,
        &[
            ("teams/b.yaml", &team("b")),
            ("teams/a.yaml", &team("a")),
            ("teams/skip.yml", &team("skipped")),
            ("extra.yaml", &team("extra")),
        ],
    );
    let config = load(&main).unwrap();
    let d = dir.path();
    assert_eq!(
        config.included,
        [
            d.join("teams/a.yaml"),
            d.join("teams/b.yaml"),
            d.join("extra.yaml")
        ]
    );
    let names: Vec<&str> = config.workspaces.keys().map(|w| w.as_str()).collect();
    assert_eq!(names, ["a", "b", "extra", "main"]);
    assert_eq!(config.workspaces[&ws("main")].source, main);
}

#[test]
fn a_workspace_defined_twice_names_both_files_and_lines() {
    let main = format!("server:\n  include: ./teams\nworkspaces:\n  acme:\n{WATSI}");
    let (dir, main) = site(
        &main,
        &[
            ("teams/a.yaml", &format!("# team a\n{}", team("acme"))),
            ("teams/b.yaml", &format!("{}  beta:\n{WATSI}", team("zed"))),
            ("teams/c.yaml", &format!("\n\n{}", team("beta"))),
        ],
    );
    assert_eq!(
        load_problems(&main, dir.path()),
        [
            "DIR/teams/a.yaml:3: workspaces.acme: workspace `acme` is defined twice: first in \
             DIR/routes.yaml:4",
            "DIR/teams/c.yaml:4: workspaces.beta: workspace `beta` is defined twice: first in \
             DIR/teams/b.yaml:4",
        ]
    );
}

#[test]
fn problems_in_an_included_file_name_that_file_its_line_and_key() {
    let bad = "workspaces:\n  acme:\n    vendors:\n      watsi:\n        secrets: [\"${TEAM_SECRET}\"]\n    \
               sinks:\n      out: { type: ftp }\n    routes: [ { to: [out, nope] } ]\nserver: {}\n";
    let (dir, main) = site(
        "server:\n  include: [teams/a.yaml, teams/empty.yaml]\n  listen: nowhere\n",
        &[
            ("teams/a.yaml", bad),
            ("teams/empty.yaml", "# nothing yet\n"),
        ],
    );
    assert_eq!(
        load_problems(&main, dir.path()),
        [
            "DIR/routes.yaml:3: server.listen: invalid listen address \"nowhere\": expected an IP \
             address and port such as 127.0.0.1:8080",
            "DIR/teams/a.yaml:5: workspaces.acme.vendors.watsi.secrets[0]: environment variable \
             TEAM_SECRET is not set (write ${TEAM_SECRET:-value} to give a default)",
            "DIR/teams/a.yaml:7: workspaces.acme.sinks.out.type: unknown sink type \"ftp\": \
             expected stdout, file, http, nats or redis",
            "DIR/teams/a.yaml:8: workspaces.acme.routes[0].to[1]: unknown sink `nope` (this \
             workspace defines: out)",
            "DIR/teams/a.yaml:9: server: unknown field `server`, expected one of `workspaces`",
            "DIR/teams/empty.yaml:1: the file is empty: expected `workspaces`",
        ]
    );
}

#[test]
fn include_entries_that_name_nothing_are_problems_of_the_main_file() {
    let main = format!(
        "server:\n  include:\n    - ./missing\n    - 7\n    - \"teams/[\"\n    - \"\"\n\
         workspaces:\n  main:\n{WATSI}"
    );
    let (dir, main) = site(&main, &[]);
    let all = load_problems(&main, dir.path());
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_eq!(
        all[0],
        "DIR/routes.yaml:3: server.include[0]: DIR/missing does not exist: expected a directory \
         of YAML files, a file, or a glob such as ./teams/*.yaml"
    );
    assert_eq!(
        all[1],
        "DIR/routes.yaml:4: server.include[1]: expected a directory or a glob such as \
         ./teams/*.yaml"
    );
    assert!(
        all[2].starts_with("DIR/routes.yaml:5: server.include[2]: invalid glob \"teams/[\""),
        "{}",
        all[2]
    );
    assert_eq!(
        all[3],
        "DIR/routes.yaml:6: server.include[3]: must not be empty"
    );
}

#[test]
fn a_glob_matching_nothing_leaves_the_main_file_needing_a_workspace() {
    let (dir, main) = site("server:\n  include: \"teams/*.yaml\"\n", &[]);
    assert_eq!(
        load_problems(&main, dir.path()),
        [
            "DIR/routes.yaml:1: workspaces: no workspaces: define at least one here or in an \
          included file"
        ]
    );
}

#[test]
fn check_vendors_names_the_file_that_enables_the_vendor() {
    let main = format!("server:\n  include: ./teams\nworkspaces:\n  main:\n{WATSI}");
    let wapp =
        "workspaces:\n  t:\n    vendors:\n      wappcloud: { secrets: [a-16-byte-secret] }\n";
    let (dir, main) = site(&main, &[("teams/t.yaml", wapp)]);
    let config = load(&main).unwrap();
    let error = config
        .check_vendors(&|v| v.as_str() == "watsi")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}:4: workspaces.t.vendors.wappcloud: no loaded plugin provides vendor `wappcloud`",
            dir.path().join("teams/t.yaml").display()
        )
    );
}

fn limits_of(limits: &str) -> Result<Limits, Vec<String>> {
    let text = format!("workspaces:\n  w:\n    limits: {limits}\n{WATSI}");
    match parse(&text, Path::new("routes.yaml"), &no_env) {
        Ok(config) => Ok(config.workspaces[&ws("w")].limits),
        Err(error) => Err(error.to_string().lines().map(str::to_owned).collect()),
    }
}

fn rate(count: u32, per: Duration, burst: u32) -> Option<Rate> {
    Some(Rate {
        count: NonZeroU32::new(count).unwrap(),
        per,
        burst: NonZeroU32::new(burst).unwrap(),
    })
}

#[test]
fn limits_take_a_rate_a_burst_and_a_queue_ceiling() {
    let second = Duration::from_secs(1);
    assert_eq!(
        limits_of("{ rate: 500/s, burst: 2000, max_queue: 1000000 }"),
        Ok(Limits {
            rate: rate(500, second, 2000),
            max_queue: Some(1_000_000),
        })
    );
    assert_eq!(
        limits_of("{ rate: 30/m }"),
        Ok(Limits {
            rate: rate(30, Duration::from_secs(60), 30),
            max_queue: None,
        })
    );
    let limits = limits_of("{ rate: 100/10s, max_queue: \"5\" }").unwrap();
    assert_eq!(limits.rate, rate(100, Duration::from_secs(10), 100));
    assert_eq!(limits.rate.unwrap().interval(), Duration::from_millis(100));
    assert_eq!(limits.rate.unwrap().to_string(), "100/10s, burst 100");
    assert_eq!(limits.max_queue, Some(5));
    let omitted = "workspaces:\n  w:\n    vendors: { watsi: { secrets: [a-16-byte-secret] } }\n";
    let config = parse(omitted, Path::new("routes.yaml"), &no_env).unwrap();
    assert_eq!(config.workspaces[&ws("w")].limits, Limits::default());
}

#[test]
fn bad_limits_are_named_at_their_key() {
    assert_eq!(
        limits_of("{ rate: fast, burst: 0, max_queue: 0 }").unwrap_err(),
        [
            "routes.yaml:3: workspaces.w.limits.rate: invalid rate \"fast\": expected a rate such \
             as 500/s, 30/m, 1000/h or 100/10s",
            "routes.yaml:3: workspaces.w.limits.burst: expected a whole number of requests from 1 \
             to 4294967295 (those taken at once)",
            "routes.yaml:3: workspaces.w.limits.max_queue: expected a whole number of events \
             greater than 0 (the most the workspace's sinks may owe together)",
        ]
    );
    assert_eq!(
        limits_of("{ burst: 10 }").unwrap_err(),
        [
            "routes.yaml:3: workspaces.w.limits.burst: `burst` applies to `rate`: set a rate such \
          as 500/s too"
        ]
    );
    assert_eq!(
        limits_of("{ rate: 0/s }").unwrap_err()[0],
        "routes.yaml:3: workspaces.w.limits.rate: invalid rate \"0/s\": expected a rate such as \
         500/s, 30/m, 1000/h or 100/10s"
    );
    assert_eq!(
        limits_of("{ rate: 5/2d }").unwrap_err()[0],
        "routes.yaml:3: workspaces.w.limits.rate: invalid rate \"5/2d\": the period must be from \
         1ns to 24h"
    );
    assert_eq!(
        limits_of("{ rate: 2000000000/s }").unwrap_err()[0],
        "routes.yaml:3: workspaces.w.limits.rate: invalid rate \"2000000000/s\": more than one \
         request per nanosecond"
    );
    assert_eq!(
        limits_of("{ rates: 5/s }").unwrap_err()[0],
        "routes.yaml:3: workspaces.w.limits.rates: unknown field `rates`, expected one of `rate`, \
         `burst`, `max_queue`"
    );
}

#[test]
fn log_format_is_text_or_json() {
    let text =
        |format: &str| format!("server:\n  log_format: {format}\nworkspaces:\n  w:\n{WATSI}");
    let config = parse(&text("json"), Path::new("routes.yaml"), &no_env).unwrap();
    assert_eq!(config.server.log_format, LogFormat::Json);
    let config = parse(&text("text"), Path::new("routes.yaml"), &no_env).unwrap();
    assert_eq!(config.server.log_format, LogFormat::Text);
    assert_eq!(
        problems(&text("xml"), &no_env),
        ["routes.yaml:2: server.log_format: unknown log format \"xml\": expected text or json"]
    );

    // Read ahead of loading, so that logging is set up before anything is logged.
    let (_dir, main) = site(&text("json"), &[]);
    assert_eq!(log_format(&main), Some(LogFormat::Json));
    let (_dir, main) = site("server: { log_format: xml }\n", &[]);
    assert_eq!(log_format(&main), None);
    assert_eq!(log_format(Path::new("/nonexistent/routes.yaml")), None);
}
