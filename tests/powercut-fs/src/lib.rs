//! A FUSE filesystem that loses what a power cut would lose, for testing crash safety the way
//! Jepsen tests databases with LazyFS.
//!
//! [`PowerCut::mount`] mounts, over a backing directory that plays the disk, a filesystem whose
//! reads see every write at once (as the page cache would) but whose writes reach the disk only
//! when synced:
//!
//! - a file's data writes, truncations and mtime, on `fsync`/`fdatasync` of that file (any
//!   descriptor of it);
//! - a directory's entries (create, mkdir, unlink, rmdir, rename), on `fsync` of that directory;
//!   a new file or directory survives only once its parent is synced, and then with whatever of
//!   its own contents was synced. A rename between two directories is durable separately in
//!   each.
//!
//! [`PowerCut::cut`] cuts the power: every later operation fails with EIO, everything not
//! synced is dropped, the backing directory is made to hold exactly the synced state, and the
//! filesystem is unmounted. Mounting again over the same backing directory starts from what
//! survived, as a machine rebooting does. [`PowerCut::cut_torn`] cuts it on a disk that had
//! persisted part of the unsynced writes: each file may also keep, drawn from a seed, its first
//! few writes since its last sync and a prefix of the next (a torn write), as a real disk may.
//!
//! Not modelled (see [`model`]): hard links, symlinks and special files (refused); permissions
//! and ownership changes (kept at once); `sync_file_range`, which syncs nothing here as on a
//! real disk it persists nothing a cut would keep; unsynced directory entries surviving a cut;
//! unsynced writes surviving out of order or as zeros.
//!
//! It needs `/dev/fuse`, and either root (it mounts with mount(2) directly) or `fusermount3`.

mod content;
mod disk;
mod fuse;
pub mod model;
mod torn;
mod tree;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption};

pub use content::{Content, CHUNK};
pub use model::{FsError, Model, Tree};

/// A mounted power-cut filesystem. Dropping it cuts the power too.
pub struct PowerCut {
    backing: PathBuf,
    mountpoint: PathBuf,
    model: Arc<Mutex<Model>>,
    /// What the backing directory held at mount, sharing chunks with the model.
    base: Tree,
    session: Option<BackgroundSession>,
}

impl PowerCut {
    /// Mounts at `mountpoint` a filesystem holding what `backing` holds (directories and
    /// regular files only).
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<PowerCut> {
        PowerCut::mount_with_sync_delay(backing, mountpoint, Duration::ZERO)
    }

    /// [`PowerCut::mount`] on a disk whose file syncs take `sync_delay` each: a process is then
    /// often caught between a write and its sync, where a torn cut ([`PowerCut::cut_torn`])
    /// leaves part of that write.
    pub fn mount_with_sync_delay(
        backing: &Path,
        mountpoint: &Path,
        sync_delay: Duration,
    ) -> io::Result<PowerCut> {
        let base = disk::read_tree(backing)?;
        let model = Arc::new(Mutex::new(Model::from_tree(&base)));
        let owner = std::fs::metadata(backing)?;
        let fs = fuse::PowerCutFs {
            model: model.clone(),
            sync_delay,
            uid: owner.uid(),
            gid: owner.gid(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("switchyard-powercut".into()),
            MountOption::NoAtime,
        ];
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(PowerCut {
            backing: backing.to_owned(),
            mountpoint: mountpoint.to_owned(),
            model,
            base,
            session: Some(session),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Cuts the power: drops everything not synced, leaves the backing directory holding what
    /// survived, and unmounts. Returns what survived.
    pub fn cut(mut self) -> io::Result<Tree> {
        self.power_off(None)
    }

    /// [`PowerCut::cut`], on a disk that had persisted part of the unsynced writes: each file
    /// keeps a prefix of its writes since its last sync, the last one possibly torn, as drawn
    /// from `seed` (the same seed and writes leave the same files).
    pub fn cut_torn(mut self, seed: u64) -> io::Result<Tree> {
        self.power_off(Some(seed))
    }

    fn power_off(&mut self, tear: Option<u64>) -> io::Result<Tree> {
        let durable = {
            let mut model = self.model.lock().unwrap_or_else(|p| p.into_inner());
            model.power_off();
            match tear {
                Some(seed) => model.torn(seed),
                None => model.durable(),
            }
        };
        let unmounted = match self.session.take() {
            // A descriptor still open does not hold a power cut back: it reads EIO from now
            // on, and the mount goes once it is closed.
            Some(session) => session.umount_and_join().or_else(|error| {
                match error.raw_os_error() {
                    Some(libc::EBUSY) => detach(&self.mountpoint),
                    // The unmount went through, and the kernel aborted the connection while a
                    // request of the killed server was still on it: the session's last read
                    // says so. Unmounted all the same.
                    Some(libc::ECONNABORTED) => Ok(()),
                    _ => Err(error),
                }
            }),
            None => Ok(()),
        };
        disk::write_tree(&self.backing, &self.base, &durable)?;
        self.base = durable.clone();
        unmounted.map(|()| durable)
    }
}

/// Lazy unmount: `umount -l` as root, else `fusermount3 -u -z`.
fn detach(mountpoint: &Path) -> io::Result<()> {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .arg(mountpoint)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if run("umount", &["-l"]) || run("fusermount3", &["-u", "-z"]) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cannot unmount {} even lazily",
            mountpoint.display()
        )))
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        if self.session.is_some() {
            let _ = self.power_off(None);
        }
    }
}
