//! `switchyard serve`: open the store, build the topology, start the sweeper, serve the public
//! and operator listeners until SIGINT or SIGTERM. SIGHUP reloads what can be reloaded in place
//! (the TLS certificate).

pub mod admin;
pub mod hooks;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, StoreConfig};
use crate::http::tls::{self, CertStore, TlsError};
use crate::http::{self, Listener};
use crate::metrics::Metrics;
use crate::plugins::Plugins;
use crate::runtime::reload::Reloader;
use crate::runtime::topology::{Topology, TopologyError};
use crate::server::admin::{Admin, Operator};
use crate::server::hooks::{BodyBudget, BodyLimits, Hooks, Public};
use crate::store::{ClusterOptions, Store, StoreError, StoreMetrics, StoreOptions};
use arc_swap::ArcSwap;

/// Expired dedupe keys and old events are swept a few times per shortest window, so nothing
/// outlives its window by much, but never more often than every second nor less than a minute.
const SWEEPS_PER_WINDOW: u32 = 4;
const SWEEP_EVERY_MIN: Duration = Duration::from_secs(1);
const SWEEP_EVERY_MAX: Duration = Duration::from_secs(60);
/// How long in-flight requests may run after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);
/// Connections open at once on the operator listener: scrapers and the CLI need few.
const OPERATOR_MAX_CONNECTIONS: usize = 64;

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
    #[error("server.tls: {0}")]
    Tls(#[from] TlsError),
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
    let store_metrics = StoreMetrics {
        commits: metrics.store_commits.clone(),
        batch_events: Some(metrics.store_batch_events.clone()),
        unreadable: metrics.store_unreadable.clone(),
    };
    let store = match &config.server.store {
        StoreConfig::Embedded => Store::open_embedded(
            &config.server.data_dir,
            &StoreOptions {
                cache_bytes: config.server.store_cache_bytes,
                retention: config.server.retention,
            },
            store_metrics,
        )?,
        StoreConfig::Nats(nats) => {
            let options = ClusterOptions {
                servers: nats.servers.clone(),
                replicas: nats.replicas,
                retention: config.server.retention,
                timeout: nats.timeout,
                lease: nats.lease,
                access: nats.access.clone(),
            };
            Store::open_cluster(&options, store_metrics).await?
        }
    };
    let plugins = Arc::new(plugins);
    let topology = Arc::new(ArcSwap::from_pointee(
        Topology::build(&config, &plugins, &store, &metrics, None).await?,
    ));
    let shortest_window = config
        .workspaces
        .values()
        .map(|ws| ws.dedupe_window)
        .chain([config.server.retention])
        .min()
        .unwrap_or(SWEEP_EVERY_MAX);
    let every = (shortest_window / SWEEPS_PER_WINDOW).clamp(SWEEP_EVERY_MIN, SWEEP_EVERY_MAX);
    tokio::spawn(sweep(store.clone(), config.server.retention, every));
    let server = &config.server;
    let certs = server.tls.as_ref().map(CertStore::open).transpose()?;
    let public = bind(server.listen).await?;
    let operator = bind(server.admin_listen).await?;
    let local = public.local_addr().unwrap_or(server.listen);
    let mut workspaces: Vec<String> = config.workspaces.keys().map(|w| w.to_string()).collect();
    workspaces.sort();
    let vendors: Vec<&str> = plugins.iter().map(|p| p.vendor.as_str()).collect();
    tracing::info!(
        addr = %local,
        tls = certs.is_some(),
        max_connections = server.max_connections,
        store = match server.store {
            StoreConfig::Embedded => "embedded",
            StoreConfig::Nats(_) => "nats",
        },
        data_dir = %server.data_dir.display(),
        workspaces = %workspaces.join(","),
        plugins = %vendors.join(","),
        "switchyard is listening"
    );
    let operator_addr = operator.local_addr().unwrap_or(server.admin_listen);
    tracing::info!(addr = %operator_addr, "operator listener ready");

    // SIGHUP, fanned out to whatever reloads in place: each subscribes before it is spawned.
    let (reload, _) = watch::channel(());
    let tls = match &certs {
        Some(certs) => {
            tokio::spawn(tls::reload_on(reload.subscribe(), certs.clone()));
            Some(certs.acceptor()?)
        }
        None => None,
    };
    tokio::spawn(reopen_file_sinks(reload.subscribe(), topology.clone()));
    let reloader = Arc::new(Reloader::new(
        config.clone(),
        plugins.clone(),
        store.clone(),
        metrics.clone(),
        topology.clone(),
    ));
    tokio::spawn(reload_on_hangup(reload.subscribe(), reloader.clone()));
    tokio::spawn(forward_hangups(reload));

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let public = http::serve(
        Listener {
            socket: public,
            tls,
            max_connections: server.max_connections,
            header_read_timeout: server.header_read_timeout,
            name: "public",
        },
        Arc::new(Public {
            hooks: Hooks {
                topology: topology.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                body: BodyLimits {
                    max_bytes: server.max_body_bytes,
                    timeout: server.body_read_timeout,
                },
                budget: BodyBudget::new(server.max_inflight_body_bytes),
                trusted_proxies: server.trusted_proxies.clone(),
            },
            access_log: server.access_log,
        }),
        DRAIN,
        stopping(stopped.clone()),
    );
    let operator = http::serve(
        Listener {
            socket: operator,
            tls: None,
            max_connections: OPERATOR_MAX_CONNECTIONS,
            header_read_timeout: server.header_read_timeout,
            name: "operator",
        },
        Arc::new(Operator {
            admin: Admin {
                token: server.admin_token.clone(),
                topology,
                reloader,
                store: store.clone(),
                plugins,
                metrics,
            },
            access_log: server.access_log,
        }),
        DRAIN,
        stopping(stopped),
    );
    tokio::join!(public, operator);
    store.close();
    tracing::info!("switchyard stopped");
    Ok(())
}

