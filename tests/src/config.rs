//! The routes.yaml builders: [`Config`], its [`Workspace`]s, [`Vendor`]s, sinks and
//! [`Route`]s, rendered for a [`TestDir`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{secret, TestDir, Value, VENDORS};

/// A routes.yaml to write into a [`TestDir`]: the server section always listens on
/// `127.0.0.1:0`, public and operator listener alike, with the directory's data and plugins
/// directories.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Cluster mode: NATS servers and replicas.
    nats_store: Option<(Vec<String>, usize)>,
    /// The CA the cluster store checks NATS's certificate against.
    nats_tls_ca: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    admin_token: Option<String>,
    retention: Option<String>,
    tls: Option<(PathBuf, PathBuf)>,
    trusted_proxies: Vec<String>,
    max_connections: Option<usize>,
    max_inflight_body_bytes: Option<usize>,
    header_read_timeout: Option<String>,
    /// `server.alerts`: URL and secret.
    alerts: Option<(String, String)>,
    /// `server.telemetry`: the collector's base URL and the sample ratio.
    telemetry: Option<(String, f64)>,
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
    plugin_timeout: Option<String>,
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
    tls_ca: Option<PathBuf>,
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
            tls_ca: None,
        }
    }

    /// TLS to the servers, trusting certificates `ca` signed.
    pub fn tls_ca(mut self, ca: &Path) -> NatsSink {
        self.tls_ca = Some(ca.to_owned());
        self
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
    /// Other keys, as `key: value` YAML.
    settings: Vec<(String, String)>,
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
            settings: Vec::new(),
        }
    }

    /// Any other key: `rate`, `burst`, `disable_after`, `format`; `value` is written as is.
    pub fn setting(mut self, key: &str, value: &str) -> HttpSink {
        self.settings.push((key.to_owned(), value.to_owned()));
        self
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
    /// `match.where`, as YAML.
    filter: Option<String>,
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

    /// Posts sink state changes to `url`, signed with `secret`.
    pub fn alerts(mut self, url: &str, secret: &str) -> Config {
        self.alerts = Some((url.to_owned(), secret.to_owned()));
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

    /// Traces to the OTLP/HTTP collector at `endpoint`, keeping `ratio` of them.
    pub fn telemetry(mut self, endpoint: &str, ratio: f64) -> Config {
        self.telemetry = Some((endpoint.to_owned(), ratio));
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

    /// The cluster store talks TLS to NATS, trusting certificates `ca` signed.
    pub fn nats_tls_ca(mut self, ca: &Path) -> Config {
        self.nats_tls_ca = Some(ca.to_owned());
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
            let tls = match &self.nats_tls_ca {
                Some(ca) => format!(", tls: {{ ca: {} }}", q(&ca.to_string_lossy())),
                None => String::new(),
            };
            writeln!(
                y,
                "  store: {{ type: nats, servers: {servers}, replicas: {replicas}, lease: 3s{tls} }}"
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
        if let Some((endpoint, ratio)) = &self.telemetry {
            let endpoint = q(endpoint);
            writeln!(y, "  telemetry: {{ otlp_endpoint: {endpoint}, sample_ratio: {ratio}, service_name: switchyard-e2e }}").unwrap();
        }
        if let Some(timeout) = &self.header_read_timeout {
            writeln!(y, "  header_read_timeout: {}", q(timeout)).unwrap();
        }
        if let Some((url, secret)) = &self.alerts {
            writeln!(y, "  alerts: {{ url: {}, secret: {} }}", q(url), q(secret)).unwrap();
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
                if let Some(timeout) = &v.plugin_timeout {
                    writeln!(y, "        plugin_timeout: {}", q(timeout)).unwrap();
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
                        for (key, value) in &http.settings {
                            writeln!(y, "        {key}: {value}").unwrap();
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
                        if let Some(ca) = &nats.tls_ca {
                            let ca = q(&ca.to_string_lossy());
                            writeln!(y, "        tls: {{ ca: {ca} }}").unwrap();
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
                let filter = (route.filter.as_ref())
                    .map_or_else(String::new, |filter| format!(", where: {filter}"));
                match &route.vendors {
                    Some(vendors) => writeln!(
                        y,
                        "      - match: {{ vendor: {}, type: {}{filter} }}",
                        list(vendors),
                        q(&route.event_type)
                    ),
                    None => writeln!(
                        y,
                        "      - match: {{ type: {}{filter} }}",
                        q(&route.event_type)
                    ),
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
            plugin_timeout: None,
        }
    }

    /// How long one plugin call may take, e.g. `30s`.
    pub fn plugin_timeout(mut self, timeout: &str) -> Vendor {
        self.plugin_timeout = Some(timeout.to_owned());
        self
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
            filter: None,
            to: sinks.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// `match.where`, a YAML flow mapping such as `{ data.status: failed }`.
    pub fn filter(mut self, filter: &str) -> Route {
        self.filter = Some(filter.to_owned());
        self
    }

    pub fn vendors(mut self, vendors: &[&str]) -> Route {
        self.vendors = Some(vendors.iter().map(|s| (*s).to_owned()).collect());
        self
    }
}
