//! The shipped demo, laid out as a fresh checkout after `cargo build --release`: a private
//! directory holding the committed `routes.yaml` and `examples/` (see [`shipped_file`]), and
//! `target/release/` with the binary and the five plugins this test process built. The routes
//! file is not changed at all: its `plugins_dir: ./target/release` and `data_dir: ./data` resolve
//! inside the directory, and its listen addresses come from `SWITCHYARD_LISTEN` and
//! `SWITCHYARD_ADMIN_LISTEN`, as it provides for, set to free ports.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::command::clear_repository_variables;
use crate::{artifacts, library_file_name, shipped_file, Server, VENDORS};

/// The shipped demo in a private directory, removed when dropped.
pub struct DemoDir {
    dir: tempfile::TempDir,
}

impl Default for DemoDir {
    fn default() -> Self {
        DemoDir::new()
    }
}

impl DemoDir {
    pub fn new() -> DemoDir {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-demo-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let demo = DemoDir { dir };
        demo.write("routes.yaml", &shipped_file("routes.yaml"));
        for vendor in VENDORS {
            let example = format!("examples/{}.json", vendor.name);
            demo.write(&example, &shipped_file(&example));
        }
        // `release` holds whatever profile the tests were built with: the name is the README's.
        let release = demo.release_dir();
        std::fs::create_dir_all(&release).expect("cannot create target/release");
        std::os::unix::fs::symlink(&artifacts().binary, release.join("switchyard"))
            .expect("cannot link the binary");
        for vendor in VENDORS {
            let name = library_file_name(&format!("switchyard_{}", vendor.name));
            std::fs::copy(artifacts().plugin(vendor.name), release.join(&name))
                .unwrap_or_else(|e| panic!("cannot copy {name}: {e}"));
        }
        demo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `target/release` in the directory: the binary and the plugins.
    pub fn release_dir(&self) -> PathBuf {
        self.path().join("target").join("release")
    }

    pub fn routes(&self) -> PathBuf {
        self.path().join("routes.yaml")
    }

    /// Writes `contents` to `relative`, making its directory; returns its path.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("cannot create a directory");
        }
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// `switchyard serve` on the demo's routes.yaml, from the demo directory, on free ports.
    pub fn serve(&self) -> Server {
        Server::start_with_env(
            &self.routes(),
            &[
                ("SWITCHYARD_LISTEN", "127.0.0.1:0"),
                ("SWITCHYARD_ADMIN_LISTEN", "127.0.0.1:0"),
            ],
        )
    }

    /// A shell line as a user types it in the demo directory while `server` runs: the routes
    /// file's variables name the server's real addresses, as they would name 8080 and 9090, and
    /// nothing else of the environment running the tests changes what the demo reads.
    pub fn shell(&self, server: &Server, line: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(line).current_dir(self.path());
        clear_repository_variables(&mut command);
        command
            .env("SWITCHYARD_LISTEN", server.addr().to_string())
            .env("SWITCHYARD_ADMIN_LISTEN", server.admin_addr().to_string())
            .env("RUST_LOG", "info");
        command
    }
}
