//! The http sinks' receiver: a local hyper server on a thread and runtime of its own (so it does
//! not share the load client's), answering every POST 200 at once and counting it. It can also
//! tally the event ids it is sent (to count duplicates), and be started on an address chosen
//! beforehand (a receiver that is down, then up). Stopped when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::sink::envelope_id;
use crate::BenchResult;

/// Event id to the number of times it was received.
pub type Tally = Arc<Mutex<HashMap<String, u32>>>;

pub struct Receiver {
    pub addr: SocketAddr,
    posts: Arc<AtomicU64>,
    tally: Option<Tally>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// A receiver on a free loopback port that counts POSTs.
    pub fn start() -> BenchResult<Receiver> {
        Receiver::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), false)
    }

    /// A receiver on `addr` (port 0: a free one); `tally`: it also counts each event id.
    pub fn start_at(addr: SocketAddr, tally: bool) -> BenchResult<Receiver> {
        let listener = std::net::TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let posts = Arc::new(AtomicU64::new(0));
        let tally = tally.then(Tally::default);
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (thread_posts, thread_tally) = (posts.clone(), tally.clone());
        let thread = std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = serve(listener, thread_posts, thread_tally) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here closes every connection it still serves.
            })?;
        Ok(Receiver {
            addr,
            posts,
            tally,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// POSTs answered so far.
    pub fn posts(&self) -> u64 {
        self.posts.load(Ordering::Relaxed)
    }

    /// The ids received and how often each, when started with a tally.
    pub fn tally(&self) -> Option<Tally> {
        self.tally.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An address nothing listens on now, for a receiver that starts later ([`Receiver::start_at`]).
pub fn reserve_addr() -> BenchResult<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn serve(listener: TcpListener, posts: Arc<AtomicU64>, tally: Option<Tally>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, most likely: give the open connections a moment.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (posts, tally) = (posts.clone(), tally.clone());
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let (posts, tally) = (posts.clone(), tally.clone());
            async move {
                let is_post = request.method() == hyper::Method::POST;
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                if is_post {
                    // Counted before the answer leaves, so a sender that sees 200 finds it counted.
                    if let (Some(tally), Ok(body)) = (&tally, &body) {
                        if let (Some(id), Ok(mut seen)) = (envelope_id(body), tally.lock()) {
                            *seen.entry(id.to_owned()).or_default() += 1;
                        }
                    }
                    posts.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
