//! `switchyard-bench`: the one command that prints switchyard's speed and memory figures.
//!
//! ```text
//! cargo build --release --workspace && cargo run --release -p switchyard-bench -- [--quick] [scenario...]
//! ```
//!
//! Scenarios (all of them when none is named):
//! - `map`: a plugin's `map_event` and the signature check on a 1 KB payload, in process, for
//!   each vendor as a library and as a definition; a route's `where` and routing an event with
//!   filters.
//! - `ingest`: the release server under N keep-alive clients: throughput, latency, group commits.
//! - `isolation`: one workspace's stuck HTTP sink must not slow another workspace.
//! - `recovery`: an http sink's backlog after a slow receiver and after one down for a while.
//! - `quota`: one workspace flooded above its rate limit must not starve another's ingest.
//! - `retention`: steady load with short windows: does the store (and RSS) stop growing?
//! - `burst`: 300 clients deliver 1 MiB each at once: peak RSS, and RSS after the burst.
//! - `pace`: an http sink with `rate: 20/s` under a burst: every event, at most 10% over 20/s.
//! - `cluster`: the embedded store vs cluster mode (NATS JetStream), one and two instances.
//! - `crash`: SIGKILL under load, several times: re-delivered and lost events.
//! - `growth`: a million 600-byte events to a file and an http sink: rates, RSS, disk, drain.
//! - `backlog`: a million events for an http sink that is down, then up: RSS, idle drain.
//! - `powercut`: 200 power cuts under load by the e2e power-cut test: nothing acknowledged lost.
//! - `search`: `GET /admin/events` pages of 50 over a million stored events: p50, p99.
//! - `traces`: intake with OpenTelemetry traces at sample ratio 1.0 vs off.
//!
//! Every block prints the settings it ran with, so a reader can reproduce it. Timed figures live
//! here, never in tests.

mod backlog;
mod baseline;
mod burst;
mod client;
mod cluster;
mod compare;
mod console;
mod crash;
mod filter;
mod growth;
mod ingest;
mod isolation;
mod load;
mod map;
mod nats_server;
mod pace;
mod payload;
mod poster;
mod powercut;
mod quota;
mod receiver;
mod recovery;
mod retention;
mod sample;
mod search;
mod server;
mod sink;
mod stats;
mod timing;
mod traces;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
pub type BenchResult<T> = Result<T, BenchError>;

const SCENARIOS: [&str; 16] = [
    "compare",
    "map",
    "ingest",
    "isolation",
    "recovery",
    "quota",
    "retention",
    "burst",
    "pace",
    "cluster",
    "crash",
    "growth",
    "backlog",
    "powercut",
    "search",
    "traces",
];

const USAGE: &str = "\
usage: cargo run --release -p switchyard-bench -- [--quick] [scenario...]

Build first: cargo build --release --workspace (the bench runs target/release/switchyard and
loads the plugins beside it).

scenarios (default: all, in this order):
  compare     bare hyper vs the Watsi document's Node handler vs switchyard, same load and run,
              3 alternating rounds (1 with --quick): rates, CPU per request, the median
              ratios, latency (closed loop and at half the maximum rate), sink
              drain, queue depth, bytes on disk per event, peak RSS, time to ready
  map         VendorPlugin::map_event and verify_with on a 1 KB payload, per vendor, library and
              definition; a route's where (4 conditions) and Router::sinks_for with filters
  ingest      the server under 1 and 32 keep-alive clients: req/s, latency, group commits
  isolation   a stuck HTTP sink in workspace A vs workspace B's latencies
  recovery    an http sink's backlog: 300 events to a receiver taking 100 ms a request, and
              200 to a receiver down for 45 s (10 s with --quick): attempts while down, drain
              time once it is back, a new event's latency
  quota       workspace A flooded above its rate limit vs workspace B's achieved rate
  retention   steady load with 5 s windows: store size, data dir and RSS over time
  burst       300 clients deliver one 1 MiB event each at the same moment: peak RSS, RSS after
  pace        an http sink with rate 20/s takes a burst of events posted at 400/s: every event
              reaches it, and never more than 10% over 20/s (busiest second, and on average)
  cluster     embedded store vs cluster mode on a local nats-server (started by the scenario;
              needs `nats-server`, apt package nats-server), one instance and two sharing the
              load: accepted/s, p50/p99, delivered/s, ratios to the embedded store
  crash       SIGKILL under load 4 times, restarting on the same data: re-delivered share,
              acknowledged events lost
  growth      1M signed 600-byte events, 128 connections, a file sink and an http sink:
              accepted/s, delivered during the load per sink, oldest queued at its end, drain
              time, peak and final RSS, disk per event, disk after retention sweeps it
  backlog     1M events while the http sink's receiver is down (RSS), then up: idle drain
              rate and time, RSS
  powercut    200 power cuts under load (20 with --quick), by tests/tests/powercut.rs in the
              release profile, in rounds of 50 each from a printed seed: nothing acknowledged
              may be lost; needs /dev/fuse and root or fusermount3 (about 12 minutes)
  search      1M events stored (1 in 100 also a dead letter), then GET /admin/events pages
              of 50 (newest, by workspace and type, a time window) and searches that match
              nothing (the whole index walked): p50, p99 (target p99 < 100 ms for a page of
              50); then each console view (overview, events search, an event, a sink's dead
              letters), its page and API calls: p50, p99 (target p99 < 200 ms a view)
  traces      intake with OpenTelemetry traces at sample_ratio 1.0 (a local OTLP collector) vs
              off, alternating, 3 rounds: req/s, p50/p99, the ratios (target: within 10%)

