//! `switchyard serve`: open the store, build the topology, start the sweeper, serve the public
//! and operator listeners until SIGINT or SIGTERM. SIGHUP reloads what can be reloaded in place
//! (the TLS certificate); one sent during start-up waits until then. [`run`] runs on the main
//! thread (`block_on`).

pub mod admin;
pub mod hooks;
mod signals;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use self::signals::hold_hangups;
use self::signals::{
    forward_hangups, hangups, reload_on_hangup, reopen_file_sinks, shutdown_signal, stopping,
};
use crate::config::Config;
use crate::deliver::{Alerter, Workers};
use crate::http::tls::{self, CertStore, TlsError};
use crate::http::{self, Listener};
use crate::metrics::Metrics;
use crate::plugins::Plugins;
use crate::runtime::reload::Reloader;
use crate::runtime::topology::{Topology, TopologyError};
use crate::server::admin::{Admin, Operator};
use crate::server::hooks::{Hooks, Public};
use crate::sinks::SinkBuildError;
use crate::store::{Store, StoreConfig, StoreError, StoreMetrics, StoreOptions};
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
    #[error("server.alerts: {0}")]
    Alerts(#[from] SinkBuildError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server.tls: {0}")]
    Tls(#[from] TlsError),
}

/// Runs the server until a shutdown signal, its delivery workers on `deliver_on` (see
/// [`crate::deliver::runtime`]).
pub async fn run(
    config: Config,
    plugins: Plugins,
    deliver_on: tokio::runtime::Handle,
) -> Result<(), ServeError> {
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
    let server = &config.server;
    let options = StoreOptions {
        cache_bytes: server.store_cache_bytes,
        retention: server.retention,
    };
    let store = Store::open(
        &server.store,
        &server.data_dir,
        &options,
        StoreMetrics::of(&metrics),
    )
    .await?;
    let alerts = (server.alerts.as_ref())
        .map(|alerts| Alerter::start(alerts.url.clone(), alerts.secret.clone()))
        .transpose()?;
    let workers = Workers {
        runtime: deliver_on,
        alerts,
    };
    let topology = Arc::new(ArcSwap::from_pointee(
        Topology::build(&config, &plugins, &store, &metrics, &workers, None).await?,
    ));
    let shortest_window = config
        .workspaces
        .values()
        .map(|ws| ws.dedupe_window)
        .chain([server.retention])
        .min()
        .unwrap_or(SWEEP_EVERY_MAX);
    let every = (shortest_window / SWEEPS_PER_WINDOW).clamp(SWEEP_EVERY_MIN, SWEEP_EVERY_MAX);
    tokio::spawn(sweep(store.clone(), server.retention, every));
    let certs = server.tls.as_ref().map(CertStore::open).transpose()?;
    let public = bind(server.listen).await?;
    let operator = bind(server.admin_listen).await?;
    let local = public.local_addr().unwrap_or(server.listen);
    let mut workspaces: Vec<String> = config.workspaces.keys().map(|w| w.to_string()).collect();
    workspaces.sort();
    let vendors: Vec<&str> = plugins.iter().map(|p| p.vendor.as_str()).collect();
    let vendors = vendors.join(",");
    // A reload adds the libraries new to the plugins directory.
    let plugins = Arc::new(ArcSwap::from_pointee(plugins));
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
        plugins = %vendors,
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
        workers,
        topology.clone(),
    ));
    tokio::spawn(reload_on_hangup(reload.subscribe(), reloader.clone()));
    // Here, on the main thread, where SIGHUP was held since the process began.
    tokio::spawn(forward_hangups(hangups(), reload));

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
        Arc::new(Public::new(
            Hooks::new(topology.clone(), store.clone(), metrics.clone(), server),
            server,
        )),
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
        Arc::new(Operator::new(
            Admin {
                token: server.admin_token.clone(),
                topology,
                reloader,
                store: store.clone(),
                plugins,
                metrics,
            },
            server,
        )),
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
    if store.embedded().is_none() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = store.clone();
        // On the blocking pool: the sweep after a busy window removes every claim it made,
        // which would hold one of the threads that take requests for as long.
        if let Err(error) = tokio::task::spawn_blocking(move || sweep_once(&store, retention)).await
        {
            tracing::error!(%error, "the sweep task failed");
        }
    }
}

fn sweep_once(store: &Store, retention: Duration) {
    let Some(store) = store.embedded() else {
        return;
    };
    let now = SystemTime::now();
    match store.sweep_dedupe(now) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(generations = n, "dedupe claim generations deleted"),
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

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}
