//! Why a plugin file was refused: each error names the file (a definition's, its line and key
//! too), and [`refusal_message`] puts every one of them in one message.

use std::path::{Path, PathBuf};

use switchyard_plugin_abi as abi;

/// Why a plugin was refused. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{}", dir_problem(path, source))]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot be loaded: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error("{}: does not export `switchyard_plugin_v1` (build it with switchyard_plugin::export_plugin!)", path.display())]
    MissingSymbol { path: PathBuf },
    #[error("{}: built for plugin ABI {found}.x, this server speaks {}.{}; rebuild it against this server's switchyard-plugin", path.display(), abi::ABI_MAJOR, abi::ABI_MINOR)]
    WrongAbi { path: PathBuf, found: u32 },
    #[error("{}: built for plugin ABI {}.{found}, newer than this server's {}.{}; upgrade the server or build the plugin against an older switchyard-plugin", path.display(), abi::ABI_MAJOR, abi::ABI_MAJOR, abi::ABI_MINOR)]
    NewerMinor { path: PathBuf, found: u32 },
    #[error("{}: refused before loading: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: invalid descriptor: {reason}", path.display())]
    InvalidDescriptor { path: PathBuf, reason: String },
    #[error("{}: test vector {index} fails: the core's HMAC of its body does not match the declared header value ({reason})", path.display())]
    TestVector {
        path: PathBuf,
        index: usize,
        reason: String,
    },
    /// One problem of a vendor definition, on its line.
    #[error("{}:{line}: {}{message}", path.display(), if key.is_empty() { String::new() } else { format!("{key}: ") })]
    Definition {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{}: vendor `{vendor}` is already provided by {}", path.display(), other.display())]
    DuplicateVendor {
        path: PathBuf,
        vendor: String,
        other: PathBuf,
    },
}

impl PluginError {
    /// The file refused.
    pub fn path(&self) -> &Path {
        match self {
            PluginError::Dir { path, .. }
            | PluginError::Open { path, .. }
            | PluginError::MissingSymbol { path }
            | PluginError::WrongAbi { path, .. }
            | PluginError::NewerMinor { path, .. }
            | PluginError::Corrupt { path, .. }
            | PluginError::InvalidDescriptor { path, .. }
            | PluginError::TestVector { path, .. }
            | PluginError::Definition { path, .. }
            | PluginError::DuplicateVendor { path, .. } => path,
        }
    }
}

fn dir_problem(path: &Path, source: &std::io::Error) -> String {
    match source.kind() {
        std::io::ErrorKind::NotFound => {
            format!("the plugins directory {} does not exist", path.display())
        }
        _ => format!(
            "cannot read the plugins directory {}: {source}",
            path.display()
        ),
    }
}

/// Why [`Plugins::load_dir`] failed, in one message: the directory's own problem, or every
/// library refused.
pub fn refusal_message(errors: &[PluginError]) -> String {
    match errors {
        [only @ PluginError::Dir { .. }] => only.to_string(),
        _ => {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            // A definition may have several problems, each its own line.
            let files: std::collections::BTreeSet<&Path> =
                errors.iter().map(PluginError::path).collect();
            format!("{} plugin(s) refused:\n{}", files.len(), lines.join("\n"))
        }
    }
}