/// The embedded store's housekeeping; cluster mode leaves it to JetStream's limits.
async fn sweep(store: Arc<Store>, retention: Duration, every: Duration) {
    let Some(store) = store.embedded() else {
        return;
    };
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

/// At every SIGHUP, every file sink reopens its file, as logrotate's postrotate expects.
async fn reopen_file_sinks(mut reload: watch::Receiver<()>, topology: Arc<ArcSwap<Topology>>) {
    while reload.changed().await.is_ok() {
        tracing::info!("reopening file sinks");
        for worker in topology.load().workspaces().flat_map(|ws| ws.workers()) {
            worker.reopen();
        }
    }
}

/// At every SIGHUP, the configuration is read again (see [`crate::runtime::reload`]).
async fn reload_on_hangup(mut reload: watch::Receiver<()>, reloader: Arc<Reloader>) {
    while reload.changed().await.is_ok() {
        // A refusal is logged with every problem by the reloader; the server goes on.
        let _ = reloader.reload().await;
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Resolves once the shutdown signal has been received.
async fn stopping(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

/// Sends on `reload` at every SIGHUP, for as long as anything listens.
async fn forward_hangups(reload: watch::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reloading needs a restart");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received; reloading");
            // Kept even with no one listening: SIGHUP must never fall back to ending the process.
            reload.send_replace(());
        }
    }
    #[cfg(not(unix))]
    drop(reload);
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

/// glibc's malloc raises its mmap threshold each time a large block is freed; after a burst of
/// large bodies, blocks of that size come from the heap arenas instead, and their memory stays
/// with the process (RSS near the burst's peak long after it). A fixed threshold keeps large
/// blocks mmapped and returned on free. It can only be set before the process starts, and
/// `mallopt` would need unsafe code, so `serve` starts itself again (same process id, by exec)
/// with the glibc tunable set, unless it is already set. Returns only when that did not happen.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn exec_with_malloc_tuning() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "GLIBC_TUNABLES";
    const TUNABLE: &str = "glibc.malloc.mmap_threshold";
    let current = std::env::var(VAR).unwrap_or_default();
    if current.contains(TUNABLE) {
        return None;
    }
    let tunables = match current.as_str() {
        "" => format!("{TUNABLE}={MMAP_THRESHOLD}"),
        other => format!("{other}:{TUNABLE}={MMAP_THRESHOLD}"),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return Some(error),
    };
    Some(
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(VAR, tunables)
            .exec(),
    )
}

/// glibc's own initial threshold (128 KiB), kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: usize = 128 * 1024;
