//! The front door facing the open internet: HTTPS (HTTP/1.1 and HTTP/2, verified by real
//! clients against a test CA) and its certificate renewed on SIGHUP; `allow_ips` behind trusted
//! proxies and not behind untrusted ones, for deliveries and the handshake; a request without
//! its signature header refused before its body is sent; the connection limit reached and
//! recovered from; the budget for bodies in memory; the operator listener apart from the public
//! one, its `/metrics` read by the Python Prometheus parser in both formats; and the
//! configuration refusals for these settings.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use switchyard_e2e::*;

const WS: &str = "acme";
const WATSI_SECRET: &str = "watsi-secret-for-e2e";
const WHATSABLE_SECRET: &str = "whatsable-secret-for-e2e";
const WAPPCLOUD_SECRET: &str = "wappcloud-secret-for-e2e";
/// What absence is waited for: long enough for a loopback answer that was going to come.
const QUIET: Duration = Duration::from_millis(500);

fn watsi_event(id: &str, text: &str) -> String {
    json!({"id": id, "type": "message.received", "data": {"text": text}}).to_string()
}

fn watsi_workspace() -> Workspace {
    Workspace::new(WS)
        .vendor(Vendor::new("watsi", &[WATSI_SECRET]))
        .file_sink("events")
        .route(Route::new("*", &["events"]))
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A test CA, and server certificates it signs for 127.0.0.1, written as PEM files.
struct TestCa {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("a self-signed CA");
        TestCa { key, cert }
    }

    fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Writes a new certificate for 127.0.0.1 and its key to `cert` and `key`; returns the
    /// certificate's DER.
    fn issue(&self, cert: &Path, key: &Path) -> Vec<u8> {
        let server_key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("parameters");
        let issued = params
            .signed_by(&server_key, &self.cert, &self.key)
            .expect("a signed server certificate");
        std::fs::write(cert, issued.pem()).expect("write the certificate");
        std::fs::write(key, server_key.serialize_pem()).expect("write the key");
        issued.der().to_vec()
    }
}

/// A TLS client trusting only `ca` (DER), offering `alpn`.
fn tls_client(ca: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca.to_vec()))
        .expect("the test CA is a valid root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `server`'s public port, handshake done; `Err` if the handshake fails
/// (such as when the certificate does not verify).
fn tls_connect(server: &Server, config: Arc<rustls::ClientConfig>) -> Result<TlsStream, String> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("an IP server name");
    let connection = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(server.addr()).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(REQUEST_TIMEOUT))
        .expect("set_read_timeout");
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(stream)
}

/// `GET /healthz` over an open HTTP/1.1 TLS connection, kept alive; the status.
fn healthz_over(stream: &mut TlsStream) -> u16 {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send over TLS");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer is `{"status":"ok"}` with a Content-Length: read until the whole of it is in.
    while !received.ends_with(br#"{"status":"ok"}"#) {
        let n = stream.read(&mut buf).expect("read over TLS");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&received);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"))
}

fn https_agent(ca: &[u8]) -> ureq::Agent {
    let certs = vec![ureq::tls::Certificate::from_der(ca).to_owned()];
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::from(certs))
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .tls_config(tls)
        .build()
        .into()
}

fn tls_files(dir: &TestDir) -> (PathBuf, PathBuf) {
    (dir.path().join("tls.crt"), dir.path().join("tls.key"))
}

