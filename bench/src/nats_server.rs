//! A local `nats-server -js` for the cluster scenario: found on `PATH` or where Debian puts it,
//! started on a free loopback port with its store in a temporary directory, ready once it answers
//! with its `INFO` line, killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchResult;

/// How long `nats-server` may take to answer a connection with its `INFO` line.
const NATS_START_DEADLINE: Duration = Duration::from_secs(20);
const NATS_POLL: Duration = Duration::from_millis(10);
/// Where `nats-server` is looked for besides `PATH` (Debian installs it in /usr/sbin, which a
/// normal user's `PATH` often lacks).
const NATS_PLACES: [&str; 3] = [
    "/usr/sbin/nats-server",
    "/usr/local/bin/nats-server",
    "/usr/bin/nats-server",
];

/// `nats-server` on `PATH` or in the usual places.
pub fn find_nats_server() -> BenchResult<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"));
    on_path
        .chain(NATS_PLACES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "nats-server is not installed: the cluster scenario runs a local NATS JetStream server; install it (Debian/Ubuntu: `apt-get install nats-server`, v2.9 or later) or put `nats-server` on PATH"
                .into()
        })
}

/// A local `nats-server -js` on a free port with its store in a temp dir; killed on drop.
pub struct NatsServer {
    child: Child,
    addr: SocketAddr,
    /// The JetStream store and the server's log; removed on drop.
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts it and waits (against a deadline) until a connection gets its `INFO` line.
    pub async fn start(binary: &Path) -> BenchResult<NatsServer> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-bench-nats-")
            .tempdir()?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("nats-server.log"))?;
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path().join("jetstream"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut nats = NatsServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + NATS_START_DEADLINE;
        loop {
            if let Ok(Some(status)) = nats.child.try_wait() {
                return Err(nats.failure(&format!("exited ({status}) before it was ready")));
            }
            let addr = nats.addr;
            let info = tokio::task::spawn_blocking(move || read_info(addr)).await?;
            if info.is_ok() {
                return Ok(nats);
            }
            if Instant::now() >= deadline {
                let why = info.err().unwrap_or_default();
                return Err(nats.failure(&format!(
                    "did not answer with its INFO line within {NATS_START_DEADLINE:?} ({why})"
                )));
            }
            tokio::time::sleep(NATS_POLL).await;
        }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    fn failure(&self, what: &str) -> crate::BenchError {
        let mut log = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("nats-server.log")) {
            let _ = f.read_to_string(&mut log);
        }
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "nats-server on {} {what}\n--- nats-server log (tail) ---\n{}",
            self.addr,
            tail.join("\n")
        )
        .into()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects and reads the server's first line, which must be `INFO {...}`.
fn read_info(addr: SocketAddr) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| format!("reading INFO: {e}"))?;
    if line.starts_with("INFO ") {
        Ok(())
    } else {
        Err(format!("first line was `{}`", line.trim()))
    }
}

/// A port nothing listens on right now (the OS's pick for a throwaway listener).
fn free_port() -> BenchResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
