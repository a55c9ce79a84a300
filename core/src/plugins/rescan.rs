//! What a reload finds in the plugins directory. A library new to the running server is loaded,
//! its test vectors proven as at start-up. Libraries are never unloaded, so one that replaces a
//! library already loaded (the same file changed, or another file for a loaded vendor) cannot
//! take its place: it is reported as needing a restart, naming the vendor and the files.
//! Definitions are data: one new or changed is read and proven again and takes the place of the
//! one loaded; one that fails refuses the reload, and the one loaded stays.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::{PluginError, Plugins, VendorPlugin};
use crate::base::names::VendorName;

/// A library file's identity: a file copied over or rebuilt in place gets another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    pub(super) fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            device: meta.dev(),
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// What a reload made of the plugins directory.
#[derive(Debug)]
pub struct Rescan {
    /// The plugins loaded before and those loaded now.
    pub plugins: Plugins,
    /// The vendors whose library was loaded now.
    pub loaded: Vec<VendorName>,
    /// Libraries that replace one already loaded: each names the vendor and the files.
    pub restart_needed: Vec<String>,
}

impl Plugins {
    /// Loads the libraries in `dir` that these plugins do not hold yet. Refused libraries are
    /// reported as at start-up, and so is a second library for a vendor whose first is still
    /// there.
    pub fn rescan(&self, dir: &Path) -> Result<Rescan, Vec<PluginError>> {
        let paths = Plugins::plugin_paths(dir)?;
        let mut rescan = Rescan {
            plugins: self.clone(),
            loaded: Vec::new(),
            restart_needed: Vec::new(),
        };
        let mut errors = Vec::new();
        for path in &paths {
            if let Some(known) = self.iter().find(|p| &p.path == path) {
                match known.definition() {
                    Some(definition) if definition.unchanged(path) => continue,
                    Some(_) => {}
                    None => {
                        if known.stamp != FileStamp::of(path) {
                            rescan.restart_needed.push(format!(
                                "vendor `{}`: {} changed since it was loaded; the server still \
                                 runs the library it loaded (libraries are never unloaded): \
                                 restart it to use the new one",
                                known.vendor,
                                path.display()
                            ));
                        }
                        continue;
                    }
                }
            }
            let plugin = match VendorPlugin::load(path) {
                Ok(plugin) => plugin,
                Err(refused) => {
                    errors.extend(refused);
                    continue;
                }
            };
            match rescan.plugins.get(plugin.vendor.as_str()) {
                Some(other) if &other.path != path && paths.contains(&other.path) => {
                    errors.push(PluginError::DuplicateVendor {
                        path: path.clone(),
                        vendor: plugin.vendor.to_string(),
                        other: other.path.clone(),
                    });
                }
                Some(other)
                    if &other.path != path
                        && other.definition().is_none()
                        && plugin.definition().is_none() =>
                {
                    rescan.restart_needed.push(format!(
                        "vendor `{}`: {} replaces {}, which the server loaded and still runs \
                         (libraries are never unloaded): restart it to use the new one",
                        plugin.vendor,
                        path.display(),
                        other.path.display()
                    ))
                }
                _ => {
                    rescan.loaded.push(plugin.vendor.clone());
                    (rescan.plugins.by_vendor).insert(plugin.vendor.clone(), Arc::new(plugin));
                }
            }
        }
        for gone in self.iter().filter(|p| !paths.contains(&p.path)) {
            let current = rescan.plugins.get(gone.vendor.as_str());
            if gone.definition().is_some() && current.is_some_and(|c| c.path == gone.path) {
                rescan.restart_needed.push(format!(
                    "vendor `{}`: {} was removed; the server keeps the definition it loaded until \
                     it restarts",
                    gone.vendor,
                    gone.path.display()
                ));
            }
        }
        if errors.is_empty() {
            Ok(rescan)
        } else {
            Err(errors)
        }
    }
}
