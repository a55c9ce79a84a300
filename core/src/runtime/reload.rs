//! Live reload: SIGHUP and `POST /admin/reload` (`switchyard reload`) read the configuration
//! again. A valid one replaces the running topology at once: requests in flight finish on the
//! one they started with, new ones see the new one, sinks whose configuration is unchanged
//! keep their running worker, and nothing queued is touched. An invalid one is refused with
//! every problem, and the running configuration stays. A sink the new configuration drops
//! keeps its queue in the store, listed as orphaned, until a configuration brings it back.
//! Plugins and the `server` section are read at start-up only.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{self, Config, ConfigError};
use crate::metrics::Metrics;
use crate::plugins::Plugins;
use crate::runtime::topology::{Topology, TopologyError};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
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
}

pub struct Reloader {
    path: PathBuf,
    plugins: Arc<Plugins>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    topology: Arc<ArcSwap<Topology>>,
    /// The running configuration; held while a reload runs, so two never interleave.
    running: tokio::sync::Mutex<Config>,
}

impl Reloader {
    pub fn new(
        running: Config,
        plugins: Arc<Plugins>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        topology: Arc<ArcSwap<Topology>>,
    ) -> Reloader {
        Reloader {
            path: running.path.clone(),
            plugins,
            store,
            metrics,
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
        config.check_vendors(&|vendor| self.plugins.get(vendor.as_str()).is_some())?;
        let previous = self.topology.load_full();
        let next = Topology::build(
            &config,
            &self.plugins,
            &self.store,
            &self.metrics,
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
        };
        self.topology.store(Arc::new(next));
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
}
