//! The backing directory, which plays the disk: read whole into a [`Tree`] when the filesystem
//! is mounted, and made to hold exactly a power cut's durable tree when the power is cut.
//! Writing back compares the cut's tree with the one read at mount and writes only the chunks
//! that differ, so a cut costs what changed, not the size of everything.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use crate::content::Content;
use crate::model::Tree;

/// Everything under `dir`: directories and regular files only.
pub fn read_tree(dir: &Path) -> io::Result<Tree> {
    let mut entries = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        let mode = (meta.permissions().mode() & 0o7777) as u16;
        let tree = if meta.is_dir() {
            read_tree(&path)?
        } else if meta.is_file() {
            Tree::File {
                content: Content::from_bytes(&fs::read(&path)?),
                mode,
                mtime: meta.modified()?,
            }
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: only files and directories are modelled",
                    path.display()
                ),
            ));
        };
        entries.insert(entry.file_name(), tree);
    }
    let mode = (fs::metadata(dir)?.permissions().mode() & 0o7777) as u16;
    Ok(Tree::Dir { entries, mode })
}

/// Makes `dir`, which holds `base`, hold `new` instead.
pub fn write_tree(dir: &Path, base: &Tree, new: &Tree) -> io::Result<()> {
    let (Tree::Dir { entries: old, .. }, Tree::Dir { entries, mode }) = (base, new) else {
        return Err(io::Error::other("the root of a tree is a directory"));
    };
    for (name, tree) in old {
        if !entries.contains_key(name) {
            remove(&dir.join(name), tree)?;
        }
    }
    for (name, tree) in entries {
        let path = dir.join(name);
        match (old.get(name), tree) {
            (
                Some(Tree::File { content: was, .. }),
                Tree::File {
                    content,
                    mode,
                    mtime,
                },
            ) => {
                if !same_file(old.get(name), tree) {
                    write_file(&path, Some(was), content, *mode, *mtime)?;
                }
            }
            (Some(base @ Tree::Dir { .. }), Tree::Dir { .. }) => write_tree(&path, base, tree)?,
            (was, tree) => {
                if let Some(was) = was {
                    remove(&path, was)?;
                }
                match tree {
                    Tree::File {
                        content,
                        mode,
                        mtime,
                    } => write_file(&path, None, content, *mode, *mtime)?,
                    Tree::Dir { mode, .. } => {
                        fs::create_dir(&path)?;
                        let empty = Tree::Dir {
                            entries: BTreeMap::new(),
                            mode: *mode,
                        };
                        write_tree(&path, &empty, tree)?;
                    }
                }
            }
        }
    }
    fs::set_permissions(dir, Permissions::from_mode(u32::from(*mode)))
}

fn same_file(base: Option<&Tree>, new: &Tree) -> bool {
    match (base, new) {
        (
            Some(Tree::File {
                content: a,
                mode: am,
                mtime: at,
            }),
            Tree::File {
                content: b,
                mode: bm,
                mtime: bt,
            },
        ) => {
            a.len() == b.len()
                && am == bm
                && at == bt
                && (0..b.chunks().count()).all(|i| b.shares_chunk(a, i))
        }
        _ => false,
    }
}

/// Writes the chunks of `content` that `base` (what the file holds now) does not share.
fn write_file(
    path: &Path,
    base: Option<&Content>,
    content: &Content,
    mode: u16,
    mtime: std::time::SystemTime,
) -> io::Result<()> {
    // Not truncated: the chunks it already holds stay, and set_len below cuts the rest.
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    for (i, (offset, chunk, len)) in content.chunks().enumerate() {
        if base.is_some_and(|b| content.shares_chunk(b, i)) {
            continue;
        }
        file.write_all_at(&chunk[..len], offset)?;
    }
    file.set_len(content.len())?;
    file.set_permissions(Permissions::from_mode(u32::from(mode)))?;
    file.set_modified(mtime)
}

fn remove(path: &Path, tree: &Tree) -> io::Result<()> {
    match tree {
        Tree::File { .. } => fs::remove_file(path),
        Tree::Dir { .. } => fs::remove_dir_all(path),
    }
}