#[test]
fn https_deliveries_are_accepted_over_http1_and_http2_by_clients_that_verify_the_certificate() {
    let dir = TestDir::new();
    let ca = TestCa::new("switchyard test CA");
    let (cert, key) = tls_files(&dir);
    ca.issue(&cert, &key);
    let server = dir.serve(&Config::new().tls(&cert, &key).workspace(watsi_workspace()));
    assert!(server.log().contains("tls=true"), "{}", server.log());
    let url = format!("https://{}{}", server.addr(), hook(WS, "watsi"));

    // HTTP/1.1: ureq, trusting only the test CA.
    let body = watsi_event("evt_https_1", "over TLS");
    let mut answer = https_agent(&ca.der())
        .post(&url)
        .header("Content-Type", "application/json")
        .header(
            WATSI.header,
            &WATSI.signature(WATSI_SECRET, body.as_bytes()),
        )
        .send(body.as_bytes())
        .unwrap_or_else(|e| panic!("HTTPS POST failed: {e}\n{}", server.log()));
    let text = answer.body_mut().read_to_string().expect("an answer body");
    assert_eq!(answer.status().as_u16(), 200, "{text}");
    let first: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(first["status"], "accepted", "{text}");

    // HTTP/2: curl, told to speak it, trusting only the test CA.
    let ca_pem = dir.write("ca.pem", ca.cert.pem());
    let body = watsi_event("evt_https_2", "over HTTP/2");
    let signature = format!(
        "{}: {}",
        WATSI.header,
        WATSI.signature(WATSI_SECRET, body.as_bytes())
    );
    let output = Command::new(tool("curl"))
        .args(["-sS", "--http2", "--cacert"])
        .arg(&ca_pem)
        .args(["-H", "Content-Type: application/json", "-H", &signature])
        .args(["--data-binary", &body, "-w", "\n%{http_version}", &url])
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed: {}{out}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (answer, version) = out.rsplit_once('\n').expect("the answer, then the version");
    assert_eq!(version, "2", "curl did not speak HTTP/2: {out}");
    let second: Value = serde_json::from_str(answer).expect("JSON");
    assert_eq!(second["status"], "accepted", "{answer}");

    let events = dir
        .sink(WS, "events")
        .wait_for(second["id"].as_str().unwrap());
    assert_eq!(events.len(), 2, "{events:#?}");

    // A client that does not trust the CA is refused the handshake.
    let stranger = TestCa::new("someone else");
    assert!(tls_connect(&server, tls_client(&stranger.der(), &[])).is_err());
}

#[test]
fn a_renewed_certificate_is_served_after_sighup_and_open_connections_stay() {
    let dir = TestDir::new();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let (cert, key) = tls_files(&dir);
    let old_der = old_ca.issue(&cert, &key);
    let server = dir.serve(&Config::new().tls(&cert, &key).workspace(watsi_workspace()));

    let mut open = tls_connect(&server, tls_client(&old_ca.der(), &[b"http/1.1"]))
        .expect("a handshake with the first certificate");
    assert_eq!(healthz_over(&mut open), 200);
    let served = open.conn.peer_certificates().expect("a peer certificate")[0].to_vec();
    assert_eq!(served, old_der);

    // A broken file on SIGHUP keeps the certificate in use.
    std::fs::write(&key, "not a key").expect("break the key");
    server.signal("HUP");
    server.wait_for_log("TLS certificate not reloaded", 1, START_DEADLINE);
    tls_connect(&server, tls_client(&old_ca.der(), &[])).expect("the old certificate stays");

    let new_der = new_ca.issue(&cert, &key);
    server.signal("HUP");
    server.wait_for_log("TLS certificate reloaded", 1, START_DEADLINE);
    let fresh = tls_connect(&server, tls_client(&new_ca.der(), &[]))
        .expect("a handshake with the renewed certificate");
    let served = fresh.conn.peer_certificates().expect("a peer certificate")[0].to_vec();
    assert_eq!(served, new_der);
    assert!(
        tls_connect(&server, tls_client(&old_ca.der(), &[])).is_err(),
        "the old certificate is still served to new connections"
    );

    // The connection opened before the swap still serves.
    assert_eq!(healthz_over(&mut open), 200);
}

// ---------------------------------------------------------------------------------------------
// Who the client is
// ---------------------------------------------------------------------------------------------

/// Reads what the server sends until it closes the connection: true once it has, false if
/// it is still open when the socket's read timeout ([`REQUEST_TIMEOUT`]) passes.
fn closed_by_server(stream: &mut TlsStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // The server's SETTINGS and the like.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            // Reset, or closed without a TLS close_notify.
            Err(_) => return true,
        }
    }
}

#[test]
fn silent_http2_connections_are_closed_after_header_read_timeout() {
    let dir = TestDir::new();
    let ca = TestCa::new("switchyard test CA");
    let (cert, key) = tls_files(&dir);
    ca.issue(&cert, &key);
    let config = Config::new()
        .tls(&cert, &key)
        .header_read_timeout("1s")
        .workspace(watsi_workspace());
    let server = dir.serve(&config);
    let h2 = tls_client(&ca.der(), &[b"h2"]);

    // Silent once TLS is done: not even the HTTP/2 preface.
    let mut before_preface = tls_connect(&server, h2.clone()).expect("a TLS handshake");
    assert_eq!(before_preface.conn.alpn_protocol(), Some(&b"h2"[..]));
    // The preface and an empty SETTINGS frame, then silence: an open connection, no request.
    let mut after_preface = tls_connect(&server, h2).expect("a TLS handshake");
    after_preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .expect("send the preface");
    after_preface.flush().expect("flush");

    assert!(
        closed_by_server(&mut before_preface),
        "a silent HTTP/2 connection (no preface) was still open after {REQUEST_TIMEOUT:?}"
    );
    assert!(
        closed_by_server(&mut after_preface),
        "an idle HTTP/2 connection (no request) was still open after {REQUEST_TIMEOUT:?}"
    );
    // Their slots are free and the listener serves on.
    let mut http1 = tls_connect(&server, tls_client(&ca.der(), &[b"http/1.1"])).expect("TLS");
    assert_eq!(healthz_over(&mut http1), 200);
}

