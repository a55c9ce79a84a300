//! Directory entries that survive a power cut. A file's `fsync` makes its bytes durable, not
//! its name: the name lives in the directory, which must be synced too, and a directory
//! created on the way lives in its own parent. The store and the file sink create what they
//! write through here.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `create_dir_all`, then syncs the parent of every directory it created, deepest first, so
/// the whole new path survives a power cut. A directory that already existed is left alone.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    let missing = missing(dir);
    fs::create_dir_all(dir)?;
    for created in &missing {
        sync_dir(parent(created))?;
    }
    Ok(())
}

/// `dir` and its ancestors that do not exist yet, deepest first.
fn missing(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        found.push(path.to_path_buf());
        at = path.parent();
    }
    found
}

/// The directory holding `path`; `.` for a bare name.
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_every_missing_directory_and_names_only_those() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        assert_eq!(
            missing(&deep),
            [deep.clone(), root.path().join("a/b"), root.path().join("a")]
        );
        create_dirs(&deep).unwrap();
        assert!(deep.is_dir());
        assert!(missing(&deep).is_empty());
        create_dirs(&deep).unwrap();
        assert_eq!(parent(Path::new("events.jsonl")), Path::new("."));
    }
}
