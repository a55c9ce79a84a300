//! hyper's HTTP/1.1 client, for what is not the measured load: control requests (`/readyz`,
//! `/metrics`) and the burst's 1 MiB posts, where a full client costs nothing that shows.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::BenchResult;

/// How long one exchange may take before the client gives up on it (and counts it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> BenchResult<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes the connection.
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// One exchange; the answer's status and whole body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> BenchResult<(StatusCode, Bytes)> {
        let (status, _, body) = self.exchange(method, path, headers, body).await?;
        Ok((status, body))
    }

    /// One exchange; the answer's status, headers and whole body.
    pub async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> BenchResult<(StatusCode, HeaderMap, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .body(Full::new(body))?;
        request.headers_mut().extend(headers.iter().cloned());
        let exchange = async {
            self.sender.ready().await?;
            let answer = self.sender.send_request(request).await?;
            let (parts, body) = answer.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts.status, parts.headers, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}").into()),
        }
    }
}

/// A GET on a fresh connection: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> BenchResult<(StatusCode, String)> {
    let mut conn = Conn::connect(addr).await?;
    let (status, body) = conn.send(Method::GET, path, &[], Bytes::new()).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
