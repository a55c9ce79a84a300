//! The filesystem as a disk with a volatile cache in front of it, as pure logic: every inode
//! holds what a reader sees now and what is on the disk. Operations change only the first; an
//! fsync of a file copies its bytes (and length, and mtime) to the second; an fsync of a
//! directory copies its entries, so a create, mkdir, unlink or rename in it becomes durable then
//! and only then. [`Model::durable`] is what a power cut leaves: the tree of synced entries
//! from the root, each file with its synced bytes.
//!
//! [`Model::torn`] is what a cut leaves on a disk that had persisted part of the unsynced
//! writes: each file may also keep its first few writes since its last sync and a prefix of
//! the next ([`crate::torn`]).
//!
//! Not modelled: hard links and symlinks (refused); permissions and ownership (kept as they
//! are, immediately); unsynced directory entries surviving a cut. A rename between two
//! directories becomes durable separately in each, so a cut may leave the file in both or
//! neither, as POSIX allows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use crate::content::Content;
use crate::torn::Unsynced;
pub use crate::tree::Tree;

pub type Ino = u64;
/// The root directory's inode, as FUSE numbers it.
pub const ROOT: Ino = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    /// A directory renamed into itself.
    Invalid,
    /// The power is cut: nothing is read or written any more.
    PoweredOff,
}

pub type FsResult<T> = Result<T, FsError>;

/// What `stat` tells about an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub is_dir: bool,
    pub size: u64,
    pub mode: u16,
    pub mtime: SystemTime,
    pub nlink: u32,
}

enum Kind {
    File {
        now: Content,
        synced: Content,
        mtime_synced: SystemTime,
        /// What changed `now` since `synced`, for a torn cut.
        unsynced: Unsynced,
        /// Names it has now: an unlinked file stays readable through open handles.
        links: u32,
    },
    Dir {
        now: BTreeMap<OsString, Ino>,
        synced: BTreeMap<OsString, Ino>,
        parent: Ino,
    },
}

struct Node {
    kind: Kind,
    mode: u16,
    mtime: SystemTime,
}

pub struct Model {
    nodes: HashMap<Ino, Node>,
    next: Ino,
    powered: bool,
}

impl Default for Model {
    fn default() -> Model {
        Model::new(0o755)
    }
}

impl Model {
    /// An empty filesystem whose root has `mode`.
    pub fn new(mode: u16) -> Model {
        let root = Node {
            kind: Kind::Dir {
                now: BTreeMap::new(),
                synced: BTreeMap::new(),
                parent: ROOT,
            },
            mode,
            mtime: SystemTime::now(),
        };
        Model {
            nodes: HashMap::from([(ROOT, root)]),
            next: ROOT + 1,
            powered: true,
        }
    }

    /// A filesystem holding `tree` as already on the disk (synced and current alike).
    pub fn from_tree(tree: &Tree) -> Model {
        let mode = match tree {
            Tree::Dir { mode, .. } => *mode,
            Tree::File { .. } => 0o755,
        };
        let mut model = Model::new(mode);
        if let Tree::Dir { entries, .. } = tree {
            model.load(ROOT, entries);
        }
        model
    }

    fn load(&mut self, dir: Ino, entries: &BTreeMap<OsString, Tree>) {
        for (name, tree) in entries {
            let ino = self.next;
            self.next += 1;
            let node = match tree {
                Tree::File {
                    content,
                    mode,
                    mtime,
                } => Node {
                    kind: Kind::File {
                        now: content.clone(),
                        synced: content.clone(),
                        mtime_synced: *mtime,
                        unsynced: Unsynced::default(),
                        links: 1,
                    },
                    mode: *mode,
                    mtime: *mtime,
                },
                Tree::Dir { mode, .. } => Node {
                    kind: Kind::Dir {
                        now: BTreeMap::new(),
                        synced: BTreeMap::new(),
                        parent: dir,
                    },
                    mode: *mode,
                    mtime: SystemTime::now(),
                },
            };
            self.nodes.insert(ino, node);
            if let Kind::Dir { now, synced, .. } = &mut self.node_mut(dir).kind {
                now.insert(name.clone(), ino);
                synced.insert(name.clone(), ino);
            }
            if let Tree::Dir { entries, .. } = tree {
                self.load(ino, entries);
            }
        }
    }

    /// Cuts the power: every later operation fails.
    pub fn power_off(&mut self) {
        self.powered = false;
    }

