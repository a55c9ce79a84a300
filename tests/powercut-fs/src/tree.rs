//! What a power cut leaves, and what the backing directory holds: a tree of directories and
//! files, each file with its bytes.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use crate::content::Content;

/// What a power cut leaves: a directory tree with each file's synced bytes.
#[derive(Clone, Debug)]
pub enum Tree {
    File {
        content: Content,
        mode: u16,
        mtime: SystemTime,
    },
    Dir {
        entries: BTreeMap<OsString, Tree>,
        mode: u16,
    },
}

impl Tree {
    /// The bytes of the file at `path` (names from this directory down), if there is one.
    pub fn file(&self, path: &[&str]) -> Option<Vec<u8>> {
        let mut at = self;
        for name in path {
            let Tree::Dir { entries, .. } = at else {
                return None;
            };
            at = entries.get(OsStr::new(name))?;
        }
        match at {
            Tree::File { content, .. } => Some(content.to_vec()),
            Tree::Dir { .. } => None,
        }
    }
}