fn allow_listed(trusted_proxies: &[&str]) -> Config {
    Config::new().trusted_proxies(trusted_proxies).workspace(
        Workspace::new(WS)
            .vendor(Vendor::new("whatsable", &[WHATSABLE_SECRET]).allow_ips(&["203.0.113.0/24"]))
            .vendor(Vendor::new("wappcloud", &[WAPPCLOUD_SECRET]).allow_ips(&["203.0.113.0/24"]))
            .file_sink("events")
            .route(Route::new("*", &["events"])),
    )
}

fn whatsable_status(id: &str) -> String {
    json!({"event": "message_status", "data": {"message_id": id, "status": "sent"}}).to_string()
}

#[test]
fn allow_ips_sees_the_client_through_a_trusted_proxy_only() {
    let dir = TestDir::new();
    let server = dir.serve(&allow_listed(&["127.0.0.0/8"]));
    let deliver = |id: &str, forwarded: &str| {
        let body = whatsable_status(id);
        server.deliver(
            WS,
            &WHATSABLE,
            WHATSABLE_SECRET,
            &body,
            &[("X-Forwarded-For", forwarded)],
        )
    };
    // Loopback is a trusted proxy: the client is the address it forwards.
    deliver("wamid.proxied", "203.0.113.7").expect_accepted();
    // A forged hop on the left is not believed: the proxy saw 198.51.100.1.
    let message = deliver("wamid.forged", "203.0.113.7, 198.51.100.1")
        .expect_error(403, "source_not_allowed");
    assert!(message.contains("198.51.100.1"), "{message}");
    // Without the header, the client is the proxy itself.
    server
        .deliver(
            WS,
            &WHATSABLE,
            WHATSABLE_SECRET,
            &whatsable_status("wamid.bare"),
            &[],
        )
        .expect_error(403, "source_not_allowed");

    // The handshake is behind the same allow-list.
    let path = format!("{}?challenge=abc123", hook(WS, "wappcloud"));
    let reply = server.request("GET", &path, &[("X-Forwarded-For", "203.0.113.9")], None);
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, r#"{"challenge":"abc123"}"#)
    );
    server
        .request("GET", &path, &[("X-Forwarded-For", "198.51.100.1")], None)
        .expect_error(403, "source_not_allowed");
    server.get(&path).expect_error(403, "source_not_allowed");
}

#[test]
fn an_untrusted_peer_cannot_claim_an_address_with_x_forwarded_for() {
    let dir = TestDir::new();
    // Loopback, where the test connects from, is not among the trusted proxies.
    let server = dir.serve(&allow_listed(&["10.0.0.0/8"]));
    let message = server
        .deliver(
            WS,
            &WHATSABLE,
            WHATSABLE_SECRET,
            &whatsable_status("wamid.claimed"),
            &[("X-Forwarded-For", "203.0.113.7")],
        )
        .expect_error(403, "source_not_allowed");
    assert!(message.contains("127.0.0.1"), "{message}");
    let path = format!("{}?challenge=abc123", hook(WS, "wappcloud"));
    server
        .request("GET", &path, &[("X-Forwarded-For", "203.0.113.7")], None)
        .expect_error(403, "source_not_allowed");
}

// ---------------------------------------------------------------------------------------------
// Bounded resources
// ---------------------------------------------------------------------------------------------

/// A request head expecting `100 Continue` before its body.
fn expecting_head(headers: &[(&str, &str)], length: usize) -> Vec<u8> {
    let mut text = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nExpect: 100-continue\r\n",
        hook(WS, "watsi")
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

#[test]
fn a_request_without_its_signature_header_is_refused_before_its_body_is_sent() {
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().workspace(watsi_workspace()));
    let body = watsi_event("evt_unsigned", "never sent");

    let mut connection = server.connect();
    connection
        .send(&expecting_head(&[], body.len()))
        .expect("send the head");
    // The answer parsed is the first thing received: a `100 Continue` before it would be read
    // as the answer instead.
    let reply = match connection.read_reply(REQUEST_TIMEOUT) {
        Received::Reply(reply) => reply,
        other => panic!("no answer to the unsigned head: {other:?}"),
    };
    let message = reply.expect_error(401, "signature_missing");
    assert!(message.contains("x-watsi-signature"), "{message}");

    // The control: signed, the same head is told to go on, and its body is taken.
    let signature = WATSI.signature(WATSI_SECRET, body.as_bytes());
    let mut connection = server.connect();
    connection
        .send(&expecting_head(&[(WATSI.header, &signature)], body.len()))
        .expect("send the head");
    connection
        .expect_continue(REQUEST_TIMEOUT)
        .unwrap_or_else(|got| panic!("no 100 Continue to a signed head: {got}"));
    connection.send(body.as_bytes()).expect("send the body");
    match connection.read_reply(REQUEST_TIMEOUT) {
        Received::Reply(reply) => reply.expect_accepted(),
        other => panic!("no answer to the signed delivery: {other:?}"),
    };
}

