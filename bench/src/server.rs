//! Running the real release server: a private directory with its routes.yaml, the process (killed
//! when its guard drops, panics included), its public and operator addresses from the log,
//! readiness and `/metrics` (on the operator listener), and what it occupies (RSS, data
//! directory).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::sync::oneshot;

use crate::{client, BenchResult, Env};

/// How long a server may take to log its address and answer `/readyz` 200 (a restart on a
/// store of a million events replays its log first).
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// The pause between two `/readyz` polls.
const READY_POLL: Duration = Duration::from_millis(10);
/// The log level the server runs at: its default, and what an operator would run.
pub const LOG_LEVEL: &str = "info";
/// Log lines kept for an error message.
const TAIL_LINES: usize = 30;

/// A private directory: `data/` (the store), `sinks/` (file sinks), `routes.yaml`.
pub struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> BenchResult<Site> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-bench-")
            .tempdir()?;
        std::fs::create_dir(dir.path().join("sinks"))?;
        Ok(Site { dir })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A file sink's path: outside the data directory, so it never counts as store size.
    pub fn sink_path(&self, workspace: &str, sink: &str) -> PathBuf {
        self.dir
            .path()
            .join("sinks")
            .join(format!("{workspace}-{sink}.jsonl"))
    }

    /// The `server:` section every scenario shares, plus `extra` settings (indented lines).
    pub fn server_section(&self, env: &Env, extra: &[&str]) -> String {
        let mut y = String::from("server:\n  listen: \"127.0.0.1:0\"\n");
        y += "  admin_listen: \"127.0.0.1:0\"\n";
        y += &format!("  data_dir: {}\n", quote(&self.data_dir()));
        y += &format!("  plugins_dir: {}\n", quote(&env.profile_dir));
        for line in extra {
            y += &format!("  {line}\n");
        }
        y
    }

    /// Writes routes.yaml; returns its path.
    pub fn write_config(&self, yaml: &str) -> BenchResult<PathBuf> {
        let path = self.dir.path().join("routes.yaml");
        std::fs::write(&path, yaml)?;
        Ok(path)
    }
}

/// A path as a YAML double-quoted scalar (JSON string syntax is valid YAML).
pub fn quote(path: &Path) -> String {
    serde_json::Value::String(path.to_string_lossy().into_owned()).to_string()
}

/// What the server has logged: counts, the first warnings and errors, and the last lines.
#[derive(Default)]
struct Log {
    lines: u64,
    warnings: u64,
    errors: u64,
    first_problems: Vec<String>,
    tail: VecDeque<String>,
}

