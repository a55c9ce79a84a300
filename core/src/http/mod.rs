//! HTTP, the transport only: the listener loop ([`serve`]) with its connection limit and optional
//! TLS ([`tls`]), what every answer gets on its way out ([`access`]: keep-alive and the access
//! log), who the client is behind proxies ([`client`]), and the JSON answers ([`answer`]). Which
//! part answers a request is decided by each listener's [`Handler`], beside its app: the public
//! router in `server::hooks`, the operator's in `server::admin`.

pub mod access;
pub mod answer;
pub mod client;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use self::answer::Answer;

/// An HTTP/1 connection's read buffer grows to this at most. hyper's default (about 400 KiB)
/// times a few hundred connections streaming large bodies is most of the memory a burst takes;
/// 64 KiB still holds any sane request head.
const MAX_READ_BUFFER: usize = 64 * 1024;
/// Requests in flight at once on one HTTP/2 connection.
const MAX_STREAMS: u32 = 100;
/// A failed accept (out of file descriptors and the like) pauses the loop this long rather
/// than spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Answers requests; one per listener, shared by all its connections.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Answer> + Send;
}

/// One listening socket and how its connections are served.
pub struct Listener {
    pub socket: TcpListener,
    /// `Some`: TLS, with HTTP/2 or HTTP/1.1 as ALPN decides; `None`: plain HTTP/1.1.
    pub tls: Option<TlsAcceptor>,
    /// Connections open at once; past it, no more are accepted until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request head (and to finish a TLS handshake), and
    /// how long an HTTP/2 connection may go without a request in progress.
    pub header_read_timeout: Duration,
    /// `public` or `operator`, for logs.
    pub name: &'static str,
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests finish (for at
/// most `drain`).
pub async fn serve<H: Handler>(
    listener: Listener,
    handler: Arc<H>,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(listener.max_connections));
    let mut at_limit = false;
    tokio::pin!(shutdown);
    loop {
        // Past the limit, stop accepting: new connections wait in the kernel's backlog (and
        // time out there) instead of taking file descriptors the process needs.
        if slots.available_permits() == 0 && !at_limit {
            tracing::warn!(
                listener = listener.name,
                max_connections = listener.max_connections,
                "connection limit reached; accepting again when one closes"
            );
        }
        at_limit = slots.available_permits() == 0;
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(listener = listener.name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            handler: handler.clone(),
            peer,
            header_read_timeout: listener.header_read_timeout,
            watcher: graceful.watcher(),
        };
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            // Held for the connection's life: its slot frees when it closes.
            let _slot = slot;
            match tls {
                None => connection.http1(stream).await,
                Some(acceptor) => connection.tls(acceptor, stream).await,
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing them");
    }
}

/// One accepted connection, before its protocol is known.
struct Connection<H> {
    handler: Arc<H>,
    peer: SocketAddr,
    header_read_timeout: Duration,
    watcher: Watcher,
}

impl<H: Handler> Connection<H> {
    async fn tls(self, acceptor: TlsAcceptor, stream: tokio::net::TcpStream) {
        let peer = self.peer;
        // A client that never finishes its handshake must not hold a connection slot.
        let stream =
            match tokio::time::timeout(self.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not finished in time");
                    return;
                }
            };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        if h2 {
            self.http2(stream).await;
        } else {
            self.http1(stream).await;
        }
    }

    async fn http1(self, io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) {
        let peer = self.peer;
        let handler = self.handler;
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.handle(request, peer).await) }
        });
        let connection = http1::Builder::new()
            // A vendor that sends its request and closes its side at once still has its
            // delivery read and kept; without this hyper drops the request on that EOF.
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(MAX_READ_BUFFER)
            .serve_connection(TokioIo::new(io), service);
        if let Err(error) = self.watcher.watch(connection).await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }

    /// As HTTP/1 closes a connection whose next request head does not come within
    /// `header_read_timeout`, an HTTP/2 connection with no request in progress for that long
    /// is closed: a silent client (before or after its preface) holds no slot.
    async fn http2(self, io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) {
        let peer = self.peer;
        let handler = self.handler;
        let (in_progress, busy) = watch::channel(0usize);
        let in_progress = Arc::new(in_progress);
        let service = service_fn(move |request| {
            let handler = handler.clone();
            let request_in_progress = InProgress::start(&in_progress);
            async move {
                let answer = handler.handle(request, peer).await;
                drop(request_in_progress);
                Ok::<_, Infallible>(answer)
            }
        });
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .serve_connection(TokioIo::new(io), service);
        tokio::select! {
            result = self.watcher.watch(connection) => if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            },
            () = idle(busy, self.header_read_timeout) => {
                tracing::debug!(%peer, "HTTP/2 connection idle past header_read_timeout; closed");
            }
        }
    }
}

/// One request in progress on an HTTP/2 connection, counted until it is answered or its
/// stream goes (a reset drops it unanswered).
struct InProgress(Arc<watch::Sender<usize>>);

impl InProgress {
    fn start(count: &Arc<watch::Sender<usize>>) -> InProgress {
        count.send_modify(|n| *n += 1);
        InProgress(count.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Resolves once no request has been in progress for `limit`.
async fn idle(mut busy: watch::Receiver<usize>, limit: Duration) {
    loop {
        if busy.wait_for(|n| *n == 0).await.is_err() {
            // The connection is gone (its service with it); the other branch ends the select.
            return std::future::pending().await;
        }
        busy.mark_unchanged();
        tokio::select! {
            () = tokio::time::sleep(limit) => return,
            changed = busy.changed() => if changed.is_err() {
                return std::future::pending().await;
            },
        }
    }
}

/// The process's soft limit on open files (`ulimit -n`), from /proc/self/limits; `None` where
/// that file does not exist or says `unlimited`.
pub fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_read() {
        // Linux always has the file; the test machines run Linux.
        let limit = open_files_soft_limit().expect("a soft limit on open files");
        assert!(limit >= 16, "{limit}");
    }
}