#[test]
fn past_the_connection_limit_connections_wait_and_are_served_when_one_closes() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new()
            .max_connections(2)
            .workspace(watsi_workspace()),
    );
    const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let served = |connection: &mut Connection, within: Duration| match connection.read_reply(within)
    {
        Received::Reply(reply) => Some(reply.status),
        Received::TimedOut { .. } => None,
        other => panic!("the connection broke: {other:?}"),
    };
    // Two keep-alive connections, each answered once and held open.
    let mut held: Vec<Connection> = (0..2).map(|_| server.connect()).collect();
    for connection in &mut held {
        connection.send(HEALTHZ).expect("send");
        assert_eq!(served(connection, REQUEST_TIMEOUT), Some(200));
    }
    // The third waits unanswered in the backlog; the server keeps running.
    let mut waiting = server.connect();
    waiting.send(HEALTHZ).expect("send");
    assert_eq!(served(&mut waiting, QUIET), None, "served past the limit");
    server.wait_for_log("connection limit reached", 1, START_DEADLINE);
    // The operator listener has its own limit, unaffected.
    assert_eq!(server.operator_get("/readyz").status, 200);

    // One closes: the waiting one is served.
    drop(held.pop());
    assert_eq!(served(&mut waiting, REQUEST_TIMEOUT), Some(200));
    // And connections keep being accepted as others close.
    drop(held);
    drop(waiting);
    let body = watsi_event("evt_after_limit", "recovered");
    server
        .deliver(WS, &WATSI, WATSI_SECRET, &body, &[])
        .expect_accepted();
}

#[test]
fn bodies_past_the_memory_budget_are_503_with_retry_after_until_it_frees() {
    const LIMIT: usize = 1024;
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new()
            .max_body_bytes(LIMIT)
            .max_inflight_body_bytes(LIMIT + LIMIT / 2)
            .workspace(watsi_workspace()),
    );
    let sized = |id: &str| {
        let body = watsi_event(id, "");
        watsi_event(id, &"x".repeat(LIMIT - body.len()))
    };
    let signed = |body: &str| WATSI.signature(WATSI_SECRET, body.as_bytes());

    // A delivery of the largest size holds its part of the budget while its body arrives
    // (`100 Continue` is sent once it holds it).
    let slow = sized("evt_slow");
    let mut holding = server.connect();
    let signature = signed(&slow);
    holding
        .send(&expecting_head(&[(WATSI.header, &signature)], slow.len()))
        .expect("send the head");
    holding
        .expect_continue(REQUEST_TIMEOUT)
        .unwrap_or_else(|got| panic!("no 100 Continue: {got}"));
    holding
        .send(&slow.as_bytes()[..100])
        .expect("send part of the body");

    // Another one cannot fit, by its Content-Length.
    let other = sized("evt_other");
    let refused = server.deliver(WS, &WATSI, WATSI_SECRET, &other, &[]);
    refused.expect_error(503, "server_busy");
    assert_eq!(refused.header("retry-after"), Some("5"), "{refused:?}");
    // Nor by its chunks as they arrive, without one.
    let signature = signed(&other);
    let mut chunked = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n{}: {signature}\r\n\r\n",
        hook(WS, "watsi"),
        WATSI.header
    )
    .into_bytes();
    chunked.extend(format!("{:x}\r\n", other.len()).bytes());
    chunked.extend(other.as_bytes());
    chunked.extend(b"\r\n0\r\n\r\n");
    server.raw(&chunked).expect_error(503, "server_busy");

    // The first finishes and is accepted; the budget is free again.
    holding
        .send(&slow.as_bytes()[100..])
        .expect("send the rest");
    match holding.read_reply(REQUEST_TIMEOUT) {
        Received::Reply(reply) => reply.expect_accepted(),
        other => panic!("no answer to the held delivery: {other:?}"),
    };
    server
        .deliver(WS, &WATSI, WATSI_SECRET, &other, &[])
        .expect_accepted();
}

