//! `search`'s second half, issue 22's "console pages under 200 ms on the same store": signed in
//! as a browser is (the session cookie), each console view is loaded again and again on one
//! keep-alive connection as a browser loads it, the console's `no-store` obeyed: the page (its
//! HTML and every file it loads) and then the operator API calls its script makes, one after
//! the other. Each part's p50 and p99, and the whole view's. [`refuser`] is the receiver that
//! gives the store its dead letters.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, COOKIE, ORIGIN, SET_COOKIE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::client::Conn;
use crate::stats::{ms, Distribution};
use crate::{BenchResult, Problems};

/// Issue 22's target for a console page.
const VIEW_P99: Duration = Duration::from_millis(200);

/// Every file the console's page loads (its script imports every view's module).
const FILES: [&str; 9] = [
    "console.css",
    "favicon.svg",
    "app.js",
    "api.js",
    "dom.js",
    "overview.js",
    "events.js",
    "event.js",
    "sink.js",
];

/// One view: its URL and the API calls (under `/console/api/`) its script makes.
struct View {
    name: &'static str,
    url: String,
    calls: Vec<String>,
}

/// What the views are shown on: an event to open, a sink with dead letters.
pub struct Subjects<'a> {
    pub workspace: &'a str,
    pub event: &'a str,
    pub dead_sink: &'a str,
}

pub async fn run(
    admin: SocketAddr,
    token: &str,
    asks: usize,
    on: Subjects<'_>,
    problems: &mut Problems,
) -> BenchResult<()> {
    let mut conn = Conn::connect(admin).await?;
    let cookie = sign_in(&mut conn, admin, token).await?;
    let cookie = [(COOKIE, HeaderValue::from_str(&cookie)?)];
    let Subjects {
        workspace,
        event,
        dead_sink,
    } = on;
    let search = "type=message.*";
    let views = [
        View {
            name: "overview",
            url: "/console/".into(),
            calls: vec!["queues".into()],
        },
        View {
            name: "events search",
            url: format!("/console/events?{search}"),
            calls: vec![format!("events?{search}")],
        },
        View {
            name: "an event's page",
            url: format!("/console/events/{event}"),
            calls: vec![format!("events/{event}")],
        },
        View {
            name: "a sink's dead letters",
            url: format!("/console/sinks/{workspace}/{dead_sink}"),
            calls: vec![
                format!("workspaces/{workspace}/sinks/{dead_sink}/dead-letters?limit=50"),
                "queues".into(),
            ],
        },
    ];
    for view in &views {
        let mut page = Vec::with_capacity(asks);
        let mut calls = vec![Vec::with_capacity(asks); view.calls.len()];
        let mut whole = Vec::with_capacity(asks);
        let mut page_bytes = 0;
        let mut call_bytes = vec![0; view.calls.len()];
        for _ in 0..asks {
            let started = Instant::now();
            page_bytes = get(&mut conn, &view.url, &cookie).await?;
            for file in FILES {
                page_bytes += get(&mut conn, &format!("/console/assets/{file}"), &cookie).await?;
            }
            page.push(started.elapsed());
            for (n, call) in view.calls.iter().enumerate() {
                let asked = Instant::now();
                call_bytes[n] = get(&mut conn, &format!("/console/api/{call}"), &cookie).await?;
                calls[n].push(asked.elapsed());
            }
            whole.push(started.elapsed());
        }
        let page = Distribution::new(page);
        println!(
            "console, {}: page ({} files, {page_bytes} B) p50 {}, p99 {}",
            view.name,
            FILES.len() + 1,
            ms(page.percentile(50.0)),
            ms(page.percentile(99.0))
        );
        for ((call, times), bytes) in view.calls.iter().zip(calls).zip(call_bytes) {
            let d = Distribution::new(times);
            println!(
                "  GET /console/api/{call} ({bytes} B): p50 {}, p99 {}",
                ms(d.percentile(50.0)),
                ms(d.percentile(99.0))
            );
        }
        let whole = Distribution::new(whole);
        let p99 = whole.percentile(99.0);
        println!(
            "  the whole view: p50 {}, p99 {} (target p99 < {})",
            ms(whole.percentile(50.0)),
            ms(p99),
            ms(VIEW_P99)
        );
        if p99 >= VIEW_P99 {
            problems.add(
                "search",
                format!(
                    "console, {}: p99 {} (target < {})",
                    view.name,
                    ms(p99),
                    ms(VIEW_P99)
                ),
            );
        }
    }
    Ok(())
}

/// Signs in as the console's sign-in page does; the session cookie's `name=value`.
async fn sign_in(conn: &mut Conn, admin: SocketAddr, token: &str) -> BenchResult<String> {
    let body = serde_json::json!({ "token": token }).to_string();
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (ORIGIN, HeaderValue::from_str(&format!("http://{admin}"))?),
    ];
    let (status, answer, body) = conn
        .exchange(Method::POST, "/console/session", &headers, body.into())
        .await?;
    let cookie = (answer.get(SET_COOKIE))
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next());
    match cookie {
        Some(cookie) if status == StatusCode::OK => Ok(cookie.to_owned()),
        _ => Err(format!(
            "signing in to the console: {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into()),
    }
}

/// One GET that must answer 200; its body's size.
async fn get(
    conn: &mut Conn,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> BenchResult<usize> {
    let (status, body) = conn.send(Method::GET, path, headers, Bytes::new()).await?;
    if status != StatusCode::OK {
        return Err(format!("{path}: {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(body.len())
}

/// An http sink's receiver that refuses every event for good (400): each is a dead letter at
/// once, and the sink stays healthy.
pub async fn refuser() -> BenchResult<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_: Request<hyper::body::Incoming>| async {
                    let mut answer = Response::new(Full::new(Bytes::from_static(b"refused")));
                    *answer.status_mut() = StatusCode::BAD_REQUEST;
                    Ok::<_, Infallible>(answer)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
