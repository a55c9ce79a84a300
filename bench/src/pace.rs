//! `pace`: an http sink with `rate: 20/s` (burst 1, the default) takes a burst far above its
//! rate: every accepted event must reach the receiver, and the receiver must never see more than
//! 10% over 20 a second, in any one-second window nor on average.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::load::{self, Poster, Spec};
use crate::payload;
use crate::server::{self, Server, Site};
use crate::sink::envelope_id;
use crate::{BenchResult, Env, Problems};

const SECRET: &str = "bench-pace-watsi-secret";
const RATE: f64 = 20.0;
/// The most over the rate a receiver may see: the bound.
const TOLERANCE: f64 = 1.10;

/// When each delivery arrived, and its envelope id.
type Arrivals = Arc<Mutex<Vec<(Instant, String)>>>;

pub async fn run(env: &Env, problems: &mut Problems) -> BenchResult<()> {
    let events: u32 = if env.quick { 60 } else { 200 };
    println!("== pace: an http sink with rate 20/s under a burst ==");
    println!(
        "settings: one workspace, one http sink `rate: 20/s` (burst 1) to a local hyper receiver answering 204 and noting each arrival; {events} signed 1 KB watsi events posted at 400/s over 4 connections; figures from the receiver's arrival times; server RUST_LOG={}",
        server::LOG_LEVEL
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let receiver_addr = listener.local_addr()?;
    let arrivals: Arrivals = Arc::default();
    let receiving = tokio::spawn(receive(listener, arrivals.clone()));

    let site = Site::new()?;
    let yaml = format!(
        "{}workspaces:\n  paced:\n    vendors:\n      watsi:\n        secrets: [\"{SECRET}\"]\n    sinks:\n      crm: {{ type: http, url: \"http://{receiver_addr}/events\", rate: 20/s }}\n    routes:\n      - match: {{ type: \"*\" }}\n        to: [crm]\n",
        site.server_section(env, &[])
    );
    let server = Server::start(env, &site.write_config(&yaml)?).await?;
    let poster = Arc::new(Poster::new("paced", payload::watsi(), SECRET));
    let spec = Spec::rate(4, Duration::from_secs_f64(f64::from(events) / 400.0), 400.0)
        .events(u64::from(events))
        .keep_ids();
    let report = load::run(server.addr(), poster, spec, Arc::default()).await;
    let accepted: HashSet<String> = report
        .accepted_at
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    // The whole burst at the rate, and as much again for a loaded machine.
    let deadline =
        Instant::now() + Duration::from_secs_f64(2.0 * accepted.len() as f64 / RATE + 10.0);
    while arrivals.lock().map_or(0, |a| a.len()) < accepted.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiving.abort();
    let arrived = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    let received: HashSet<String> = arrived.iter().map(|(_, id)| id.clone()).collect();
    let missing = accepted.difference(&received).count();
    let times: Vec<Instant> = arrived.iter().map(|(at, _)| *at).collect();
    let busiest = busiest_second(&times);
    let average = match (times.first(), times.last()) {
        (Some(first), Some(last)) if times.len() > 1 => {
            (times.len() - 1) as f64 / last.duration_since(*first).as_secs_f64().max(1e-9)
        }
        _ => 0.0,
    };
    println!(
        "accepted {} of {} posted; the receiver got {} deliveries ({} distinct), {missing} missing; average {average:.2}/s from first to last arrival ({:+.1}% of 20/s); busiest one-second window {busiest} ({:+.1}%)",
        accepted.len(),
        report.sent,
        arrived.len(),
        received.len(),
        (average / RATE - 1.0) * 100.0,
        (busiest as f64 / RATE - 1.0) * 100.0
    );
    if missing > 0 || accepted.len() < events as usize / 2 {
        problems.add(
            "pace",
            format!(
                "{missing} accepted event(s) never reached the paced sink; {} accepted",
                accepted.len()
            ),
        );
    }
    if average > RATE * TOLERANCE || busiest as f64 > RATE * TOLERANCE {
        problems.add(
            "pace",
            format!("the 20/s sink got {average:.2}/s on average and {busiest} in its busiest second: over 10%"),
        );
    }
    Ok(())
}

/// The most arrivals within any one second (a window starting at each arrival).
fn busiest_second(times: &[Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut end = 0;
    let mut most = 0;
    for (start, at) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end].duration_since(*at) < Duration::from_secs(1) {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

async fn receive(listener: TcpListener, arrivals: Arrivals) {
    while let Ok((stream, _)) = listener.accept().await {
        let arrivals = arrivals.clone();
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let arrivals = arrivals.clone();
            async move {
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                if let Ok(body) = body {
                    let id = envelope_id(&body).unwrap_or_default().to_owned();
                    if let Ok(mut arrivals) = arrivals.lock() {
                        arrivals.push((Instant::now(), id));
                    }
                }
                let mut answer = Response::new(Full::new(Bytes::new()));
                *answer.status_mut() = StatusCode::NO_CONTENT;
                Ok::<_, Infallible>(answer)
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_second_counts_arrivals_less_than_a_second_apart() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        assert_eq!(busiest_second(&[]), 0);
        assert_eq!(
            busiest_second(&[at(0), at(500), at(999), at(1000), at(1999)]),
            3
        );
        assert_eq!(busiest_second(&[at(0), at(1000), at(2000)]), 1);
    }
}
