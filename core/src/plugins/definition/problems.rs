//! A definition's problems, each placed on its file's line with its key, as routes.yaml's are
//! (the same [`Locator`]), and all of them reported at once.

use std::path::{Path, PathBuf};

use crate::base::locate::{KeyPath, Locator};
use crate::plugins::PluginError;

pub(super) struct Problems {
    path: PathBuf,
    locator: Locator,
    list: Vec<(usize, String, String)>,
}

impl Problems {
    pub(super) fn new(path: &Path, text: &str) -> Problems {
        Problems {
            path: path.to_path_buf(),
            locator: Locator::new(text),
            list: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, at: &KeyPath, message: impl Into<String>) {
        let line = self.locator.line(at).unwrap_or(1);
        self.list.push((line, at.to_string(), message.into()));
    }

    /// A problem with the file as a whole (a YAML syntax error, nesting too deep).
    pub(super) fn add_file(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.list
            .push((line.unwrap_or(1), String::new(), message.into()));
    }

    pub(super) fn too_deep(&self) -> Option<usize> {
        self.locator.too_deep()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems in line order, as the errors the loader reports.
    pub(super) fn into_errors(mut self) -> Vec<PluginError> {
        self.list.sort_by_key(|(line, _, _)| *line);
        let path = self.path;
        (self.list.into_iter())
            .map(|(line, key, message)| PluginError::Definition {
                path: path.clone(),
                line,
                key,
                message,
            })
            .collect()
    }
}
