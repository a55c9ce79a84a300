//! Signals and what they set off: SIGHUP reloads the configuration and reopens file sinks
//! (and the TLS certificate, see [`crate::http::tls`]); SIGINT and SIGTERM stop the server after
//! in-flight requests finish. SIGHUP is held back from the first instant of `serve`
//! ([`hold_hangups`]) until its handler runs ([`hangups`]), so one sent during start-up
//! reloads once the server is up instead of ending the process.

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

/// Blocks SIGHUP in the calling thread, the main one, before anything else runs: every
/// thread started later inherits the mask and exec keeps it, so a SIGHUP sent during start-up
/// waits (its default action would end the process) until [`hangups`] lets it through.
pub fn hold_hangups() -> std::io::Result<()> {
    #[cfg(unix)]
    hangup_set().thread_block().map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(unix)]
fn hangup_set() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGHUP);
    set
}

/// Installs the SIGHUP handler, then lets SIGHUP through to the calling thread (the main one,
/// where [`hold_hangups`] held it): one held during start-up arrives now. Call it on the main
/// thread, inside the runtime, once what a SIGHUP sets off is listening.
#[cfg(unix)]
pub(super) fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(hangups) => {
            if let Err(error) = hangup_set().thread_unblock() {
                tracing::warn!(%error, "cannot let SIGHUP through; reloading needs `switchyard reload`");
            }
            Some(hangups)
        }
        Err(error) => {
            // SIGHUP stays held: never back to its default action, ending the process.
            tracing::warn!(%error, "cannot listen for SIGHUP; reloading needs `switchyard reload`");
            None
        }
    }
}

#[cfg(not(unix))]
pub(super) fn hangups() -> Option<()> {
    None
}

/// Sends on `reload` at every SIGHUP, for as long as the server runs.
#[cfg(unix)]
pub(super) async fn forward_hangups(
    hangups: Option<tokio::signal::unix::Signal>,
    reload: watch::Sender<()>,
) {
    let Some(mut hangups) = hangups else { return };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading");
        // Kept even with no one listening: SIGHUP must never fall back to ending the process.
        reload.send_replace(());
    }
}

#[cfg(not(unix))]
pub(super) async fn forward_hangups(_: Option<()>, reload: watch::Sender<()>) {
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
