//! The baselines switchyard is measured against in the same run, on the same load: a bare hyper
//! server built from the same hyper version (reads the body, answers 200), and the Watsi
//! document's ten-line Node handler exactly as written there (`bench/node/webhook-server.mjs`:
//! verify, parse, log), the peer a team would otherwise write by hand.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::BenchResult;

/// The argument that turns this binary into the bare hyper server.
pub const BARE_HYPER_ARG: &str = "--serve-bare-hyper";
/// The port the Node handler listens on: fixed in the document's code.
const NODE_PORT: u16 = 4000;
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A baseline server process; killed on drop.
pub struct Baseline {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Baseline {
    /// Starts this binary as the bare hyper server, in its own process like switchyard.
    pub async fn bare_hyper() -> BenchResult<Baseline> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg(BARE_HYPER_ARG)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr: SocketAddr = line
            .trim()
            .parse()
            .map_err(|e| format!("the bare hyper server printed `{}`: {e}", line.trim()))?;
        let baseline = Baseline { child, addr };
        baseline.wait_ready().await?;
        Ok(baseline)
    }

    /// Starts the Node handler, when `node` is installed; `None` when it is not.
    pub async fn node(script: &Path, secret: &str) -> BenchResult<Option<Baseline>> {
        if Command::new("node").arg("--version").output().is_err() {
            return Ok(None);
        }
        let child = Command::new("node")
            .arg(script)
            .env("WATSI_WEBHOOK_SECRET", secret)
            .stdin(Stdio::null())
            // It logs one line per event; a terminal would slow it, a pipe could fill.
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let baseline = Baseline {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], NODE_PORT)),
        };
        baseline.wait_ready().await?;
        Ok(Some(baseline))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&self) -> BenchResult<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no baseline server on {} after {START_DEADLINE:?}",
                    self.addr
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The bare hyper server: a multi-threaded Tokio runtime (as switchyard's), HTTP/1.1
/// keep-alive, reads each body whole, answers 200 with an empty body. Prints its address.
pub fn serve_bare_hyper() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        serve(listener).await
    })
}

/// Serves 200 to every request on `listener`.
async fn serve(listener: TcpListener) -> BenchResult<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
            let _ = request.into_body().collect().await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
