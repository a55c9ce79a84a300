//! `server.include`: per-team files, each holding a top-level `workspaces:` map and nothing else.
//!
//! An entry is a directory (every `*.yaml` and `*.yml` in it, by name), a file, or a glob such
//! as `teams/*.yaml`; `include` is one entry or a list of them, relative to the main file. Files
//! are read in that order, each file once; the main file is never included in itself.

use std::path::{Component, Path, PathBuf};

use serde_yaml::Value;

use super::error::Problems;
use super::locate::KeyPath;

/// An included file, read.
pub(crate) struct Included {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// The files `raw` names, read, in order. Problems (an entry that names nothing, an unreadable
/// file) are the main file's, at the entry.
pub(crate) fn files(raw: Option<Value>, main: &Path, problems: &mut Problems) -> Vec<Included> {
    let at = KeyPath::root().key("server").key("include");
    let entries: Vec<(KeyPath, Value)> = match raw {
        None => return Vec::new(),
        Some(Value::Sequence(items)) => (items.into_iter().enumerate())
            .map(|(i, item)| (at.index(i), item))
            .collect(),
        Some(item) => vec![(at.clone(), item)],
    };
    let base = main.parent().unwrap_or(Path::new(""));
    // Compared by canonical path, so `./a.yaml` and `a.yaml` are one file.
    let mut seen = vec![canonical(main)];
    let mut found = Vec::new();
    for (at, entry) in entries {
        let Value::String(entry) = entry else {
            problems.add(&at, "expected a directory or a glob such as ./teams/*.yaml");
            continue;
        };
        for path in matches(&at, &entry, base, problems) {
            let key = canonical(&path);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            match std::fs::read_to_string(&path) {
                Ok(text) => found.push(Included { path, text }),
                Err(error) => {
                    let message = format!("cannot read {}: {error}", path.display());
                    problems.add(&at, message);
                }
            }
        }
    }
    found
}

/// The files one entry names, sorted by name.
fn matches(at: &KeyPath, entry: &str, base: &Path, problems: &mut Problems) -> Vec<PathBuf> {
    if entry.trim().is_empty() {
        problems.add(at, "must not be empty");
        return Vec::new();
    }
    // Without `./`, so files are named `conf/teams/a.yaml` in problems, not `conf/./teams/a.yaml`.
    let entry: PathBuf = (Path::new(entry).components())
        .filter(|c| *c != Component::CurDir)
        .collect();
    let path = base.join(&entry);
    if path.is_dir() {
        return match yaml_files(&path) {
            Ok(files) => files,
            Err(error) => {
                let message = format!("cannot list {}: {error}", path.display());
                problems.add(at, message);
                Vec::new()
            }
        };
    }
    let entry = entry.to_string_lossy();
    if !entry.contains(['*', '?', '[']) {
        if path.is_file() {
            return vec![path];
        }
        let message = format!(
            "{} does not exist: expected a directory of YAML files, a file, or a glob such as \
             ./teams/*.yaml",
            path.display()
        );
        problems.add(at, message);
        return Vec::new();
    }
    // The base is escaped so that only the entry's own wildcards are wildcards.
    let pattern = if Path::new(entry.as_ref()).is_absolute() {
        entry.clone().into_owned()
    } else {
        let base = glob::Pattern::escape(&base.to_string_lossy());
        if base.is_empty() {
            entry.clone().into_owned()
        } else {
            format!("{base}/{entry}")
        }
    };
    let paths = match glob::glob(&pattern) {
        Ok(paths) => paths,
        Err(error) => {
            problems.add(at, format!("invalid glob {entry:?}: {error}"));
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for path in paths {
        match path {
            Ok(path) if path.is_file() => files.push(path),
            Ok(_) => {}
            Err(error) => problems.add(at, format!("cannot read {error}")),
        }
    }
    files.sort();
    files
}

/// The `*.yaml` and `*.yml` files directly in `dir`, by name.
fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let yaml = path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}
