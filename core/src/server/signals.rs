//! Signals and what they set off: SIGHUP reloads the configuration and reopens file sinks
//! (and the TLS certificate, see [`crate::http::tls`]); SIGINT and SIGTERM stop the server after
//! in-flight requests finish.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::runtime::reload::Reloader;
use crate::runtime::topology::Topology;

/// At every SIGHUP, every file sink reopens its file, as logrotate's postrotate expects.
pub(super) async fn reopen_file_sinks(
    mut reload: watch::Receiver<()>,
    topology: Arc<ArcSwap<Topology>>,
) {
    while reload.changed().await.is_ok() {
        tracing::info!("reopening file sinks");
        for worker in topology.load().workspaces().flat_map(|ws| ws.workers()) {
            worker.reopen();
        }
    }
}

/// At every SIGHUP, the configuration is read again (see [`crate::runtime::reload`]).
pub(super) async fn reload_on_hangup(mut reload: watch::Receiver<()>, reloader: Arc<Reloader>) {
    while reload.changed().await.is_ok() {
        // A refusal is logged with every problem by the reloader; the server goes on.
        let _ = reloader.reload().await;
    }
}

/// Resolves once the shutdown signal has been received.
pub(super) async fn stopping(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

/// Sends on `reload` at every SIGHUP, for as long as anything listens.
pub(super) async fn forward_hangups(reload: watch::Sender<()>) {
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

/// Resolves at SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
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