    pub fn attr(&self, ino: Ino) -> FsResult<Attr> {
        self.powered()?;
        let node = self.nodes.get(&ino).ok_or(FsError::NotFound)?;
        let (is_dir, size, nlink) = match &node.kind {
            Kind::File { now, links, .. } => (false, now.len(), *links),
            Kind::Dir { .. } => (true, 0, 2),
        };
        Ok(Attr {
            ino,
            is_dir,
            size,
            mode: node.mode,
            mtime: node.mtime,
            nlink,
        })
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> FsResult<Attr> {
        let ino = *self
            .entries_now(parent)?
            .get(name)
            .ok_or(FsError::NotFound)?;
        self.attr(ino)
    }

    /// The entries of a directory now, `.` and `..` first: (name, inode, is a directory).
    pub fn list(&self, dir: Ino) -> FsResult<Vec<(OsString, Ino, bool)>> {
        let entries = self.entries_now(dir)?;
        let parent = match &self.nodes[&dir].kind {
            Kind::Dir { parent, .. } => *parent,
            Kind::File { .. } => unreachable!("entries_now checked it is a directory"),
        };
        let mut out = vec![(".".into(), dir, true), ("..".into(), parent, true)];
        for (name, ino) in entries {
            let is_dir = matches!(self.nodes[ino].kind, Kind::Dir { .. });
            out.push((name.clone(), *ino, is_dir));
        }
        Ok(out)
    }

    /// A new empty file.
    pub fn create(&mut self, parent: Ino, name: &OsStr, mode: u16) -> FsResult<Attr> {
        let kind = Kind::File {
            now: Content::default(),
            synced: Content::default(),
            mtime_synced: SystemTime::now(),
            unsynced: Unsynced::default(),
            links: 1,
        };
        self.add(parent, name, kind, mode)
    }

    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, mode: u16) -> FsResult<Attr> {
        let kind = Kind::Dir {
            now: BTreeMap::new(),
            synced: BTreeMap::new(),
            parent,
        };
        self.add(parent, name, kind, mode)
    }

    fn add(&mut self, parent: Ino, name: &OsStr, kind: Kind, mode: u16) -> FsResult<Attr> {
        if self.entries_now(parent)?.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next;
        self.next += 1;
        let mtime = SystemTime::now();
        self.nodes.insert(ino, Node { kind, mode, mtime });
        self.entries_now_mut(parent)?.insert(name.to_owned(), ino);
        self.attr(ino)
    }

    pub fn read(&self, ino: Ino, offset: u64, size: usize) -> FsResult<Vec<u8>> {
        self.powered()?;
        match &self.nodes.get(&ino).ok_or(FsError::NotFound)?.kind {
            Kind::File { now, .. } => Ok(now.read(offset, size)),
            Kind::Dir { .. } => Err(FsError::IsDir),
        }
    }

