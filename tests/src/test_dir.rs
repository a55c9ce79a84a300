//! One test's private directory: plugins, data, sink files and the routes file.

use std::path::{Path, PathBuf};

use crate::{artifacts, library_file_name, Config, Server, SinkFile, VENDORS};

/// Which form of the five vendors a plugins directory holds: the vendor suite runs once with
/// each, and must pass the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VendorForm {
    /// The compiled plugins, `libswitchyard_<vendor>.so`.
    Library,
    /// The definitions, `plugins/definitions/<vendor>.vendor.yaml`, and nothing else.
    Definition,
}

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

    /// A new directory whose plugins directory holds the five vendors in `form`.
    pub fn with_vendors(form: VendorForm) -> TestDir {
        match form {
            VendorForm::Library => TestDir::new(),
            VendorForm::Definition => {
                let dir = TestDir::without_plugins();
                for vendor in VENDORS {
                    dir.install_definition(&artifacts().definition(vendor.name));
                }
                dir
            }
        }
    }

    /// Copies a definition into the plugins directory under its own name; returns the new path.
    pub fn install_definition(&self, definition: &Path) -> PathBuf {
        let name = definition.file_name().expect("a definition file");
        let to = self.plugins_dir().join(name);
        std::fs::copy(definition, &to).unwrap_or_else(|e| {
            panic!(
                "cannot copy {} to {}: {e}",
                definition.display(),
                to.display()
            )
        });
        to
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
