//! A running `switchyard serve`: its addresses, its log, HTTP to both listeners.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::capture::{json_lines, tail};
use crate::sink_file::POLL_INTERVAL;
use crate::{
    switchyard_command, tool, Capture, Connection, Received, Reply, Value, VendorScheme,
    DELIVERY_DEADLINE,
};

/// How long a server may take to log its address and answer `/readyz` 200.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long one HTTP exchange may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

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

    /// [`Server::start`], calling `at_spawn` with the process id as soon as the process
    /// exists, before it listens (to signal it during its start-up).
    pub fn start_and(config: &Path, at_spawn: impl FnOnce(u32)) -> Server {
        let mut server = Server::prepare(config, &[]);
        server.launch_and(at_spawn);
        server
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
        self.launch_and(|_| {});
    }

    fn launch_and(&mut self, at_spawn: impl FnOnce(u32)) {
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
        at_spawn(child.id());
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
        let status = Command::new(tool("kill"))
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
