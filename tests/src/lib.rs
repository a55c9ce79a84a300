//! The harness for switchyard's end-to-end tests: the real `switchyard` binary, the real plugin
//! libraries loaded from disk, real HTTP on loopback.
//!
//! - [`artifacts`] builds the workspace once per test process and finds the binary and libraries.
//! - [`TestDir`] is one test's private directory: a plugins directory holding copies of the five
//!   real plugins (plus any fixture a loader test installs), the data directory, sink files and
//!   the routes file written from a [`Config`].
//! - [`Server`] runs `switchyard serve`, finds its public and operator addresses in its log,
//!   waits for it by polling `/readyz` on the operator listener, talks HTTP to both, and kills it
//!   on drop.
//! - [`VendorScheme`] signs deliveries with this crate's own HMAC-SHA256, independent of the
//!   server's code.
//! - [`SinkFile`] reads a file sink's JSON lines, polling until what a test waits for arrives.
//! - [`servers`] runs real `nats-server` and `redis-server` processes for the broker sinks.
//!
//! Nothing here sleeps to wait for something to happen: every wait polls a condition against a
//! deadline and panics with the server's log when the deadline passes.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
pub use serde_json::{json, Value};
use sha2::Sha256;

mod receiver;
pub use receiver::{Mode, Receiver, SinkRequest};
pub mod servers;
pub use servers::*;

/// How long a server may take to log its address and answer `/readyz` 200.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long an accepted event may take to reach a sink.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);
/// How long a command (`check`, `plugins`, a refused `serve`) may take to exit.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(20);
/// How long one HTTP exchange may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The pause between two polls of a condition that has no notification (a file, `/readyz`).
const POLL_INTERVAL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Building the workspace
// ---------------------------------------------------------------------------------------------

/// Where the build put what the tests run.
#[derive(Debug)]
pub struct Artifacts {
    /// The workspace root (the directory of the top-level Cargo.toml).
    pub workspace_root: PathBuf,
    /// `target/debug` (or the profile the tests were built with).
    pub profile_dir: PathBuf,
    /// `target/debug/switchyard`.
    pub binary: PathBuf,
}

impl Artifacts {
    /// A real vendor plugin as cargo built it: `target/debug/libswitchyard_<vendor>.so`.
    pub fn plugin(&self, vendor: &str) -> PathBuf {
        self.profile_dir
            .join(library_file_name(&format!("switchyard_{vendor}")))
    }

    /// A loader fixture as cargo built it: `target/debug/libfixture_<name>.so`.
    pub fn fixture(&self, name: &str) -> PathBuf {
        self.profile_dir
            .join(library_file_name(&format!("fixture_{name}")))
    }
}