options:
  --quick     a short smoke run with shorter durations, fewer iterations and 30,000 events
              instead of 1M
  -h, --help  this text

The exit status is 1 when a figure looks wrong (each is listed at the end), 2 on bad arguments.";

/// What every scenario needs to know about the run.
pub struct Env {
    /// `target/release`: the server binary and the plugin libraries.
    pub profile_dir: PathBuf,
    /// `target/release/switchyard`.
    pub binary: PathBuf,
    pub quick: bool,
}

/// Figures that look wrong; printed again at the end, and the exit status is 1.
#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn add(&mut self, scenario: &str, what: String) {
        println!("  !! {what}");
        self.0.push(format!("{scenario}: {what}"));
    }
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(baseline::BARE_HYPER_ARG) {
        return match baseline::serve_bare_hyper() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bare hyper server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut quick = false;
    let mut chosen: Vec<&'static str> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            name => match SCENARIOS.iter().find(|s| **s == name) {
                Some(s) if !chosen.contains(s) => chosen.push(s),
                Some(_) => {}
                None => {
                    eprintln!("unknown scenario or option `{name}`\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
        }
    }
    if chosen.is_empty() {
        chosen = SCENARIOS.to_vec();
    } else {
        // Always in the documented order, whatever order they were named in.
        chosen.sort_by_key(|s| SCENARIOS.iter().position(|x| x == s));
    }
    let env = match locate(quick) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("switchyard-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Two load threads, one per core: one thread could not saturate the bare hyper baseline, so
    // the ratios would flatter switchyard.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("switchyard-bench: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_header(&env, &chosen);
    let started = Instant::now();
    let mut problems = Problems::default();
    let mut interrupted = false;
    for scenario in &chosen {
        println!();
        let load_before = machine::load_average();
        let result = if *scenario == "map" {
            // In process and synchronous: Ctrl-C keeps its default meaning.
            map::run(&env, &mut problems)
        } else if *scenario == "powercut" {
            // A child cargo process, waited for: Ctrl-C reaches both.
            powercut::run(&env, &mut problems)
        } else {
            // Ctrl-C ends the scenario's future, whose drop kills every server it started.
            runtime.block_on(async {
                tokio::select! {
                    result = run(scenario, &env, &mut problems) => result,
                    _ = tokio::signal::ctrl_c() => {
                        interrupted = true;
                        Err("interrupted".into())
                    }
                }
            })
        };
        println!(
            "machine load average (1 min) before / after: {load_before} / {} (other processes compete for the same cores when the first is well above 0)",
            machine::load_average()
        );
        if let Err(e) = result {
            problems.add(scenario, format!("the scenario failed: {e}"));
            if interrupted {
                break;
            }
        }
    }
    println!();
    println!("total time: {:.0} s", started.elapsed().as_secs_f64());
    if problems.0.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("figures that look wrong:");
        for p in &problems.0 {
            println!("  - {p}");
        }
        ExitCode::FAILURE
    }
}

async fn run(scenario: &str, env: &Env, problems: &mut Problems) -> BenchResult<()> {
    match scenario {
        "compare" => compare::run(env, problems).await,
        "ingest" => ingest::run(env, problems).await,
        "isolation" => isolation::run(env, problems).await,
        "recovery" => recovery::run(env, problems).await,
        "quota" => quota::run(env, problems).await,
        "retention" => retention::run(env, problems).await,
        "burst" => burst::run(env, problems).await,
        "pace" => pace::run(env, problems).await,
        "cluster" => cluster::run(env, problems).await,
        "crash" => crash::run(env, problems).await,
        "growth" => growth::run(env, problems).await,
        "backlog" => backlog::run(env, problems).await,
        "search" => search::run(env, problems).await,
        "traces" => traces::run(env, problems).await,
        other => Err(format!("no scenario `{other}`").into()),
    }
}

