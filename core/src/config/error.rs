//! Configuration errors: every problem names the file, the line, the key and what was expected.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{KeyPath, Locator};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, in file order, one per line when displayed.
    #[error("{}", lines(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems found; empty for an unreadable file.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(problems) => problems,
        }
    }
}

fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// One problem in a configuration file. `key` is empty for a problem with the file as a whole.
/// `line` is always set for a problem found by parsing (an `Option` for source compatibility).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Collects problems while a file is checked, placing each on its line.
pub(crate) struct Problems {
    file: PathBuf,
    locator: Locator,
    list: Vec<Problem>,
    /// Keys already reported as wrong (an unset variable, a list where a mapping belongs):
    /// later checks of them or of anything below them would only repeat it.
    settled: BTreeSet<String>,
}

impl Problems {
    pub(crate) fn new(file: &Path, locator: Locator) -> Self {
        Problems {
            file: file.to_owned(),
            locator,
            list: Vec::new(),
            settled: BTreeSet::new(),
        }
    }

    pub(crate) fn add(&mut self, at: &KeyPath, message: impl Into<String>) {
        if at.shown_prefixes().any(|key| self.settled.contains(&key)) {
            return;
        }
        let line = self.locator.line(at);
        self.push(line, at.to_string(), message.into());
    }

    /// Reports a problem and keeps any later one at the same key, or below it, quiet.
    pub(crate) fn add_settled(&mut self, at: &KeyPath, message: impl Into<String>) {
        self.add(at, message);
        self.settled.insert(at.to_string());
    }

    /// A problem with the file as a whole, at `line`.
    pub(crate) fn add_file(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.push(line, String::new(), message.into());
    }

    /// A YAML syntax error: serde_yaml knows its line; there is no key yet.
    pub(crate) fn syntax(&mut self, error: &serde_yaml::Error) {
        self.add_file(error.location().map(|l| l.line()), error.to_string());
    }

    /// See [`Locator::too_deep`].
    pub(crate) fn too_deep(&self) -> Option<usize> {
        self.locator.too_deep()
    }

    pub(crate) fn into_error(self) -> ConfigError {
        ConfigError::Invalid(self.into_sorted())
    }

    /// The problems, in line order.
    pub(crate) fn into_sorted(mut self) -> Vec<Problem> {
        self.list.sort_by_key(|p| p.line);
        self.list
    }

    /// The line `at` is on, as a problem there would name it.
    pub(crate) fn line(&self, at: &KeyPath) -> usize {
        self.locator.line(at).unwrap_or(1)
    }

    /// Every problem names a line: one the file does not place (a key missing at the top
    /// level, an empty file) is on line 1, where the file starts.
    fn push(&mut self, line: Option<usize>, key: String, message: String) {
        let path = self.file.clone();
        self.list.push(Problem {
            path,
            line: Some(line.unwrap_or(1)),
            key,
            message,
        });
    }
}