/// `lib<stem>.so` on Linux (the platform's prefix and suffix elsewhere).
pub fn library_file_name(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds the whole workspace once per test process (`cargo test` alone does not build another
/// package's binary or cdylibs) and returns where everything is. Panics with cargo's output if
/// the build fails.
pub fn artifacts() -> &'static Artifacts {
    static BUILT: OnceLock<Result<Artifacts, String>> = OnceLock::new();
    match BUILT.get_or_init(build_workspace) {
        Ok(artifacts) => artifacts,
        Err(why) => panic!("{why}"),
    }
}

fn build_workspace() -> Result<Artifacts, String> {
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the e2e package has no parent directory")?
        .to_path_buf();
    let (target_dir, profile_dir) = locate_target_dir(&workspace_root)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--workspace")
        .arg("--manifest-path")
        .arg(workspace_root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The profile the tests themselves were built with: `debug` is cargo's dev profile.
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(other) => {
            command.args(["--profile", other]);
        }
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cargo:?} build --workspace: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{} build --workspace` failed ({}); the e2e tests need the binary and every plugin:\n{}{}",
            cargo.to_string_lossy(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let binary = profile_dir.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        return Err(format!(
            "cargo build succeeded but {} does not exist",
            binary.display()
        ));
    }
    Ok(Artifacts {
        workspace_root,
        profile_dir,
        binary,
    })
}

/// `(target dir, profile dir)`: from this test executable's own path, which cargo puts at
/// `<target>/<profile>/deps/<test>`, else from `CARGO_TARGET_DIR`, else `<workspace>/target`.
fn locate_target_dir(workspace_root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the test executable: {e}"))?;
    let deps = exe
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "deps"));
    if let Some(profile_dir) = deps.and_then(Path::parent) {
        if let Some(target_dir) = profile_dir.parent() {
            return Ok((target_dir.to_path_buf(), profile_dir.to_path_buf()));
        }
    }
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root.join(dir),
        None => workspace_root.join("target"),
    };
    let profile_dir = target_dir.join("debug");
    Ok((target_dir, profile_dir))
}

// ---------------------------------------------------------------------------------------------
// Vendors and signatures
// ---------------------------------------------------------------------------------------------

/// How a vendor signs a delivery, as its document (and plugin) says: hex HMAC-SHA256 of the raw
/// body in `header`, after `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorScheme {
    pub name: &'static str,
    pub header: &'static str,
    pub prefix: &'static str,
}

pub const WATSI: VendorScheme = VendorScheme {
    name: "watsi",
    header: "X-Watsi-Signature",
    prefix: "",
};
pub const WHATSABLE: VendorScheme = VendorScheme {
    name: "whatsable",
    header: "X-WhatsAble-Signature",
    prefix: "",
};
pub const WHATSSYNC: VendorScheme = VendorScheme {
    name: "whatssync",
    header: "X-Whatsync-Signature",
    prefix: "",
};
pub const WAPPCLOUD: VendorScheme = VendorScheme {
    name: "wappcloud",
    header: "X-Wappcloud-Signature",
    prefix: "sha256=",
};
pub const DOCSSMITH: VendorScheme = VendorScheme {
    name: "docssmith",
    header: "X-DocsSmith-Signature",
    prefix: "",
};
/// The `panics` loader fixture: loads fine, panics in `map_event`.
pub const PANICS: VendorScheme = VendorScheme {
    name: "panics",
    header: "X-Panics-Signature",
    prefix: "",
};

/// The five real vendors.
pub const VENDORS: [VendorScheme; 5] = [WATSI, WHATSABLE, WHATSSYNC, WAPPCLOUD, DOCSSMITH];

impl VendorScheme {
    /// The signature header's value for `body` under `secret`.
    pub fn signature(&self, secret: &str, body: &[u8]) -> String {
        format!(
            "{}{}",
            self.prefix,
            hmac_sha256_hex(secret.as_bytes(), body)
        )
    }
}

/// Hex HMAC-SHA256, computed here rather than by the server's code.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The secrets the standard workspaces give a vendor: `n` is 1 (current) or 2 (rotated).
pub fn secret(workspace: &str, vendor: &str, n: u32) -> String {
    format!("{workspace}-{vendor}-secret-{n}")
}

// ---------------------------------------------------------------------------------------------
// routes.yaml
// ---------------------------------------------------------------------------------------------

/// A routes.yaml to write into a [`TestDir`]: the server section always listens on
/// `127.0.0.1:0`, public and operator listener alike, with the directory's data and plugins
/// directories.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Cluster mode: NATS servers and replicas.
    nats_store: Option<(Vec<String>, usize)>,
    max_body_bytes: Option<usize>,
    admin_token: Option<String>,
    retention: Option<String>,
    tls: Option<(PathBuf, PathBuf)>,
    trusted_proxies: Vec<String>,
    max_connections: Option<usize>,
    max_inflight_body_bytes: Option<usize>,
    header_read_timeout: Option<String>,
    workspaces: Vec<Workspace>,
}

#[derive(Debug, Clone)]
pub struct Workspace {
    name: String,
    dedupe_window: Option<String>,
    vendors: Vec<Vendor>,
    sinks: Vec<(String, SinkKind)>,
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Vendor {
    name: String,
    secrets: Vec<String>,
    signature_header: Option<String>,
    allow_ips: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SinkKind {
    File,
    Stdout,
    Http(HttpSink),
    Nats(NatsSink),
    Redis(RedisSink),
}

/// A `nats` sink: its servers and subject template, and a delivery policy for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSink {
    servers: Vec<String>,
    subject: String,
    stream: Option<String>,
    timeout: String,
    retry: Vec<String>,
    max_backoff: Option<String>,
}

impl NatsSink {
    /// Publishes to `servers` on `subject` (a template), 2 s timeout, no stream of its own;
    /// retried every 20 ms (jittered) up to 50 times, sink-wide backoff at most 200 ms.
    pub fn new(servers: &[String], subject: &str) -> NatsSink {
        NatsSink {
            servers: servers.to_vec(),
            subject: subject.to_owned(),
            stream: None,
            timeout: "2s".into(),
            retry: vec!["20ms".into(); 50],
            max_backoff: Some("200ms".into()),
        }
    }

    /// The stream the sink creates when absent.
    pub fn stream(mut self, name: &str) -> NatsSink {
        self.stream = Some(name.to_owned());
        self
    }

    pub fn timeout(mut self, timeout: &str) -> NatsSink {
        self.timeout = timeout.to_owned();
        self
    }
}

/// A `redis` sink: its URL and stream template, and a delivery policy for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSink {
    url: String,
    stream: String,
    max_len: Option<usize>,
    dedupe_ttl: Option<String>,
    timeout: String,
    retry: Vec<String>,
    max_backoff: Option<String>,
}

impl RedisSink {
    /// Appends to `stream` (a template) at `url`, 2 s timeout, the server's defaults for
    /// `max_len` and `dedupe_ttl`; retried like [`NatsSink::new`].
    pub fn new(url: &str, stream: &str) -> RedisSink {
        RedisSink {
            url: url.to_owned(),
            stream: stream.to_owned(),
            max_len: None,
            dedupe_ttl: None,
            timeout: "2s".into(),
            retry: vec!["20ms".into(); 50],
            max_backoff: Some("200ms".into()),
        }
    }

    pub fn max_len(mut self, n: usize) -> RedisSink {
        self.max_len = Some(n);
        self
    }

    pub fn dedupe_ttl(mut self, ttl: &str) -> RedisSink {
        self.dedupe_ttl = Some(ttl.to_owned());
        self
    }
}

/// An `http` sink: where it posts, how it signs, and its delivery policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSink {
    url: String,
    secret: Option<String>,
    timeout: String,
    retry: Vec<String>,
    /// `None`: the server's default (several in flight).
    concurrency: Option<usize>,
    ordered: bool,
    max_backoff: Option<String>,
    max_age: Option<String>,
}

impl HttpSink {
    /// Posts to `url`, unsigned, 5 s timeout; a poison event is retried every 20 ms
    /// (jittered) up to 50 times; the server's defaults for concurrency and backoff.
    pub fn new(url: &str) -> HttpSink {
        HttpSink {
            url: url.to_owned(),
            secret: None,
            timeout: "5s".into(),
            retry: vec!["20ms".into(); 50],
            concurrency: None,
            ordered: false,
            max_backoff: None,
            max_age: None,
        }
    }

    pub fn concurrency(mut self, n: usize) -> HttpSink {
        self.concurrency = Some(n);
        self
    }

    /// Strictly one at a time, in accept order.
    pub fn ordered(mut self) -> HttpSink {
        self.ordered = true;
        self
    }

    pub fn max_backoff(mut self, wait: &str) -> HttpSink {
        self.max_backoff = Some(wait.to_owned());
        self
    }

    /// An event still failing this long after its accept becomes a dead letter.
    pub fn max_age(mut self, age: &str) -> HttpSink {
        self.max_age = Some(age.to_owned());
        self
    }

    pub fn secret(mut self, secret: &str) -> HttpSink {
        self.secret = Some(secret.to_owned());
        self
    }

    pub fn timeout(mut self, timeout: &str) -> HttpSink {
        self.timeout = timeout.to_owned();
        self
    }

    /// The waits before each retry, e.g. `["20ms", "20ms"]`: two retries, then dead.
    pub fn retry(mut self, waits: &[&str]) -> HttpSink {
        self.retry = waits.iter().map(|w| (*w).to_owned()).collect();
        self
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    vendors: Option<Vec<String>>,
    event_type: String,
    to: Vec<String>,
}

impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    /// How long accepted events and delivery records are kept, e.g. `2s`.
    pub fn retention(mut self, retention: &str) -> Config {
        self.retention = Some(retention.to_owned());
        self
    }

