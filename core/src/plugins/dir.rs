//! The loaded plugins, one per vendor: every `libswitchyard_*` library and `*.vendor.yaml`
//! definition of the plugins directory, each refusal reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{PluginError, VendorPlugin};
use crate::base::names::VendorName;

/// File names the loader considers: `libswitchyard_<vendor>.so` (or the platform's suffix).
const FILE_PREFIX: &str = "libswitchyard_";

/// Where plugins are looked for: the configured directory, else the binary's own directory.
pub fn plugins_dir(configured: Option<&PathBuf>) -> PathBuf {
    configured.cloned().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

/// Every loaded plugin, by vendor.
#[derive(Debug, Default, Clone)]
pub struct Plugins {
    pub(super) by_vendor: BTreeMap<VendorName, Arc<VendorPlugin>>,
}

impl Plugins {
    /// Loads every library and definition in `dir`, reporting every refusal, not just the first.
    pub fn load_dir(dir: &Path) -> Result<Plugins, Vec<PluginError>> {
        Plugins::load_files(&Plugins::plugin_paths(dir)?)
    }

    /// The `libswitchyard_*` libraries and `*.vendor.yaml` definitions in `dir`, in name order.
    pub(super) fn plugin_paths(dir: &Path) -> Result<Vec<PathBuf>, Vec<PluginError>> {
        let entries = std::fs::read_dir(dir).map_err(|source| {
            vec![PluginError::Dir {
                path: dir.to_path_buf(),
                source,
            }]
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let library = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(FILE_PREFIX) && n.ends_with(std::env::consts::DLL_SUFFIX)
                });
                library || super::definition::is_definition(p)
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Loads the given libraries and definitions.
    pub fn load_files(paths: &[PathBuf]) -> Result<Plugins, Vec<PluginError>> {
        let mut plugins = Plugins::default();
        let mut errors = Vec::new();
        for path in paths {
            match VendorPlugin::load(path) {
                Ok(plugin) => {
                    if let Some(other) = plugins.by_vendor.get(&plugin.vendor) {
                        errors.push(PluginError::DuplicateVendor {
                            path: path.clone(),
                            vendor: plugin.vendor.to_string(),
                            other: other.path.clone(),
                        });
                    } else {
                        plugins
                            .by_vendor
                            .insert(plugin.vendor.clone(), Arc::new(plugin));
                    }
                }
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(plugins)
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, vendor: &str) -> Option<&Arc<VendorPlugin>> {
        self.by_vendor.get(vendor)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<VendorPlugin>> {
        self.by_vendor.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_vendor.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_vendor.len()
    }
}
