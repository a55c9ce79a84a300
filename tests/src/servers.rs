//! Real brokers for the tests: `nats-server` (JetStream on, alone or as a cluster) and
//! `redis-server`, each on free loopback ports with its own temporary directory, killed on
//! drop. Start-up polls readiness (the NATS monitoring endpoint, Redis `PING`); nothing sleeps
//! a fixed time. Their output is captured, for failure messages.
//!
//! Test-side readers: [`nats_stream_messages`] (through `async-nats`, on a small runtime of its
//! own) and [`RedisServer::xrange`] / [`RedisServer::command`] (RESP spoken directly).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::capture::tail;
use crate::{tool, Capture, Value, START_DEADLINE};

/// The pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// How long one probe (an HTTP GET, a PING) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A loopback port nothing listens on right now, for a server that must be told its port.
///
/// Chosen below the kernel's ephemeral range: a port from that range (what binding port 0
/// gives) can be taken between our check and the server's bind by any outgoing connection or
/// any other `:0` listener of the suite, which once made a nats-server's cluster port clash.
/// Below it only other explicit picks compete, and those come from this counter, which
/// starts at an offset of the process id so two test binaries do not walk the same ports.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let (low, high) = explicit_port_range();
    let span = u32::from(high - low);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = low + u16::try_from(offset).expect("offset < span <= u16::MAX");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {low} and {high}");
}

/// `[low, high)`: the ports from 10000 up to where the kernel's ephemeral range starts
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768 by default).
fn explicit_port_range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_start > 12000 {
        (10000, ephemeral_start)
    } else {
        // An unusual kernel setting: fall back to the ports above the ephemeral range's
        // default end rather than fail.
        (61000, 65535)
    }
}

/// One server process with its output captured; killed (SIGKILL) and reaped on drop.
pub(crate) struct Process {
    child: Option<Child>,
    stdout: Capture,
    stderr: Capture,
}

impl Process {
    pub(crate) fn spawn(mut command: Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Process {
            stdout: Capture::drain(child.stdout.take().expect("piped stdout")),
            stderr: Capture::drain(child.stderr.take().expect("piped stderr")),
            child: Some(child),
        }
    }

    pub(crate) fn log(&self) -> String {
        format!("{}{}", self.stdout.text(), self.stderr.text())
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory")
}

/// Polls `ready` until it holds; panics with the process's log if the process exits or the
/// deadline passes first.
pub(crate) fn wait_ready(
    what: &str,
    process: &mut Process,
    mut ready: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let last = match ready() {
            Ok(()) => return,
            Err(why) => why,
        };
        if !process.is_running() {
            panic!(
                "{what} exited before it was ready\n--- log ---\n{}",
                process.log()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "{what} was not ready within {START_DEADLINE:?} (last: {last})\n--- log ---\n{}",
                tail(&process.log(), 60)
            );
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
}

/// `GET http://127.0.0.1:port{path}`: the status and body.
pub(crate) fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PROBE_TIMEOUT))
        .build()
        .into();
    let mut answer = agent
        .get(format!("http://127.0.0.1:{port}{path}"))
        .call()
        .map_err(|e| e.to_string())?;
    let status = answer.status().as_u16();
    let body = answer
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// NATS
// ---------------------------------------------------------------------------------------------

/// PEM files of a fresh test CA and of a certificate it issued for 127.0.0.1, with its key.
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn new() -> TestCerts {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = temp_dir("switchyard-certs-");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (ca_params.distinguished_name).push(DnType::CommonName, "switchyard test CA");
        let ca = ca_params.self_signed(&ca_key).expect("a CA");
        let key = KeyPair::generate().expect("a server key");
        let issued = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("parameters")
            .signed_by(&key, &ca, &ca_key)
            .expect("a server certificate");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write a PEM file");
            path
        };
        TestCerts {
            ca: write("ca.pem", ca.pem()),
            cert: write("cert.pem", issued.pem()),
            key: write("key.pem", key.serialize_pem()),
            _dir: dir,
        }
    }
}

impl Default for TestCerts {
    fn default() -> TestCerts {
        TestCerts::new()
    }
}

/// One nats-server process and what it needs to start again the same way.
struct NatsNode {
    name: String,
    port: u16,
    monitor_port: u16,
    /// `--cluster`, `--routes`... for a cluster member, `--tls`... for a TLS listener.
    extra: Vec<String>,
    store: tempfile::TempDir,
    process: Option<Process>,
}

