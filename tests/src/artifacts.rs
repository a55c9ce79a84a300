//! Building the workspace once per test process, and where the binary, the plugins and the
//! loader fixtures are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

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

    /// A seed vendor's definition as the project ships it: `plugins/definitions/<vendor>.vendor.yaml`.
    pub fn definition(&self, vendor: &str) -> PathBuf {
        (self.workspace_root.join("plugins").join("definitions"))
            .join(format!("{vendor}.vendor.yaml"))
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
pub(crate) fn locate_target_dir(workspace_root: &Path) -> Result<(PathBuf, PathBuf), String> {
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
