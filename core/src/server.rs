//! `switchyard serve`: open the store, build the topology, start the sweeper, serve until
//! SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;

use crate::admin::Admin;
use crate::config::Config;
use crate::hooks::Hooks;
use crate::http::{self, router::Router};
use crate::metrics::Metrics;
use crate::plugins::Plugins;
use crate::store::{Store, StoreError, StoreMetrics, StoreOptions};
use crate::topology::{Topology, TopologyError};

/// Expired dedupe keys and old events are swept a few times per shortest window, so nothing
/// outlives its window by much, but never more often than every second nor less than a minute.
const SWEEPS_PER_WINDOW: u32 = 4;
const SWEEP_EVERY_MIN: Duration = Duration::from_secs(1);
const SWEEP_EVERY_MAX: Duration = Duration::from_secs(60);
/// How long in-flight requests may run after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the server until a shutdown signal.
pub async fn run(config: Config, plugins: Plugins) -> Result<(), ServeError> {
    for default in &config.default_secrets {
        tracing::warn!(
            key = %default.key,
            variable = %default.var,
            "DEVELOPMENT SECRET IN USE: {} is unset, so {} uses the default from {}; never run like this in production",
            default.var,
            default.key,
            config.path.display()
        );
    }
    let metrics = Arc::new(Metrics::new());
    let store = Store::open(
        &config.server.data_dir,
        &StoreOptions {
            cache_bytes: config.server.store_cache_bytes,
            retention: config.server.retention,
        },
        StoreMetrics {
            commits: metrics.store_commits.clone(),
            batch_events: Some(metrics.store_batch_events.clone()),
        },
    )?;
    let plugins = Arc::new(plugins);
    let topology = Arc::new(Topology::build(&config, &plugins, &store, &metrics).await?);
    let shortest_window = config
        .workspaces
        .values()
        .map(|ws| ws.dedupe_window)
        .chain([config.server.retention])
        .min()
        .unwrap_or(SWEEP_EVERY_MAX);
    let every = (shortest_window / SWEEPS_PER_WINDOW).clamp(SWEEP_EVERY_MIN, SWEEP_EVERY_MAX);
    tokio::spawn(sweep(store.clone(), config.server.retention, every));
    tokio::spawn(on_hangup(topology.clone()));
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let mut workspaces: Vec<String> = config.workspaces.keys().map(|w| w.to_string()).collect();
    workspaces.sort();
    let vendors: Vec<&str> = plugins.iter().map(|p| p.vendor.as_str()).collect();
    tracing::info!(
        addr = %local,
        data_dir = %config.server.data_dir.display(),
        workspaces = %workspaces.join(","),
        plugins = %vendors.join(","),
        "switchyard is listening"
    );
    let router = Arc::new(Router {
        hooks: Hooks {
            topology: topology.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            max_body_bytes: config.server.max_body_bytes,
        },
        admin: Admin {
            token: config.server.admin_token.clone(),
            topology,
            store: store.clone(),
            plugins,
            metrics,
        },
        access_log: config.server.access_log,
    });
    http::serve(
        listener,
        router,
        config.server.header_read_timeout,
        DRAIN,
        shutdown_signal(),
    )
    .await;
    store.close();
    tracing::info!("switchyard stopped");
    Ok(())
}

async fn sweep(store: Arc<Store>, retention: Duration, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = SystemTime::now();
        match store.sweep_dedupe(now) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "expired dedupe keys swept"),
            Err(error) => tracing::error!(%error, "dedupe sweep failed"),
        }
        match store.sweep_events(retention, now) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "events past retention swept"),
            Err(error) => tracing::error!(%error, "event retention sweep failed"),
        }
        match store.sweep_log(retention, now) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(segments = n, "log segments past retention retired"),
            Err(error) => tracing::error!(%error, "log retention sweep failed"),
        }
    }
}

/// SIGHUP never ends the server (its default action would): it reopens every file sink, as
/// logrotate's postrotate expects.
async fn on_hangup(topology: Arc<Topology>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; file sinks reopen only when their file is moved");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received: reopening file sinks");
        for worker in topology.workspaces().flat_map(|ws| ws.workers()) {
            worker.reopen();
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// Where plugins are looked for: the configured directory, else the binary's own directory.
pub fn plugins_dir(configured: Option<&PathBuf>) -> PathBuf {
    configured.cloned().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("."))
    })
}
