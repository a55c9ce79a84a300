//! Live reload: SIGHUP and `POST /admin/reload` (`switchyard reload`) read the configuration
//! again. A valid one replaces the running topology at once: requests in flight finish on the
//! one they started with, new ones see the new one, sinks whose configuration is unchanged
//! keep their running worker, and nothing queued is touched. A changed sink's old worker
//! finishes its deliveries in flight before the new one starts (see [`crate::deliver`]). An invalid one is refused with
//! every problem, and the running configuration stays. A sink the new configuration drops
//! keeps its queue in the store, listed as orphaned, until a configuration brings it back.
//! Plugin libraries new to the plugins directory are loaded, and definitions new or changed
//! (see [`crate::plugins::Rescan`]);
//! the `server` section is read at start-up only.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{self, Config, ConfigError};
use crate::deliver::Workers;
use crate::metrics::Metrics;
use crate::plugins::{self, PluginError, Plugins};
use crate::runtime::topology::{Topology, TopologyError};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("{}", plugins::refusal_message(.0))]
    Plugins(Vec<PluginError>),
}

/// What a reload changed.
#[derive(Debug)]
pub struct Reloaded {
    pub workspaces: usize,
    /// `workspace/sink` of the sinks it started (new or reconfigured).
    pub started: Vec<String>,
    /// `workspace/sink` of the sinks it stopped (removed or reconfigured).
    pub stopped: Vec<String>,
    /// The `server` section differs from the running one: it applies at the next restart.
    pub server_changed: bool,
    /// The vendors whose library this reload loaded.
    pub plugins_loaded: Vec<String>,
    /// Libraries that replace one already loaded, which only a restart puts to use.
    pub restart_needed: Vec<String>,
}

pub struct Reloader {
    path: PathBuf,
    plugins: Arc<ArcSwap<Plugins>>,
    /// The running `server.plugins_dir` (or its default).
    plugins_dir: PathBuf,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    workers: Workers,
    topology: Arc<ArcSwap<Topology>>,
    /// The running configuration; held while a reload runs, so two never interleave.
    running: tokio::sync::Mutex<Config>,
}

impl Reloader {
    pub fn new(
        running: Config,
        plugins: Arc<ArcSwap<Plugins>>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        workers: Workers,
        topology: Arc<ArcSwap<Topology>>,
    ) -> Reloader {
        Reloader {
            path: running.path.clone(),
            plugins,
            plugins_dir: plugins::plugins_dir(running.server.plugins_dir.as_ref()),
            store,
            metrics,
            workers,
            topology,
            running: tokio::sync::Mutex::new(running),
        }
    }

    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let mut running = self.running.lock().await;
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|e| ConfigError::Read {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?;
        let config = match loaded {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(%error, "reload refused; the running configuration stays");
                return Err(error.into());
            }
        };
        let (loaded, restart_needed) = self.rescan_plugins().await?;
        let plugins = self.plugins.load_full();
        config.check_vendors(&|vendor| plugins.get(vendor.as_str()).is_some())?;
        config.check_unsigned(&|vendor| {
            (plugins.get(vendor.as_str())).is_some_and(|p| p.scheme.is_none())
        })?;
        let previous = self.topology.load_full();
        let next = Topology::build(
            &config,
            &plugins,
            &self.store,
            &self.metrics,
            &self.workers,
            Some(&previous),
        )
        .await?;
        let (started, stopped) = next.changes_from(&previous);
        let server_changed = config.server != running.server;
        let reloaded = Reloaded {
            workspaces: config.workspaces.len(),
            started,
            stopped,
            server_changed,
            plugins_loaded: loaded,
            restart_needed,
        };
        let next = Arc::new(next);
        self.topology.store(next.clone());
        previous.stop_replaced(&next);
        *running = config;
        tracing::info!(
            workspaces = reloaded.workspaces,
            started = %reloaded.started.join(","),
            stopped = %reloaded.stopped.join(","),
            "configuration reloaded"
        );
        if server_changed {
            tracing::warn!("the server section changed: it takes effect at the next restart");
        }
        Ok(reloaded)
    }

    /// Loads the libraries new to the plugins directory; returns their vendors and what needs
    /// a restart. Those loaded stay loaded even if the configuration is then refused.
    async fn rescan_plugins(&self) -> Result<(Vec<String>, Vec<String>), ReloadError> {
        let (plugins, dir) = (self.plugins.load_full(), self.plugins_dir.clone());
        let rescan = tokio::task::spawn_blocking(move || plugins.rescan(&dir))
            .await
            .map_err(|e| {
                ReloadError::Plugins(vec![PluginError::Open {
                    path: self.plugins_dir.clone(),
                    reason: format!("the rescan stopped: {e}"),
                }])
            })?
            .map_err(|errors| {
                let error = ReloadError::Plugins(errors);
                tracing::error!(%error, "reload refused; the running configuration stays");
                error
            })?;
        let loaded: Vec<String> = rescan.loaded.iter().map(|v| v.to_string()).collect();
        if !loaded.is_empty() {
            tracing::info!(vendors = %loaded.join(","), "plugin libraries loaded");
            self.plugins.store(Arc::new(rescan.plugins));
        }
        for note in &rescan.restart_needed {
            tracing::warn!("{note}");
        }
        Ok((loaded, rescan.restart_needed))
    }
}