impl NatsNode {
    fn new(name: &str, port: u16, extra: Vec<String>) -> NatsNode {
        NatsNode {
            name: name.to_owned(),
            port,
            monitor_port: free_port(),
            extra,
            store: temp_dir("switchyard-nats-"),
            process: None,
        }
    }

    fn launch(&mut self) {
        let mut command = Command::new(tool("nats-server"));
        command
            .args(["-js", "-a", "127.0.0.1", "-n", &self.name])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .arg("-sd")
            .arg(self.store.path())
            .args(&self.extra);
        self.process = Some(Process::spawn(command));
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn wait_healthy(&mut self) {
        let what = format!("nats-server {} on port {}", self.name, self.port);
        let probe = NatsNode::probe(self.monitor_port);
        wait_ready(&what, self.process.as_mut().expect("launched"), probe);
    }

    /// `/healthz` answers 200: the server, and JetStream on it, are up.
    fn probe(monitor_port: u16) -> impl FnMut() -> Result<(), String> {
        move || match http_get(monitor_port, "/healthz")? {
            (200, _) => Ok(()),
            (status, body) => Err(format!("/healthz answered {status}: {body}")),
        }
    }

    fn log(&self) -> String {
        self.process.as_ref().map(Process::log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

/// A single JetStream-enabled `nats-server` on loopback.
pub struct NatsServer {
    node: NatsNode,
}

impl NatsServer {
    /// Starts on a free port; returns once `/healthz` answers 200.
    pub fn start() -> NatsServer {
        NatsServer::start_on(free_port())
    }

    /// Starts on `port` (say one a sink was configured with before the server existed).
    pub fn start_on(port: u16) -> NatsServer {
        NatsServer::start_with(port, Vec::new())
    }

    /// Starts on a free port, taking only TLS connections, with the certificate `certs`
    /// issued for 127.0.0.1.
    pub fn start_tls(certs: &TestCerts) -> NatsServer {
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        let options = vec![
            "--tls".to_owned(),
            "--tlscert".to_owned(),
            path(&certs.cert),
            "--tlskey".to_owned(),
            path(&certs.key),
        ];
        NatsServer::start_with(free_port(), options)
    }

    fn start_with(port: u16, options: Vec<String>) -> NatsServer {
        let mut server = NatsServer {
            node: NatsNode::new("node0", port, options),
        };
        server.node.launch();
        server.node.wait_healthy();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// `tls://127.0.0.1:PORT`, for a server started with [`NatsServer::start_tls`].
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.node.port)
    }

    /// Messages the JetStream stream `name` holds, read from the monitoring port (plain
    /// HTTP whatever the client port speaks); 0 when there is no such stream yet.
    pub fn stream_messages(&self, name: &str) -> u64 {
        let (status, body) = http_get(self.node.monitor_port, "/jsz?streams=true")
            .unwrap_or_else(|e| panic!("nats-server monitoring: {e}"));
        assert_eq!(status, 200, "/jsz answered {status}: {body}");
        let jsz: Value = serde_json::from_str(&body).expect("/jsz is JSON");
        let accounts = jsz["account_details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        accounts
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == name)
            .and_then(|s| s["state"]["messages"].as_u64())
            .unwrap_or(0)
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// SIGKILL, and wait for it to go.
    pub fn kill(&mut self) {
        self.node.kill();
    }

    /// Starts it again on the same port and store directory (streams survive).
    pub fn restart(&mut self) {
        self.node.kill();
        self.node.launch();
        self.node.wait_healthy();
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        self.node.log()
    }
}

/// `n` nats-servers on loopback forming one JetStream cluster (`node0`..`node{n-1}`).
pub struct NatsCluster {
    nodes: Vec<NatsNode>,
}

impl NatsCluster {
    /// Starts them all; returns once every node answers `/healthz` 200 and JetStream has a
    /// meta leader.
    pub fn start(n: usize) -> NatsCluster {
        assert!(n >= 1, "a cluster needs at least one node");
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let mut nodes: Vec<NatsNode> = (0..n)
            .map(|i| {
                let others: Vec<&str> = (routes.iter().enumerate())
                    .filter(|(j, _)| *j != i)
                    .map(|(_, r)| r.as_str())
                    .collect();
                let mut extra = vec![
                    "--cluster_name".to_owned(),
                    "switchyard-test".to_owned(),
                    "--cluster".to_owned(),
                    routes[i].clone(),
                ];
                if !others.is_empty() {
                    extra.push("--routes".to_owned());
                    extra.push(others.join(","));
                }
                NatsNode::new(&format!("node{i}"), free_port(), extra)
            })
            .collect();
        for node in &mut nodes {
            node.launch();
        }
        let mut cluster = NatsCluster { nodes };
        for node in &mut cluster.nodes {
            node.wait_healthy();
        }
        cluster.wait_for_leader();
        cluster
    }

    /// Polls `/jsz` of the running nodes until one names a meta leader.
    pub fn wait_for_leader(&mut self) {
        let ports: Vec<u16> = (self.nodes.iter())
            .filter(|n| n.process.is_some())
            .map(|n| n.monitor_port)
            .collect();
        let probe = move || {
            for port in &ports {
                let (status, body) = http_get(*port, "/jsz")?;
                let jsz: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let leader = jsz["meta_cluster"]["leader"].as_str().unwrap_or_default();
                if status == 200 && !leader.is_empty() {
                    return Ok(());
                }
            }
            Err("no node names a JetStream meta leader".to_owned())
        };
        let first = (self.nodes.iter_mut())
            .find_map(|n| n.process.as_mut())
            .expect("a node runs");
        wait_ready("the nats cluster", first, probe);
    }

    /// Every node's `nats://127.0.0.1:PORT`, killed ones included.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsNode::url).collect()
    }

    /// SIGKILLs node `i`.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Every node's output so far, each under its name.
    pub fn log(&self) -> String {
        (self.nodes.iter())
            .map(|n| format!("--- {} ---\n{}", n.name, n.log()))
            .collect()
    }
}

/// A message read back from a JetStream stream.
#[derive(Debug, Clone)]
pub struct NatsMessage {
    pub subject: String,
    pub sequence: u64,
    /// `Nats-Msg-Id`, if set.
    pub msg_id: Option<String>,
    /// The `traceparent` header, if set (traces on).
    pub traceparent: Option<String>,
    pub payload: Value,
}

/// A runtime for the test side's async-nats calls.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}

/// Every message of `stream`, in order; empty when the stream does not exist (yet). Panics if
/// the servers at `urls` cannot be reached.
pub fn nats_stream_messages(urls: &[String], stream: &str) -> Vec<NatsMessage> {
    let servers: Vec<async_nats::ServerAddr> = (urls.iter())
        .map(|u| {
            u.parse()
                .unwrap_or_else(|e| panic!("bad NATS URL {u}: {e}"))
        })
        .collect();
    runtime().block_on(async {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(PROBE_TIMEOUT)
            .connect(servers)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {urls:?}: {e}"));
        let jetstream = async_nats::jetstream::new(client);
        let Ok(mut handle) = jetstream.get_stream(stream).await else {
            return Vec::new();
        };
        let state = handle.info().await.expect("stream info").state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            let Ok(message) = handle.get_raw_message(sequence).await else {
                continue;
            };
            let payload = serde_json::from_slice(&message.payload).unwrap_or_else(|e| {
                panic!("stream {stream}, sequence {sequence}: the payload is not JSON ({e})")
            });
            messages.push(NatsMessage {
                subject: message.subject.to_string(),
                sequence,
                msg_id: (message.headers.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned()),
                traceparent: (message.headers.get("traceparent")).map(|v| v.as_str().to_owned()),
                payload,
            });
        }
        messages
    })
}

/// Polls the stream until `done` holds for its messages; panics with what it holds at the
/// deadline.
#[track_caller]
pub fn wait_for_nats_messages(
    urls: &[String],
    stream: &str,
    within: Duration,
    done: impl Fn(&[NatsMessage]) -> bool,
) -> Vec<NatsMessage> {
    let deadline = Instant::now() + within;
    loop {
        let messages = nats_stream_messages(urls, stream);
        if done(&messages) {
            return messages;
        }
        if Instant::now() >= deadline {
            let shown: Vec<String> = (messages.iter())
                .map(|m| format!("{} {} {:?}", m.sequence, m.subject, m.msg_id))
                .collect();
            panic!(
                "stream {stream} never held what was waited for within {within:?}; it holds {}:\n{}",
                messages.len(),
                shown.join("\n")
            );
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/// A `redis-server` on loopback, no persistence.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    process: Process,
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// A bulk or simple string as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// One stream entry: its id and its field/value pairs.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Vec<(String, String)>,
}

impl StreamEntry {
    pub fn field(&self, name: &str) -> Option<&str> {
        (self.fields.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RedisServer {
    /// Starts on a free port; returns once it answers `PING` with `PONG`.
    pub fn start() -> RedisServer {
        RedisServer::start_on(free_port())
    }

    pub fn start_on(port: u16) -> RedisServer {
        let dir = temp_dir("switchyard-redis-");
        let process = RedisServer::launch(port, &dir);
        let mut server = RedisServer { port, dir, process };
        server.wait_ready();
        server
    }

    fn launch(port: u16, dir: &tempfile::TempDir) -> Process {
        let mut command = Command::new(tool("redis-server"));
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no"]);
        Process::spawn(command)
    }

    fn wait_ready(&mut self) {
        let port = self.port;
        let what = format!("redis-server on port {port}");
        wait_ready(&what, &mut self.process, || {
            match resp_command(port, &["PING"]).map_err(|e| e.to_string())? {
                Resp::Simple(pong) if pong == "PONG" => Ok(()),
                other => Err(format!("PING answered {other:?}")),
            }
        });
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL, and wait for it to go.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.process.kill();
        self.process = RedisServer::launch(self.port, &self.dir);
        self.wait_ready();
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Sends one command and reads its reply; panics if the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Resp {
        resp_command(self.port, args)
            .unwrap_or_else(|e| panic!("redis {args:?} failed: {e}\n{}", self.log()))
    }

    /// `XRANGE key - +`: every entry of the stream (none when it does not exist).
    pub fn xrange(&self, key: &str) -> Vec<StreamEntry> {
        let Resp::Array(Some(entries)) = self.command(&["XRANGE", key, "-", "+"]) else {
            panic!("XRANGE {key} did not answer an array");
        };
        (entries.into_iter())
            .map(|entry| {
                let Resp::Array(Some(mut parts)) = entry else {
                    panic!("an XRANGE entry is not an array: {entry:?}");
                };
                let fields = match parts.pop() {
                    Some(Resp::Array(Some(flat))) => flat
                        .chunks(2)
                        .map(|pair| {
                            let text = |r: &Resp| r.text().unwrap_or_default();
                            (text(&pair[0]), pair.get(1).map(text).unwrap_or_default())
                        })
                        .collect(),
                    other => panic!("XRANGE fields are not an array: {other:?}"),
                };
                let id = parts.pop().and_then(|r| r.text()).unwrap_or_default();
                StreamEntry { id, fields }
            })
            .collect()
    }

    /// Polls `XRANGE key` until `done` holds; panics with what it holds at the deadline.
    #[track_caller]
    pub fn wait_for_entries(
        &self,
        key: &str,
        within: Duration,
        done: impl Fn(&[StreamEntry]) -> bool,
    ) -> Vec<StreamEntry> {
        let deadline = Instant::now() + within;
        loop {
            let entries = self.xrange(key);
            if done(&entries) {
                return entries;
            }
            if Instant::now() >= deadline {
                let ids: Vec<&str> = entries.iter().filter_map(|e| e.field("id")).collect();
                panic!(
                    "stream {key} never held what was waited for within {within:?}; it holds {} \
                     entries: {ids:?}",
                    entries.len()
                );
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }
}

/// One command over a new connection, RESP2.
fn resp_command(port: u16, args: &[&str]) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    read_resp(&mut BufReader::new(stream))
}

fn read_resp(reader: &mut impl BufRead) -> std::io::Result<Resp> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(bad("the connection closed before a reply"));
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1.min(line.len()));
    let number = || rest.parse::<i64>().map_err(|_| bad("a bad length"));
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Integer(number()?),
        "$" => match number()? {
            n if n < 0 => Resp::Bulk(None),
            n => {
                let mut bytes = vec![0; n as usize + 2];
                reader.read_exact(&mut bytes)?;
                bytes.truncate(n as usize);
                Resp::Bulk(Some(bytes))
            }
        },
        "*" => match number()? {
            n if n < 0 => Resp::Array(None),
            n => Resp::Array(Some(
                (0..n)
                    .map(|_| read_resp(reader))
                    .collect::<Result<_, _>>()?,
            )),
        },
        _ => return Err(bad("an unknown reply type")),
    })
}