    pub fn max_body_bytes(mut self, bytes: usize) -> Config {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// Turns the operator API on with this bearer token.
    pub fn admin_token(mut self, token: &str) -> Config {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// Serves the public listener over TLS with these PEM files.
    pub fn tls(mut self, cert: &Path, key: &Path) -> Config {
        self.tls = Some((cert.to_owned(), key.to_owned()));
        self
    }

    pub fn trusted_proxies(mut self, nets: &[&str]) -> Config {
        self.trusted_proxies = nets.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    pub fn max_connections(mut self, n: usize) -> Config {
        self.max_connections = Some(n);
        self
    }

    pub fn max_inflight_body_bytes(mut self, bytes: usize) -> Config {
        self.max_inflight_body_bytes = Some(bytes);
        self
    }

    /// `server.header_read_timeout`, such as `"2s"`.
    pub fn header_read_timeout(mut self, timeout: &str) -> Config {
        self.header_read_timeout = Some(timeout.to_owned());
        self
    }

    pub fn workspace(mut self, workspace: Workspace) -> Config {
        self.workspaces.push(workspace);
        self
    }

    /// Cluster mode on these NATS servers, with a 3 s lease so that a killed instance's
    /// share of a queue moves to the others within seconds.
    pub fn nats_store(mut self, servers: &[String], replicas: usize) -> Config {
        self.nats_store = Some((servers.to_vec(), replicas));
        self
    }

    /// The YAML text, with the directory's absolute paths.
    pub fn render(&self, dir: &TestDir) -> String {
        let mut y = String::new();
        let q = quote;
        writeln!(y, "server:").unwrap();
        writeln!(y, "  listen: {}", q("127.0.0.1:0")).unwrap();
        writeln!(y, "  admin_listen: {}", q("127.0.0.1:0")).unwrap();
        writeln!(y, "  data_dir: {}", q(&dir.data_dir().to_string_lossy())).unwrap();
        writeln!(
            y,
            "  plugins_dir: {}",
            q(&dir.plugins_dir().to_string_lossy())
        )
        .unwrap();
        if let Some(bytes) = self.max_body_bytes {
            writeln!(y, "  max_body_bytes: {bytes}").unwrap();
        }
        if let Some((servers, replicas)) = &self.nats_store {
            let servers = list(servers);
            writeln!(
                y,
                "  store: {{ type: nats, servers: {servers}, replicas: {replicas}, lease: 3s }}"
            )
            .unwrap();
        }
        if let Some(token) = &self.admin_token {
            writeln!(y, "  admin_token: {}", q(token)).unwrap();
        }
        if let Some(retention) = &self.retention {
            writeln!(y, "  retention: {}", q(retention)).unwrap();
        }
        if let Some((cert, key)) = &self.tls {
            let (cert, key) = (q(&cert.to_string_lossy()), q(&key.to_string_lossy()));
            writeln!(y, "  tls: {{ cert: {cert}, key: {key} }}").unwrap();
        }
        if !self.trusted_proxies.is_empty() {
            writeln!(y, "  trusted_proxies: {}", list(&self.trusted_proxies)).unwrap();
        }
        if let Some(n) = self.max_connections {
            writeln!(y, "  max_connections: {n}").unwrap();
        }
        if let Some(bytes) = self.max_inflight_body_bytes {
            writeln!(y, "  max_inflight_body_bytes: {bytes}").unwrap();
        }
        if let Some(timeout) = &self.header_read_timeout {
            writeln!(y, "  header_read_timeout: {}", q(timeout)).unwrap();
        }
        writeln!(y, "workspaces:").unwrap();
        for ws in &self.workspaces {
            writeln!(y, "  {}:", q(&ws.name)).unwrap();
            if let Some(window) = &ws.dedupe_window {
                writeln!(y, "    dedupe_window: {}", q(window)).unwrap();
            }
            writeln!(y, "    vendors:").unwrap();
            for v in &ws.vendors {
                writeln!(y, "      {}:", q(&v.name)).unwrap();
                writeln!(y, "        secrets: {}", list(&v.secrets)).unwrap();
                if let Some(header) = &v.signature_header {
                    writeln!(y, "        signature_header: {}", q(header)).unwrap();
                }
                if !v.allow_ips.is_empty() {
                    writeln!(y, "        allow_ips: {}", list(&v.allow_ips)).unwrap();
                }
            }
            writeln!(y, "    sinks:").unwrap();
            for (name, kind) in &ws.sinks {
                match kind {
                    SinkKind::File => {
                        let path = dir.sink_path(&ws.name, name);
                        writeln!(
                            y,
                            "      {}: {{ type: file, path: {} }}",
                            q(name),
                            q(&path.to_string_lossy())
                        )
                        .unwrap();
                    }
                    SinkKind::Stdout => {
                        writeln!(y, "      {}: {{ type: stdout }}", q(name)).unwrap();
                    }
                    SinkKind::Http(http) => {
                        writeln!(y, "      {}:", q(name)).unwrap();
                        writeln!(y, "        type: http").unwrap();
                        writeln!(y, "        url: {}", q(&http.url)).unwrap();
                        writeln!(y, "        timeout: {}", q(&http.timeout)).unwrap();
                        writeln!(y, "        retry: {}", list(&http.retry)).unwrap();
                        if let Some(n) = http.concurrency {
                            writeln!(y, "        concurrency: {n}").unwrap();
                        }
                        if http.ordered {
                            writeln!(y, "        ordered: true").unwrap();
                        }
                        if let Some(wait) = &http.max_backoff {
                            writeln!(y, "        max_backoff: {}", q(wait)).unwrap();
                        }
                        if let Some(age) = &http.max_age {
                            writeln!(y, "        max_age: {}", q(age)).unwrap();
                        }
                        if let Some(secret) = &http.secret {
                            writeln!(y, "        secret: {}", q(secret)).unwrap();
                        }
                    }
                    SinkKind::Nats(nats) => {
                        writeln!(y, "      {}:", q(name)).unwrap();
                        writeln!(y, "        type: nats").unwrap();
                        writeln!(y, "        servers: {}", list(&nats.servers)).unwrap();
                        writeln!(y, "        subject: {}", q(&nats.subject)).unwrap();
                        if let Some(stream) = &nats.stream {
                            writeln!(y, "        stream: {}", q(stream)).unwrap();
                        }
                        writeln!(y, "        timeout: {}", q(&nats.timeout)).unwrap();
                        writeln!(y, "        retry: {}", list(&nats.retry)).unwrap();
                        if let Some(wait) = &nats.max_backoff {
                            writeln!(y, "        max_backoff: {}", q(wait)).unwrap();
                        }
                    }
                    SinkKind::Redis(redis) => {
                        writeln!(y, "      {}:", q(name)).unwrap();
                        writeln!(y, "        type: redis").unwrap();
                        writeln!(y, "        url: {}", q(&redis.url)).unwrap();
                        writeln!(y, "        stream: {}", q(&redis.stream)).unwrap();
                        if let Some(n) = redis.max_len {
                            writeln!(y, "        max_len: {n}").unwrap();
                        }
                        if let Some(ttl) = &redis.dedupe_ttl {
                            writeln!(y, "        dedupe_ttl: {}", q(ttl)).unwrap();
                        }
                        writeln!(y, "        timeout: {}", q(&redis.timeout)).unwrap();
                        writeln!(y, "        retry: {}", list(&redis.retry)).unwrap();
                        if let Some(wait) = &redis.max_backoff {
                            writeln!(y, "        max_backoff: {}", q(wait)).unwrap();
                        }
                    }
                }
            }
            writeln!(y, "    routes:").unwrap();
            for route in &ws.routes {
                match &route.vendors {
                    Some(vendors) => writeln!(
                        y,
                        "      - match: {{ vendor: {}, type: {} }}",
                        list(vendors),
                        q(&route.event_type)
                    ),
                    None => writeln!(y, "      - match: {{ type: {} }}", q(&route.event_type)),
                }
                .unwrap();
                writeln!(y, "        to: {}", list(&route.to)).unwrap();
            }
        }
        y
    }
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

impl Workspace {
    pub fn new(name: &str) -> Workspace {
        Workspace {
            name: name.to_owned(),
            dedupe_window: None,
            vendors: Vec::new(),
            sinks: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// How long a repeat is recognised, e.g. `1s`.
    pub fn dedupe_window(mut self, window: &str) -> Workspace {
        self.dedupe_window = Some(window.to_owned());
        self
    }

    /// The five real vendors, each with secrets [`secret`]`(name, vendor, 1)` and `(.., 2)`, one
    /// file sink `events`, and one route sending every event there.
    pub fn standard(name: &str) -> Workspace {
        let mut ws = Workspace::new(name);
        for vendor in VENDORS {
            ws = ws.vendor(Vendor::new(
                vendor.name,
                &[&secret(name, vendor.name, 1), &secret(name, vendor.name, 2)],
            ));
        }
        ws.file_sink("events").route(Route::new("*", &["events"]))
    }

    pub fn vendor(mut self, vendor: Vendor) -> Workspace {
        self.vendors.push(vendor);
        self
    }

    pub fn file_sink(mut self, name: &str) -> Workspace {
        self.sinks.push((name.to_owned(), SinkKind::File));
        self
    }

    pub fn stdout_sink(mut self, name: &str) -> Workspace {
        self.sinks.push((name.to_owned(), SinkKind::Stdout));
        self
    }

    pub fn http_sink(mut self, name: &str, sink: HttpSink) -> Workspace {
        self.sinks.push((name.to_owned(), SinkKind::Http(sink)));
        self
    }

    pub fn nats_sink(mut self, name: &str, sink: NatsSink) -> Workspace {
        self.sinks.push((name.to_owned(), SinkKind::Nats(sink)));
        self
    }

    pub fn redis_sink(mut self, name: &str, sink: RedisSink) -> Workspace {
        self.sinks.push((name.to_owned(), SinkKind::Redis(sink)));
        self
    }

    pub fn route(mut self, route: Route) -> Workspace {
        self.routes.push(route);
        self
    }
}

impl Vendor {
    pub fn new(name: &str, secrets: &[&str]) -> Vendor {
        Vendor {
            name: name.to_owned(),
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            signature_header: None,
            allow_ips: Vec::new(),
        }
    }

    pub fn signature_header(mut self, header: &str) -> Vendor {
        self.signature_header = Some(header.to_owned());
        self
    }

    pub fn allow_ips(mut self, nets: &[&str]) -> Vendor {
        self.allow_ips = nets.iter().map(|s| (*s).to_owned()).collect();
        self
    }
}

impl Route {
    /// `match: { type: event_type }`, `to: sinks`.
    pub fn new(event_type: &str, sinks: &[&str]) -> Route {
        Route {
            vendors: None,
            event_type: event_type.to_owned(),
            to: sinks.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    pub fn vendors(mut self, vendors: &[&str]) -> Route {
        self.vendors = Some(vendors.iter().map(|s| (*s).to_owned()).collect());
        self
    }
}

// ---------------------------------------------------------------------------------------------
// A test's directory
// ---------------------------------------------------------------------------------------------

/// One test's private directory, removed when dropped:
/// `plugins/` (copies of the five real plugins), `data/`, `sinks/<workspace>/<sink>.jsonl`,
/// and whatever files the test writes (`routes.yaml`, bodies).
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl TestDir {
    /// A new directory whose plugins directory holds copies of the five real plugins.
    pub fn new() -> TestDir {
        let dir = TestDir::without_plugins();
        for vendor in VENDORS {
            dir.install(&artifacts().plugin(vendor.name), vendor.name);
        }
        dir
    }

    /// A new directory with an empty plugins directory.
    pub fn without_plugins() -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-e2e-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let dir = TestDir { dir };
        std::fs::create_dir_all(dir.plugins_dir()).expect("cannot create plugins dir");
        dir
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.path().join("plugins")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// Copies a library into the plugins directory as `libswitchyard_<name>.so`, the only
    /// names the server loads; returns the new path.
    pub fn install(&self, library: &Path, name: &str) -> PathBuf {
        let to = self
            .plugins_dir()
            .join(library_file_name(&format!("switchyard_{name}")));
        std::fs::copy(library, &to).unwrap_or_else(|e| {
            panic!("cannot copy {} to {}: {e}", library.display(), to.display())
        });
        to
    }

    /// Copies the loader fixture `fixture` in as `libswitchyard_<name>.so`.
    pub fn install_fixture(&self, fixture: &str, name: &str) -> PathBuf {
        self.install(&artifacts().fixture(fixture), name)
    }

    /// Where the file sink `sink` of `workspace` writes.
    pub fn sink_path(&self, workspace: &str, sink: &str) -> PathBuf {
        self.path()
            .join("sinks")
            .join(workspace)
            .join(format!("{sink}.jsonl"))
    }

    pub fn sink(&self, workspace: &str, sink: &str) -> SinkFile {
        SinkFile {
            path: self.sink_path(workspace, sink),
        }
    }

    /// Writes `contents` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Writes the configuration as `routes.yaml`; returns its path.
    pub fn write_config(&self, config: &Config) -> PathBuf {
        self.write("routes.yaml", config.render(self))
    }

    /// Writes the configuration and starts a server with it, ready to serve.
    pub fn serve(&self, config: &Config) -> Server {
        Server::start(&self.write_config(config))
    }

    /// [`TestDir::serve`] under [`Server::start_with_file_size_limit`].
    pub fn serve_with_file_size_limit(&self, config: &Config, blocks: u64) -> Server {
        Server::start_with_file_size_limit(&self.write_config(config), blocks)
    }
}

// ---------------------------------------------------------------------------------------------
// Captured output
// ---------------------------------------------------------------------------------------------

/// A child's output stream, drained by a thread into a shared buffer so the pipe never blocks;
/// waiters are woken on every line and when the stream closes.
#[derive(Clone, Default)]
pub struct Capture(Arc<(Mutex<CaptureState>, Condvar)>);

#[derive(Default)]
struct CaptureState {
    text: String,
    closed: bool,
}

impl Capture {
    fn drain(stream: impl Read + Send + 'static) -> Capture {
        let capture = Capture::default();
        let shared = capture.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).unwrap_or(0);
                let (lock, wake) = &*shared.0;
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    state.closed = true;
                    wake.notify_all();
                    return;
                }
                state.text.push_str(&String::from_utf8_lossy(&line));
                wake.notify_all();
            }
        });
        capture
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        self.lock().text.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CaptureState> {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `found` finds something in the text. `Err(true)` when the stream closed
    /// first, `Err(false)` when the deadline passed.
    pub fn wait_for<T>(
        &self,
        deadline: Instant,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, bool> {
        let (_, wake) = &*self.0;
        let mut state = self.lock();
        loop {
            if let Some(t) = found(&state.text) {
                return Ok(t);
            }
            if state.closed {
                return Err(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(false);
            }
            state = wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until the stream closes (the process exited); `false` if the deadline passed.
    pub fn wait_closed(&self, deadline: Instant) -> bool {
        matches!(self.wait_for(deadline, |_| None::<()>), Err(true))
    }
}

fn json_lines(text: &str, source: &str) -> Vec<Value> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{source}: a line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// The last `n` lines of a log, for failure messages.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// `switchyard` with the given arguments: logs at `info`, no input.
pub fn switchyard_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(&artifacts().binary);
    command
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    // The repository's routes.yaml reads these; the tests want its defaults, whatever the
    // environment running them holds.
    for var in REPOSITORY_CONFIG_VARIABLES {
        command.env_remove(var);
    }
    command
}

/// The variables the repository's routes.yaml reads.
const REPOSITORY_CONFIG_VARIABLES: [&str; 8] = [
    "SWITCHYARD_LISTEN",
    "SWITCHYARD_ADMIN_LISTEN",
    "SWITCHYARD_ADMIN_TOKEN",
    "DEMO_WATSI_SECRET",
    "DEMO_WHATSABLE_SECRET",
    "DEMO_WHATSSYNC_SECRET",
    "DEMO_WAPPCLOUD_SECRET",
    "DEMO_DOCSSMITH_SECRET",
];

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics unless the command exited 0.
    #[track_caller]
    pub fn expect_success(&self, what: &str) -> &Run {
        assert!(
            self.status.success(),
            "{what}: expected exit 0, got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command exited non-zero and its standard error holds every needle.
    #[track_caller]
    pub fn expect_failure(&self, what: &str, needles: &[&str]) -> &Run {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "{what}: expected a non-zero exit, got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "{what}: standard error does not mention {needle:?}\n--- stderr ---\n{}",
                self.stderr
            );
        }
        self
    }
}

/// Runs a command to completion within [`EXIT_DEADLINE`], capturing both streams. Panics (after
/// killing it) if it is still running at the deadline.
pub fn run(mut command: Command) -> Run {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = Capture::drain(child.stdout.take().expect("piped stdout"));
    let stderr = Capture::drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + EXIT_DEADLINE;
    if !(stderr.wait_closed(deadline) && stdout.wait_closed(deadline)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{command:?} was still running after {EXIT_DEADLINE:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            stdout.text(),
            stderr.text()
        );
    }
    let status = child.wait().expect("cannot wait for a child");
    Run {
        status,
        stdout: stdout.text(),
        stderr: stderr.text(),
    }
}

/// `switchyard check --config <config>`.
pub fn check(config: &Path) -> Run {
    run(switchyard_command([
        "check".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]))
}

/// `switchyard serve --config <config>`, for a configuration it must refuse: returns once it
/// exits, and panics if it is still serving at the deadline.
pub fn serve_expecting_exit(config: &Path) -> Run {
    run(switchyard_command([
        "serve".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]))
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// Kills the child when dropped, so a panicking test never leaves a server behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `switchyard serve`, killed on drop.
pub struct Server {
    child: Option<ChildGuard>,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    config: PathBuf,
    env: Vec<(String, String)>,
    stderr: Capture,
    stdout: Capture,
    agent: ureq::Agent,
    /// `ulimit` arguments the server starts under, e.g. `-S -f 1024`.
    ulimits: Vec<String>,
}

impl Server {
    /// Starts `switchyard serve --config <config>` and returns once `/readyz` answers 200.
    /// Panics, with the log, if it exits or is not ready within [`START_DEADLINE`].
    pub fn start(config: &Path) -> Server {
        Server::start_with_env(config, &[])
    }

    /// [`Server::start`] with extra environment variables (kept for [`Server::restart`]).
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Server {
        let mut server = Server::prepare(config, env);
        server.launch();
        server
    }

    fn prepare(config: &Path, env: &[(&str, &str)]) -> Server {
        // Every request on a new connection, so no test depends on the state another request
        // left a connection in; keep-alive behaviour has its own test in contract.rs.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into();
        Server {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            config: config.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            stderr: Capture::default(),
            stdout: Capture::default(),
            agent,
            ulimits: Vec::new(),
        }
    }

    /// [`Server::start`] under a limit on the size of any file it writes (`ulimit -f`, in the
    /// shell's blocks), with SIGXFSZ ignored: writes past it fail with EFBIG, as on a full disk.
    pub fn start_with_file_size_limit(config: &Path, blocks: u64) -> Server {
        let mut server = Server::prepare(config, &[]);
        server.ulimits.push(format!("-S -f {blocks}"));
        server.launch();
        server
    }

    /// [`Server::start`] with at most `n` open files (`ulimit -n`).
    pub fn start_with_open_files_limit(config: &Path, n: u64) -> Server {
        let mut server = Server::prepare(config, &[]);
        server.ulimits.push(format!("-S -n {n}"));
        server.launch();
        server
    }

    fn launch(&mut self) {
        let args = [
            "serve".as_ref(),
            "--config".as_ref(),
            self.config.as_os_str(),
        ];
        let mut command = switchyard_command(args);
        if !self.ulimits.is_empty() {
            // sh sets the limits and ignores SIGXFSZ (which would kill the server at a file
            // size limit), and exec keeps both. Soft limits only, so prlimit(1) can lift them.
            let limits: Vec<String> = self.ulimits.iter().map(|l| format!("ulimit {l}")).collect();
            let mut limited = Command::new("sh");
            limited
                .arg("-c")
                .arg(format!(
                    "{} && trap '' XFSZ && exec \"$0\" \"$@\"",
                    limits.join(" && ")
                ))
                .arg(command.get_program())
                .args(args)
                .stdin(Stdio::null());
            for (name, value) in command.get_envs() {
                match value {
                    Some(value) => limited.env(name, value),
                    None => limited.env_remove(name),
                };
            }
            command = limited;
        }
        if let Some(dir) = self.config.parent() {
            command.current_dir(dir);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        self.stdout = Capture::drain(child.stdout.take().expect("piped stdout"));
        self.stderr = Capture::drain(child.stderr.take().expect("piped stderr"));
        self.child = Some(ChildGuard(child));

        let deadline = Instant::now() + START_DEADLINE;
        match self.stderr.wait_for(deadline, listening_addrs) {
            Ok((public, operator)) => (self.addr, self.admin_addr) = (public, operator),
            Err(true) => self.fail_start("exited before listening"),
            Err(false) => self.fail_start(
                "never logged `switchyard is listening addr=...` and `operator listener ready \
                 addr=...`",
            ),
        }
        loop {
            let ready = self
                .agent
                .get(self.admin_url("/readyz"))
                .call()
                .map(|r| r.status().as_u16());
            if let Ok(200) = ready {
                return;
            }
            if !self.is_running() {
                self.fail_start("exited before /readyz answered 200");
            }
            if Instant::now() >= deadline {
                self.fail_start(&format!(
                    "/readyz did not answer 200 within {START_DEADLINE:?} (last: {ready:?})"
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn fail_start(&mut self, why: &str) -> ! {
        self.kill();
        let config = std::fs::read_to_string(&self.config).unwrap_or_default();
        panic!(
            "switchyard serve --config {} {why}\n--- routes.yaml ---\n{config}\n--- log ---\n{}",
            self.config.display(),
            self.stderr.text()
        );
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The operator listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// `http://127.0.0.1:ADMIN_PORT` + `path`: the operator listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// The server's log (its standard error) so far.
    pub fn log(&self) -> String {
        self.stderr.text()
    }

    /// The log once it holds `text`: the server writes a line before it answers, but the test
    /// reads the pipe on its own thread, so a line may arrive just after the answer.
    #[track_caller]
    pub fn log_containing(&self, text: &str) -> String {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log never showed {text:?}:\n{log}"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until the log holds `needle` `count` times or more; panics with the log at the
    /// deadline.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str, count: usize, within: Duration) {
        let found = self.stderr.wait_for(Instant::now() + within, |log| {
            (log.matches(needle).count() >= count).then_some(())
        });
        if found.is_err() {
            panic!(
                "the log never held {needle:?} {count} time(s) within {within:?}\n--- log ---\n{}",
                tail(&self.log(), 60)
            );
        }
    }

    /// Its standard output: the stdout sink's JSON lines.
    pub fn stdout(&self) -> &Capture {
        &self.stdout
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(ChildGuard(child)) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL (no chance to flush or shut down), and wait for the process to go.
    pub fn kill(&mut self) {
        self.child.take();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").0.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the process to end; its exit status, or `None` if it still runs after
    /// `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let child = &mut self.child.as_mut().expect("the server was started").0;
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server if it runs, then starts a new one with the same configuration (and so
    /// the same data directory). The new one listens on a new port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// One HTTP exchange with the public listener. Panics (with the log) if it cannot be had at
    /// all.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        self.exchange(&self.url(path), method, path, headers, body)
    }

    /// One HTTP exchange with the operator listener (`/readyz`, `/metrics`, `/admin/*`).
    pub fn operator_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        self.exchange(&self.admin_url(path), method, path, headers, body)
    }

    /// `GET path` on the operator listener.
    pub fn operator_get(&self, path: &str) -> Reply {
        self.operator_request("GET", path, &[], None)
    }

    fn exchange(
        &self,
        url: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        self.try_exchange(url, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{e}\n--- log ---\n{}", tail(&self.log(), 60)))
    }

    /// [`Server::exchange`], with a failure to connect or to read the answer as an error: for
    /// servers that may be gone (killed under load).
    fn try_exchange(
        &self,
        url: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, String> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let result = match body {
            Some(body) => self
                .agent
                .run(builder.body(body.to_vec()).expect("request")),
            None => self.agent.run(builder.body(()).expect("request")),
        };
        let mut response = result.map_err(|e| format!("{method} {path} failed: {e}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {path}: cannot read the answer: {e}"))?;
        Ok(Reply {
            status,
            headers,
            body,
            context: format!("{method} {path}"),
            log: Some(self.stderr.clone()),
        })
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.request("POST", path, headers, Some(body))
    }

    /// POSTs `body` to `/hooks/{workspace}/{vendor}`, signed with `secret` under the vendor's
    /// header, plus `extra` headers.
    pub fn deliver(
        &self,
        workspace: &str,
        vendor: &VendorScheme,
        secret: &str,
        body: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let signature = vendor.signature(secret, body.as_bytes());
        let mut headers = vec![
            ("Content-Type", "application/json"),
            (vendor.header, signature.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.post(&hook(workspace, vendor.name), &headers, body.as_bytes())
    }

    /// [`Server::deliver`], with a server that cannot be reached as an error rather than a
    /// panic.
    pub fn try_deliver(
        &self,
        workspace: &str,
        vendor: &VendorScheme,
        secret: &str,
        body: &str,
    ) -> Result<Reply, String> {
        let signature = vendor.signature(secret, body.as_bytes());
        let headers = [
            ("Content-Type", "application/json"),
            (vendor.header, signature.as_str()),
        ];
        let path = hook(workspace, vendor.name);
        self.try_exchange(
            &self.url(&path),
            "POST",
            &path,
            &headers,
            Some(body.as_bytes()),
        )
    }

    /// Writes `request` as is on a new connection and reads one answer: for requests a
    /// well-behaved client cannot send (lying lengths, unfinished bodies). Write errors are
    /// ignored: the server may answer and close before reading everything.
    pub fn raw(&self, request: &[u8]) -> Reply {
        let mut connection = self.connect();
        let _ = connection.send(request);
        match connection.read_reply(REQUEST_TIMEOUT) {
            Received::Reply(reply) => reply,
            other => panic!(
                "no HTTP answer to a raw request: {other:?}\n--- log ---\n{}",
                tail(&self.log(), 60)
            ),
        }
    }

    /// A new connection for writing requests byte by byte.
    pub fn connect(&self) -> Connection {
        let stream = TcpStream::connect(self.addr)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.addr));
        stream
            .set_write_timeout(Some(REQUEST_TIMEOUT))
            .expect("set_write_timeout");
        Connection {
            stream,
            received: Vec::new(),
            log: self.stderr.clone(),
        }
    }

    /// Waits until the stdout sink has written the event `id`; returns it.
    #[track_caller]
    pub fn wait_for_stdout_event(&self, id: &str) -> Value {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        let found = self.stdout.wait_for(deadline, |text| {
            json_lines(text, "standard output")
                .into_iter()
                .find(|e| e["id"] == id)
        });
        found.unwrap_or_else(|_| {
            panic!(
                "event {id} never reached standard output\n--- stdout ---\n{}\n--- log ---\n{}",
                self.stdout.text(),
                tail(&self.log(), 60)
            )
        })
    }
}

/// `/hooks/{workspace}/{vendor}`.
pub fn hook(workspace: &str, vendor: &str) -> String {
    format!("/hooks/{workspace}/{vendor}")
}

/// The public and operator addresses, from the `switchyard is listening addr=127.0.0.1:PORT`
/// and `operator listener ready addr=127.0.0.1:PORT` log lines (or their `"addr"` field under
/// `log_format: json`).
fn listening_addrs(log: &str) -> Option<(SocketAddr, SocketAddr)> {
    Some((
        logged_addr(log, "switchyard is listening")?,
        logged_addr(log, "operator listener ready")?,
    ))
}

fn logged_addr(log: &str, message: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains(message))?;
    if let Ok(Value::Object(fields)) = serde_json::from_str(line) {
        return fields.get("addr")?.as_str()?.parse().ok();
    }
    let (_, rest) = line.split_once("addr=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// An HTTP answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The request, for failure messages.
    pub context: String,
    log: Option<Capture>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} {}", self.context, self.status, self.body)
    }
}

impl Reply {
    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics if it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| self.fail(&format!("the body is not JSON ({e})")))
    }

    /// Panics with the exchange and the server's recent log.
    #[track_caller]
    pub fn fail(&self, why: &str) -> ! {
        let log = self.log.as_ref().map(|l| tail(&l.text(), 60));
        panic!(
            "{why}\n  request: {}\n  answer: {} {}\n--- server log (tail) ---\n{}",
            self.context,
            self.status,
            self.body,
            log.unwrap_or_default()
        )
    }

    /// Asserts 200 `{"status": status, "id": ID}` and exactly that; returns ID.
    #[track_caller]
    pub fn expect_ok(&self, status: &str) -> String {
        if self.status != 200 {
            self.fail(&format!("expected 200 {status}"));
        }
        let json = self.json();
        let id = json["id"].as_str().filter(|id| !id.is_empty());
        let keys = json.as_object().map_or(0, |o| o.len());
        match id {
            Some(id) if json["status"] == status && keys == 2 => id.to_owned(),
            _ => self.fail(&format!(
                "expected exactly {{\"status\":\"{status}\",\"id\":ID}}"
            )),
        }
    }

    /// 200 accepted; returns the id.
    #[track_caller]
    pub fn expect_accepted(&self) -> String {
        self.expect_ok("accepted")
    }

    /// Asserts `http` with `{"error": code, "message": TEXT}` and exactly that; returns TEXT.
    #[track_caller]
    pub fn expect_error(&self, http: u16, code: &str) -> String {
        if self.status != http {
            self.fail(&format!("expected {http} {code}"));
        }
        let json = self.json();
        let keys = json.as_object().map_or(0, |o| o.len());
        let message = json["message"].as_str().filter(|m| !m.is_empty());
        match message {
            Some(message) if json["error"] == code && keys == 2 => message.to_owned(),
            _ => self.fail(&format!(
                "expected exactly {{\"error\":\"{code}\",\"message\":TEXT}}"
            )),
        }
    }
}

/// A raw connection to the server.
pub struct Connection {
    stream: TcpStream,
    /// Bytes read but not yet parsed into an answer.
    received: Vec<u8>,
    log: Capture,
}

/// What [`Connection::read_reply`] found.
#[derive(Debug)]
pub enum Received {
    Reply(Reply),
    /// The server closed the connection (or reset it) before a whole answer arrived.
    Closed {
        error: Option<String>,
        partial: String,
    },
    /// Nothing complete arrived in time; the connection is still open.
    TimedOut {
        partial: String,
    },
}

impl Connection {
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads until the server's interim `100 Continue` answer has arrived, and consumes it.
    /// `Err` with what arrived instead (a final answer, a close, nothing in time).
    pub fn expect_continue(&mut self, timeout: Duration) -> Result<(), String> {
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        while !self.received.starts_with(CONTINUE) {
            let complete = self.received.windows(4).any(|w| w == b"\r\n\r\n");
            let left = deadline.saturating_duration_since(Instant::now());
            if complete || left.is_zero() {
                return Err(String::from_utf8_lossy(&self.received).into_owned());
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("closed".to_owned()),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("{e}")),
            }
        }
        self.received.drain(..CONTINUE.len());
        Ok(())
    }

    /// Reads one whole answer (framed by `Content-Length`, or by the end of the connection).
    pub fn read_reply(&mut self, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        loop {
            if let Some((reply, used)) = parse_response(&self.received) {
                self.received.drain(..used);
                return Received::Reply(Reply {
                    log: Some(self.log.clone()),
                    ..reply
                });
            }
            let partial = String::from_utf8_lossy(&self.received).into_owned();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::TimedOut { partial };
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return match parse_response_until_eof(&self.received) {
                        Some(reply) => {
                            self.received.clear();
                            Received::Reply(Reply {
                                log: Some(self.log.clone()),
                                ..reply
                            })
                        }
                        None => Received::Closed {
                            error: None,
                            partial,
                        },
                    };
                }
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Received::TimedOut { partial };
                }
                Err(e) => {
                    return Received::Closed {
                        error: Some(e.to_string()),
                        partial,
                    }
                }
            }
        }
    }
}

/// A complete response at the start of `bytes` (head plus `Content-Length` bytes of body), and
/// how many bytes it took.
fn parse_response(bytes: &[u8]) -> Option<(Reply, usize)> {
    let (status, headers, body) = split_response(bytes)?;
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))?
        .1
        .trim()
        .parse()
        .ok()?;
    let head_len = bytes.len() - body.len();
    (body.len() >= length).then(|| {
        let reply = Reply {
            status,
            body: String::from_utf8_lossy(&body[..length]).into_owned(),
            headers,
            context: "raw request".to_owned(),
            log: None,
        };
        (reply, head_len + length)
    })
}

/// A response without `Content-Length`, whose body ran to the end of the connection.
fn parse_response_until_eof(bytes: &[u8]) -> Option<Reply> {
    let (status, headers, body) = split_response(bytes)?;
    let framed = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    (!framed).then(|| Reply {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
        headers,
        context: "raw request".to_owned(),
        log: None,
    })
}

type ResponseParts<'a> = (u16, Vec<(String, String)>, &'a [u8]);

fn split_response(bytes: &[u8]) -> Option<ResponseParts<'_>> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some((status, headers, &bytes[end + 4..]))
}

// ---------------------------------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------------------------------

/// A file sink's JSON lines.
pub struct SinkFile {
    path: PathBuf,
}

impl SinkFile {
    /// The sink file at `path` (for configurations not written by [`Config`]).
    pub fn at(path: impl Into<PathBuf>) -> SinkFile {
        SinkFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The events written so far (complete lines only); none when the file does not exist.
    pub fn events(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => json_lines(&text, &self.path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", self.path.display()),
        }
    }

    /// Polls until the event `id` is in the file; returns every event written by then.
    ///
    /// Each sink's worker delivers its queue in id order, and ids grow with acceptance, so once
    /// an event accepted later is in the file, everything accepted before it for this sink is
    /// too: waiting for a later event settles what an earlier request did or did not write.
    #[track_caller]
    pub fn wait_for(&self, id: &str) -> Vec<Value> {
        self.wait_until(&format!("event {id}"), |events| {
            events.iter().any(|e| e["id"] == id)
        })
    }

    /// Polls until the file holds at least `n` events; returns them all.
    #[track_caller]
    pub fn wait_for_count(&self, n: usize) -> Vec<Value> {
        self.wait_until(&format!("{n} event(s)"), |events| events.len() >= n)
    }

    #[track_caller]
    fn wait_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not receive {what} within {DELIVERY_DEADLINE:?}; it holds {} event(s):\n{}",
                    self.path.display(),
                    events.len(),
                    events
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// How many of `events` carry `id`.
pub fn count_id(events: &[Value], id: &str) -> usize {
    events.iter().filter(|e| e["id"] == id).count()
}

/// Asserts that every field of `expected` is in `actual` with the same value, recursively for
/// objects (arrays and scalars compare whole; `null` must be present and null).
#[track_caller]
pub fn assert_subset(expected: &Value, actual: &Value, context: &str) {
    let mut problems = Vec::new();
    subset(expected, actual, "", &mut problems);
    assert!(
        problems.is_empty(),
        "{context}:\n  {}\n  in: {actual}",
        problems.join("\n  ")
    );
}

fn subset(expected: &Value, actual: &Value, at: &str, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let at = format!("{at}/{key}");
                match have.get(key) {
                    Some(found) => subset(value, found, &at, problems),
                    None => problems.push(format!("{at}: missing, expected {value}")),
                }
            }
        }
        _ if expected == actual => {}
        _ => problems.push(format!("{at}: expected {expected}, got {actual}")),
    }
}