// ---------------------------------------------------------------------------------------------
// The operator listener
// ---------------------------------------------------------------------------------------------

/// Parses `text` with the Python Prometheus client's parser for `format` (`classic` or
/// `openmetrics`); returns the metric family names it found.
fn prometheus_parse(format: &str, text: &str) -> Vec<String> {
    let parser = match format {
        "classic" => "from prometheus_client.parser import text_string_to_metric_families as parse",
        "openmetrics" => {
            "from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse"
        }
        other => panic!("no parser for {other}"),
    };
    let script = format!(
        "import sys\n{parser}\nfor family in parse(sys.stdin.read()):\n    \
         list(family.samples)\n    print(family.name)\n"
    );
    let mut child = Command::new(python_env().python())
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tests' Python runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("write to Python");
    let output = child.wait_with_output().expect("Python ran");
    assert!(
        output.status.success(),
        "the {format} parser refused /metrics:\n{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn operator_endpoints_are_only_on_the_operator_listener_and_metrics_parse_in_both_formats() {
    let dir = TestDir::new();
    let server = dir.serve(
        &Config::new()
            .admin_token("operator-token-for-e2e")
            .workspace(watsi_workspace()),
    );
    assert_ne!(server.addr(), server.admin_addr());
    let body = watsi_event("evt_counted", "counted");
    server
        .deliver(WS, &WATSI, WATSI_SECRET, &body, &[])
        .expect_accepted();

    // The public port: hooks and a plain health check only.
    for path in ["/metrics", "/readyz", "/admin/queues"] {
        server.get(path).expect_error(404, "not_found");
    }
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.request("HEAD", "/healthz", &[], None).status, 200);

    // The operator port: readiness, the API, and metrics.
    assert_eq!(server.operator_get("/readyz").status, 200);
    let bearer = [("Authorization", "Bearer operator-token-for-e2e")];
    let queues = server.operator_request("GET", "/admin/queues", &bearer, None);
    assert_eq!(queues.status, 200, "{queues:?}");
    server
        .operator_request("POST", &hook(WS, "watsi"), &[], Some(body.as_bytes()))
        .expect_error(404, "not_found");

    let classic = server.operator_get("/metrics");
    assert_eq!(classic.status, 200, "{classic:?}");
    assert!(
        classic
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        classic.headers
    );
    let families = prometheus_parse("classic", &classic.body);
    assert!(
        families.iter().any(|f| f.starts_with("switchyard_hook")),
        "{families:?}"
    );

    let accept = [("Accept", "application/openmetrics-text; version=1.0.0")];
    let open = server.operator_request("GET", "/metrics", &accept, None);
    assert_eq!(open.status, 200, "{open:?}");
    assert!(
        open.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        open.headers
    );
    let families = prometheus_parse("openmetrics", &open.body);
    assert!(
        families.iter().any(|f| f.starts_with("switchyard_hook")),
        "{families:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn check_refuses_missing_tls_files_bad_proxies_and_a_shared_operator_address() {
    let dir = TestDir::new();
    let missing = dir.path().join("nowhere.crt");
    let config = Config::new()
        .tls(&missing, &dir.path().join("nowhere.key"))
        .trusted_proxies(&["10.0.0.0/8", "10.0.0.1/8", "not-a-network"])
        .workspace(watsi_workspace());
    let text = config
        .render(&dir)
        .replace("  listen: \"127.0.0.1:0\"", "  listen: \"127.0.0.1:18080\"")
        .replace(
            "  admin_listen: \"127.0.0.1:0\"",
            "  admin_listen: \"127.0.0.1:18080\"",
        );
    let path = dir.write("routes.yaml", &text);
    let line_of = |needle: &str| {
        1 + text
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
    };
    let file = path.display().to_string();
    let run = check(&path);
    run.expect_failure(
        "check",
        &[
            &format!(
                "{file}:{}: server.admin_listen: the operator listener cannot share the public \
                 address 127.0.0.1:18080",
                line_of("admin_listen")
            ),
            &format!(
                "{file}:{}: server.tls.cert: cannot read {}",
                line_of("tls:"),
                missing.display()
            ),
            &format!(
                "{file}:{}: server.trusted_proxies[1]: \"10.0.0.1/8\" has host bits set",
                line_of("trusted_proxies")
            ),
            &format!(
                "{file}:{}: server.trusted_proxies[2]: invalid address or CIDR \"not-a-network\"",
                line_of("trusted_proxies")
            ),
        ],
    );
    // And serve refuses it the same way, without listening.
    serve_expecting_exit(&path).expect_failure("serve", &["server.admin_listen"]);
}