    /// Writes `data` at `offset`, or at the end of the file when `append`; returns where it
    /// went.
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8], append: bool) -> FsResult<u64> {
        let (content, unsynced) = self.content_mut(ino)?;
        let at = if append { content.len() } else { offset };
        content.write(at, data);
        unsynced.write(at, data);
        self.touch(ino);
        Ok(at)
    }

    pub fn set_len(&mut self, ino: Ino, len: u64) -> FsResult<()> {
        let (content, unsynced) = self.content_mut(ino)?;
        content.set_len(len);
        unsynced.set_len(len);
        self.touch(ino);
        Ok(())
    }

    pub fn set_mode(&mut self, ino: Ino, mode: u16) -> FsResult<()> {
        self.node_checked(ino)?.mode = mode;
        Ok(())
    }

    pub fn set_mtime(&mut self, ino: Ino, mtime: SystemTime) -> FsResult<()> {
        self.node_checked(ino)?.mtime = mtime;
        Ok(())
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> FsResult<()> {
        let ino = *self
            .entries_now(parent)?
            .get(name)
            .ok_or(FsError::NotFound)?;
        if matches!(self.nodes[&ino].kind, Kind::Dir { .. }) {
            return Err(FsError::IsDir);
        }
        self.entries_now_mut(parent)?.remove(name);
        self.drop_link(ino);
        Ok(())
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> FsResult<()> {
        let ino = *self
            .entries_now(parent)?
            .get(name)
            .ok_or(FsError::NotFound)?;
        if !self.entries_now(ino)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.entries_now_mut(parent)?.remove(name);
        Ok(())
    }

    /// Moves an entry, replacing what `to_name` named (a file, or an empty directory).
    pub fn rename(&mut self, from: Ino, name: &OsStr, to: Ino, to_name: &OsStr) -> FsResult<()> {
        let ino = *self.entries_now(from)?.get(name).ok_or(FsError::NotFound)?;
        self.entries_now(to)?;
        let moving_dir = matches!(self.nodes[&ino].kind, Kind::Dir { .. });
        if moving_dir && self.is_within(to, ino) {
            return Err(FsError::Invalid);
        }
        if let Some(&old) = self.entries_now(to)?.get(to_name) {
            if old == ino {
                return Ok(());
            }
            match (&self.nodes[&old].kind, moving_dir) {
                (Kind::Dir { now, .. }, true) if now.is_empty() => {}
                (Kind::Dir { .. }, true) => return Err(FsError::NotEmpty),
                (Kind::Dir { .. }, _) => return Err(FsError::IsDir),
                (Kind::File { .. }, true) => return Err(FsError::NotDir),
                (Kind::File { .. }, false) => self.drop_link(old),
            }
        }
        self.entries_now_mut(from)?.remove(name);
        self.entries_now_mut(to)?.insert(to_name.to_owned(), ino);
        if let Kind::Dir { parent, .. } = &mut self.node_mut(ino).kind {
            *parent = to;
        }
        Ok(())
    }

    /// fsync: a file's bytes, length and mtime, or a directory's entries, reach the disk.
    pub fn sync(&mut self, ino: Ino) -> FsResult<()> {
        let node = self.node_checked(ino)?;
        let mtime = node.mtime;
        match &mut node.kind {
            Kind::File {
                now,
                synced,
                mtime_synced,
                unsynced,
                ..
            } => {
                *synced = now.clone();
                *mtime_synced = mtime;
                unsynced.clear();
            }
            Kind::Dir { now, synced, .. } => *synced = now.clone(),
        }
        Ok(())
    }

    /// What a power cut leaves: the synced entries from the root down, each file with its
    /// synced bytes. A directory reachable twice (a rename synced in one parent only) is kept
    /// at its first place.
    pub fn durable(&self) -> Tree {
        let mut seen = HashSet::from([ROOT]);
        self.durable_dir(ROOT, &mut seen, None)
    }

    /// What a cut leaves when the disk had also persisted part of the unsynced writes, drawn
    /// from `seed`: [`Model::durable`], each file with a prefix of its writes since its last
    /// sync (possibly none, possibly all, the last one kept possibly torn).
    pub fn torn(&self, seed: u64) -> Tree {
        let mut seen = HashSet::from([ROOT]);
        let mut rng = fastrand::Rng::with_seed(seed);
        self.durable_dir(ROOT, &mut seen, Some(&mut rng))
    }

    fn durable_dir(
        &self,
        dir: Ino,
        seen: &mut HashSet<Ino>,
        mut tear: Option<&mut fastrand::Rng>,
    ) -> Tree {
        let node = &self.nodes[&dir];
        let mut entries = BTreeMap::new();
        if let Kind::Dir { synced, .. } = &node.kind {
            for (name, ino) in synced {
                let child = &self.nodes[ino];
                let tree = match &child.kind {
                    Kind::File {
                        synced,
                        mtime_synced,
                        unsynced,
                        ..
                    } => Tree::File {
                        content: match tear.as_deref_mut() {
                            Some(rng) => unsynced.tear(synced, rng),
                            None => synced.clone(),
                        },
                        mode: child.mode,
                        mtime: *mtime_synced,
                    },
                    Kind::Dir { .. } if !seen.insert(*ino) => continue,
                    Kind::Dir { .. } => self.durable_dir(*ino, seen, tear.as_deref_mut()),
                };
                entries.insert(name.clone(), tree);
            }
        }
        Tree::Dir {
            entries,
            mode: node.mode,
        }
    }

    fn powered(&self) -> FsResult<()> {
        self.powered.then_some(()).ok_or(FsError::PoweredOff)
    }

    fn node_checked(&mut self, ino: Ino) -> FsResult<&mut Node> {
        self.powered()?;
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> &mut Node {
        self.nodes.get_mut(&ino).expect("a known inode")
    }

    fn entries_now(&self, dir: Ino) -> FsResult<&BTreeMap<OsString, Ino>> {
        self.powered()?;
        match &self.nodes.get(&dir).ok_or(FsError::NotFound)?.kind {
            Kind::Dir { now, .. } => Ok(now),
            Kind::File { .. } => Err(FsError::NotDir),
        }
    }

    fn entries_now_mut(&mut self, dir: Ino) -> FsResult<&mut BTreeMap<OsString, Ino>> {
        match &mut self.node_checked(dir)?.kind {
            Kind::Dir { now, .. } => Ok(now),
            Kind::File { .. } => Err(FsError::NotDir),
        }
    }

    fn content_mut(&mut self, ino: Ino) -> FsResult<(&mut Content, &mut Unsynced)> {
        match &mut self.node_checked(ino)?.kind {
            Kind::File { now, unsynced, .. } => Ok((now, unsynced)),
            Kind::Dir { .. } => Err(FsError::IsDir),
        }
    }

    fn touch(&mut self, ino: Ino) {
        self.node_mut(ino).mtime = SystemTime::now();
    }

    /// One name fewer. Its bytes stay: for handles still open, and for a synced entry that
    /// may still name it.
    fn drop_link(&mut self, ino: Ino) {
        if let Kind::File { links, .. } = &mut self.node_mut(ino).kind {
            *links = links.saturating_sub(1);
        }
    }

    /// Whether `dir` is `ancestor` or lies under it now.
    fn is_within(&self, mut dir: Ino, ancestor: Ino) -> bool {
        loop {
            if dir == ancestor {
                return true;
            }
            match &self.nodes[&dir].kind {
                Kind::Dir { parent, .. } if *parent != dir => dir = *parent,
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
