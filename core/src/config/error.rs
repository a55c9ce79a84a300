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
    /// Keys already reported as wrong (an unset variable): later checks would only repeat it.
    settled: BTreeSet<String>,
}

impl Problems {
    pub(crate) fn new(file: &Path, text: &str) -> Self {
        Problems {
            file: file.to_owned(),
            locator: Locator::new(text),
            list: Vec::new(),
            settled: BTreeSet::new(),
        }
    }

    pub(crate) fn add(&mut self, at: &KeyPath, message: impl Into<String>) {
        let key = at.to_string();
        if self.settled.contains(&key) {
            return;
        }
        let line = self.locator.line(at);
        self.push(line, key, message.into());
    }

    /// Reports a problem and keeps any later one at the same key quiet.
    pub(crate) fn add_settled(&mut self, at: &KeyPath, message: impl Into<String>) {
        self.add(at, message);
        self.settled.insert(at.to_string());
    }

    /// A YAML syntax error: serde_yaml knows its line; there is no key yet.
    pub(crate) fn syntax(&mut self, error: &serde_yaml::Error) {
        let line = error.location().map(|l| l.line());
        self.push(line, String::new(), error.to_string());
    }

    /// A shape error from deserializing the expanded tree (unknown key, wrong type).
    pub(crate) fn shape(&mut self, error: &serde_path_to_error::Error<serde_yaml::Error>) {
        let mut at = KeyPath::root();
        for seg in error.path().iter() {
            at = match seg {
                serde_path_to_error::Segment::Seq { index } => at.index(*index),
                serde_path_to_error::Segment::Map { key } => at.key(key),
                serde_path_to_error::Segment::Enum { variant } => at.key(variant),
                serde_path_to_error::Segment::Unknown => break,
            };
        }
        self.add(&at, without_values(&error.inner().to_string()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn into_error(mut self) -> ConfigError {
        self.list.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        ConfigError::Invalid(self.list)
    }

    fn push(&mut self, line: Option<usize>, key: String, message: String) {
        let path = self.file.clone();
        self.list.push(Problem {
            path,
            line,
            key,
            message,
        });
    }
}

/// serde quotes the value it did not expect (`invalid type: string "...", expected a map`);
/// a mis-indented secret would be printed, so only its kind is kept.
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some(split) = rest.rfind(", expected ") else {
            continue;
        };
        let found = &rest[..split];
        let kind = found
            .find(['"', '`'])
            .map_or(found, |quote| found[..quote].trim_end());
        return format!("{prefix}{kind}{}", &rest[split..]);
    }
    message.to_owned()
}
