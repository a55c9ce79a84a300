//! Running `switchyard` commands to completion.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{artifacts, Capture};

/// How long a command (`check`, `plugins`, a refused `serve`) may take to exit.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// `switchyard` with the given arguments: logs at `info`, no input, run from an empty directory
/// (a test names another with `current_dir`), so that a command never reads the checkout's
/// `routes.yaml` or `data/` by default.
pub fn switchyard_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(&artifacts().binary);
    command
        .args(args)
        .env("RUST_LOG", "info")
        .current_dir(empty_dir())
        .stdin(Stdio::null());
    clear_repository_variables(&mut command);
    command
}

/// `target/e2e-empty`, made once per test process.
fn empty_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = artifacts()
            .profile_dir
            .parent()
            .unwrap_or(&artifacts().profile_dir)
            .join("e2e-empty");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    })
}

/// Removes the variables the shipped routes.yaml and the operator commands read, so that the
/// tests get the defaults whatever the environment running them holds; a test sets what it
/// wants afterwards.
pub(crate) fn clear_repository_variables(command: &mut Command) {
    for var in REPOSITORY_VARIABLES {
        command.env_remove(var);
    }
}

const REPOSITORY_VARIABLES: [&str; 12] = [
    "SWITCHYARD_CONFIG",
    "SWITCHYARD_LISTEN",
    "SWITCHYARD_ADMIN_LISTEN",
    "SWITCHYARD_ADMIN_TOKEN",
    "SWITCHYARD_ADMIN_URL",
    "SWITCHYARD_LOG_FORMAT",
    "SWITCHYARD_SIGN_SECRET",
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