impl Log {
    fn push(&mut self, line: String) {
        self.lines += 1;
        // tracing's format: `TIMESTAMP LEVEL target: message`.
        match line.split_whitespace().nth(1) {
            Some("WARN") => self.warnings += 1,
            Some("ERROR") => self.errors += 1,
            _ => {}
        }
        if matches!(line.split_whitespace().nth(1), Some("WARN" | "ERROR"))
            && self.first_problems.len() < 3
        {
            self.first_problems.push(line.clone());
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

/// A running `switchyard serve`; killed on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    /// The operator listener: `/readyz`, `/metrics`.
    admin_addr: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl Server {
    /// Starts `switchyard serve --config config` and waits (against a deadline) for its two
    /// addresses in the log and `/readyz` 200.
    pub async fn start(env: &Env, config: &Path) -> BenchResult<Server> {
        let mut child = Command::new(&env.binary)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", LOG_LEVEL)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env.binary.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let log = Arc::new(Mutex::new(Log::default()));
        let (addr_tx, addr_rx) = oneshot::channel();
        let reader_log = log.clone();
        // Drains stderr for the server's whole life: a full pipe would block its logging.
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            let (mut public, mut operator) = (None, None);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                public = public.or_else(|| logged_addr(&line, PUBLIC_LINE));
                operator = operator.or_else(|| logged_addr(&line, OPERATOR_LINE));
                if let (Some(public), Some(operator)) = (public, operator) {
                    if let Some(tx) = addr_tx.take() {
                        let _ = tx.send((public, operator));
                    }
                }
                if let Ok(mut log) = reader_log.lock() {
                    log.push(line);
                }
            }
        });
        // From here on, an early return drops the guard, which kills the process.
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + START_DEADLINE;
        (server.addr, server.admin_addr) =
            match tokio::time::timeout_at(deadline.into(), addr_rx).await {
                Ok(Ok(addrs)) => addrs,
                Ok(Err(_)) => return Err(server.failure("exited before logging its addresses")),
                Err(_) => {
                    return Err(server.failure(&format!(
                        "did not log `{PUBLIC_LINE} addr=` and `{OPERATOR_LINE} addr=` within \
                         {START_DEADLINE:?}"
                    )))
                }
            };
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(server.failure(&format!("exited ({status}) before it was ready")));
            }
            if let Ok((StatusCode::OK, _)) = client::get(server.admin_addr, "/readyz").await {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(server.failure(&format!(
                    "/readyz did not answer 200 within {START_DEADLINE:?}"
                )));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn failure(&self, what: &str) -> crate::BenchError {
        let tail = self
            .log
            .lock()
            .map(|log| log.tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        format!("the server {what}\n--- server log (tail) ---\n{tail}").into()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The operator listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Stops the server as an operator would (SIGTERM), killing it if it is still running
    /// after [`STOP_DEADLINE`].
    pub async fn stop(mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        if term.is_ok_and(|s| s.success()) {
            let deadline = Instant::now() + STOP_DEADLINE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                tokio::time::sleep(READY_POLL).await;
            }
        }
        // Drop kills it.
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> BenchResult<Metrics> {
        match client::get(self.admin_addr, "/metrics").await? {
            (StatusCode::OK, text) => Ok(Metrics::parse(&text)),
            (status, text) => Err(format!("/metrics answered {status}: {text}").into()),
        }
    }

    /// The server's resident set size (VmRSS in /proc/<pid>/status).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// The server's peak resident set size so far (VmHWM in /proc/<pid>/status).
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// `12034 log lines, 0 WARN, 0 ERROR`, plus the first warnings or errors if there were any.
    pub fn log_summary(&self) -> (String, Vec<String>) {
        match self.log.lock() {
            Ok(log) => (
                format!(
                    "{} log lines, {} WARN, {} ERROR",
                    log.lines, log.warnings, log.errors
                ),
                log.first_problems.clone(),
            ),
            Err(_) => ("log unavailable".into(), Vec::new()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The log lines that give the public and operator addresses (`... addr=127.0.0.1:PORT`).
const PUBLIC_LINE: &str = "switchyard is listening";
const OPERATOR_LINE: &str = "operator listener ready";

/// The address in a `{message} addr=127.0.0.1:PORT` log line.
fn logged_addr(line: &str, message: &str) -> Option<SocketAddr> {
    if !line.contains(message) {
        return None;
    }
    let (_, rest) = line.split_once("addr=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A `/metrics` scrape: (name, labels, value) per sample.
pub struct Metrics {
    samples: Vec<(String, String, f64)>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let value: f64 = value.trim().parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                Some((name.to_owned(), labels.to_owned(), value))
            })
            .collect();
        Metrics { samples }
    }

    /// The sum of `name` over every label set that contains all of `labels` (`key="value"`).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|want| l.contains(want)))
            .map(|(_, _, v)| v)
            // Plus 0.0: an empty f64 sum is -0.0, which prints as "-0".
            .sum::<f64>()
            + 0.0
    }
}

impl Metrics {
    /// The largest value of `name` over its label sets (0 when there is none).
    pub fn max(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| *v)
            .fold(0.0, f64::max)
    }
}

/// Bytes under `dir`: (sum of file lengths, blocks allocated on disk).
pub fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                apparent += meta.len();
                allocated += meta.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_addresses_in_the_log() {
        let line = "2024-05-01T10:00:00.000000Z  INFO switchyard::server: switchyard is listening addr=127.0.0.1:40123 tls=false data_dir=/tmp/x";
        assert_eq!(
            logged_addr(line, PUBLIC_LINE),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(logged_addr(line, OPERATOR_LINE), None);
        let line = "2024-05-01T10:00:00.000000Z  INFO switchyard::server: operator listener ready addr=127.0.0.1:40124";
        assert_eq!(
            logged_addr(line, OPERATOR_LINE),
            Some("127.0.0.1:40124".parse().unwrap())
        );
        assert_eq!(
            logged_addr("INFO other addr=127.0.0.1:1", PUBLIC_LINE),
            None
        );
    }

    #[test]
    fn sums_metrics_by_label() {
        let m = Metrics::parse(
            "# TYPE x counter\nswitchyard_store_commits_total 12\n\
             switchyard_sink_queue_depth{workspace=\"a\",sink=\"slow\"} 7\n\
             switchyard_sink_queue_depth{workspace=\"b\",sink=\"events\"} 1\n# EOF\n",
        );
        assert_eq!(m.sum("switchyard_store_commits_total", &[]), 12.0);
        assert_eq!(m.sum("switchyard_sink_queue_depth", &[]), 8.0);
        assert_eq!(
            m.sum("switchyard_sink_queue_depth", &["workspace=\"a\""]),
            7.0
        );
    }
}
