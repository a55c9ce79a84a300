//! The programs the tests run besides switchyard (curl, kill, prlimit, nats-server,
//! redis-server, git, python3, chromium and chromedriver), found on `PATH` or in the directories Debian installs them
//! into. A missing one fails the test at once with the package that provides it and the command
//! that installs it, never with a message about something else, and never as a skip.

use std::path::PathBuf;

/// Where Debian puts programs a non-root `PATH` may lack (servers in /usr/sbin).
const EXTRA_DIRS: [&str; 6] = [
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The command that installs `name` on Debian, for the failure message.
pub fn install_hint(name: &str) -> String {
    let packages = match name {
        // kill(1) as a program, not the shell's builtin: Command::new cannot run a builtin.
        "kill" => "procps",
        "prlimit" => "util-linux",
        "python3" => "python3 python3-venv",
        "chromium" | "chromedriver" => "chromium chromium-driver",
        other => other,
    };
    format!(
        "install it with `apt-get install {packages}`, or run `.ci/test` (the README's test \
         command), which installs everything the tests use"
    )
}

/// The path of the program `name`; panics, naming it and how to install it, if it is nowhere.
#[track_caller]
pub fn tool(name: &str) -> PathBuf {
    find(name).unwrap_or_else(|| {
        panic!(
            "the tests need `{name}`, which is not installed (looked in PATH and {}): {}",
            EXTRA_DIRS.join(", "),
            install_hint(name)
        )
    })
}

/// The path of the program `name`, if it is installed.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