/// Finds the server binary and the plugins beside this executable (`target/release`).
fn locate(quick: bool) -> BenchResult<Env> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .ok_or("this executable has no parent directory")?
        .to_path_buf();
    let binary = profile_dir.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        return Err(format!(
            "{} does not exist; run `cargo build --release --workspace` first",
            binary.display()
        )
        .into());
    }
    if profile_dir.file_name().and_then(|n| n.to_str()) != Some("release") {
        eprintln!(
            "warning: running from {}, not a release build; figures are not comparable",
            profile_dir.display()
        );
    }
    Ok(Env {
        profile_dir,
        binary,
        quick,
    })
}

fn print_header(env: &Env, chosen: &[&str]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("switchyard benchmark");
    let args = if args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", args.join(" "))
    };
    println!(
        "  command:  cargo build --release --workspace && cargo run --release -p switchyard-bench{args}"
    );
    println!(
        "  mode:     {} ({})",
        if env.quick { "quick" } else { "default" },
        chosen.join(", ")
    );
    println!("  machine:  {}", machine::describe());
    println!("  server:   {}", env.binary.display());
    println!(
        "  temp dir: {} ({})",
        std::env::temp_dir().display(),
        machine::filesystem_of(&std::env::temp_dir())
    );
}

/// What the figures ran on.
pub mod machine {
    use std::path::Path;

    /// Cores the process may use.
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// `2 cores, Intel(R) Xeon(R) ..., Linux 6.1.0`.
    pub fn describe() -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| format!("Linux {}", k.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!(", {:.1} GiB RAM", kib as f64 / (1024.0 * 1024.0)))
            })
            .unwrap_or_default();
        format!("{} cores, {cpu}, {kernel}{memory}", cores())
    }

    /// The 1-minute load average, from /proc/loadavg.
    pub fn load_average() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    }

    /// CPU time of this process (the load client) and of a server over one load.
    pub struct Cpu {
        pid: u32,
        client: Option<std::time::Duration>,
        server: Option<std::time::Duration>,
    }

    impl Cpu {
        pub fn start(pid: u32) -> Cpu {
            Cpu {
                pid,
                client: cpu_time(None),
                server: cpu_time(Some(pid)),
            }
        }

        /// Microseconds per request since the start: (client, server); `None` where
        /// /proc could not be read.
        pub fn per_request(&self, requests: u64) -> (Option<f64>, Option<f64>) {
            let each =
                |before: Option<std::time::Duration>, now: Option<std::time::Duration>| match (
                    before, now,
                ) {
                    (Some(b), Some(n)) => {
                        Some((n - b).as_secs_f64() * 1e6 / requests.max(1) as f64)
                    }
                    _ => None,
                };
            (
                each(self.client, cpu_time(None)),
                each(self.server, cpu_time(Some(self.pid))),
            )
        }
    }

    /// `12.3 µs`, or `?` for a figure that could not be read.
    pub fn micros(figure: Option<f64>) -> String {
        figure.map_or_else(|| "?".into(), |us| format!("{us:.1} µs"))
    }

    /// CPU time (user + system) the process `pid` (this one when `None`) has used so far,
    /// from /proc/<pid>/stat in clock ticks of 1/100 s (Linux's USER_HZ).
    pub fn cpu_time(pid: Option<u32>) -> Option<std::time::Duration> {
        let path = match pid {
            Some(pid) => format!("/proc/{pid}/stat"),
            None => "/proc/self/stat".into(),
        };
        let stat = std::fs::read_to_string(path).ok()?;
        // Fields after the command name, which may hold spaces: state is the first (field 3),
        // utime and stime are fields 14 and 15.
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(std::time::Duration::from_millis(ticks * 10))
    }

    /// The type of the filesystem holding `path` (from /proc/mounts): fsync costs depend on it.
    pub fn filesystem_of(path: &Path) -> String {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        mounts
            .lines()
            .filter_map(|l| {
                let mut fields = l.split_whitespace();
                let (device, at, kind) = (fields.next()?, fields.next()?, fields.next()?);
                path.starts_with(at)
                    .then(|| (at.len(), format!("{kind} on {device}")))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, fs)| fs)
            .unwrap_or_else(|| "filesystem unknown".into())
    }
}
