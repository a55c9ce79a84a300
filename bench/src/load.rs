//! The HTTP load client: N keep-alive HTTP/1.1 connections (one per simulated vendor client),
//! each posting unique, correctly signed deliveries, either as fast as answers come back
//! (closed loop) or on a fixed schedule shared by all connections (open loop), for a time or
//! for a number of events.
//!
//! The client must never be what limits a figure, so it is lean: its connections run on
//! [`LOAD_THREADS`] threads of their own, each a single-threaded runtime (no work stealing, no
//! cross-thread wake-ups); each request is written into a buffer the connection reuses, the
//! signature computed over the template's parts with a pre-keyed HMAC; answers are parsed in
//! place ([`crate::wire`]). `compare` checks it in every run: bare hyper must reach 3x the
//! Node handler on the same client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::payload::{self, ID_LEN};
pub use crate::poster::Poster;
use crate::wire::Wire;

/// How long one exchange may take before the client gives up on it (and counts it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Threads the load client runs on, whatever the number of connections: one, so that on 2 cores
/// the server measured keeps the other (`compare` prints the client's CPU time per request).
pub const LOAD_THREADS: usize = 1;

/// How requests are spaced.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Each connection sends its next request as soon as the previous answer is in.
    Closed,
    /// `per_second` requests in total, on a fixed schedule spread over the connections; a
    /// connection that falls behind sends at once (so the achieved rate shows it).
    Rate { per_second: f64 },
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub connections: usize,
    /// The load ends after this long, or after `events` requests, whichever comes first.
    pub duration: Duration,
    pub events: Option<u64>,
    pub pace: Pace,
    /// Keep each accepted event's id and answer time ([`Report::accepted_at`]).
    pub keep_ids: bool,
}

impl Spec {
    /// A closed loop over `connections` for `duration`.
    pub fn closed(connections: usize, duration: Duration) -> Spec {
        Spec {
            connections,
            duration,
            events: None,
            pace: Pace::Closed,
            keep_ids: false,
        }
    }

    /// `per_second` requests in total over `connections` for `duration`.
    pub fn rate(connections: usize, duration: Duration, per_second: f64) -> Spec {
        Spec {
            pace: Pace::Rate { per_second },
            ..Spec::closed(connections, duration)
        }
    }

    /// Ends after `events` requests (or the duration, whichever comes first).
    pub fn events(self, events: u64) -> Spec {
        Spec {
            events: Some(events),
            ..self
        }
    }

    pub fn keep_ids(self) -> Spec {
        Spec {
            keep_ids: true,
            ..self
        }
    }
}

/// What a load saw.
#[derive(Default)]
pub struct Report {
    pub sent: u64,
    pub accepted: u64,
    /// Answers other than 200 `accepted`, and failed exchanges, by kind.
    pub refused: BTreeMap<String, u64>,
    /// Request to whole answer, for every exchange that got an answer.
    pub latencies: Vec<Duration>,
    /// With [`Spec::keep_ids`]: the event id of each accepted delivery, and when its answer
    /// arrived.
    pub accepted_at: Vec<(String, Instant)>,
    /// When the first accepted answer arrived.
    pub first_accept: Option<Instant>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// When the last answer arrived.
    pub ended: Option<Instant>,
}

impl Report {
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// `3 x 503 store_unavailable, 1 x connection error: ...`.
    pub fn refused_summary(&self) -> String {
        let parts: Vec<String> = self
            .refused
            .iter()
            .map(|(kind, n)| format!("{n} x {kind}"))
            .collect();
        parts.join(", ")
    }

    pub fn per_second(&self) -> f64 {
        (self.sent as f64) / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Accepted deliveries per second.
    pub fn accepted_per_second(&self) -> f64 {
        (self.accepted as f64) / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn refuse(&mut self, kind: String) {
        *self.refused.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Report) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        for (kind, n) in other.refused {
            *self.refused.entry(kind).or_default() += n;
        }
        self.latencies.extend(other.latencies);
        self.accepted_at.extend(other.accepted_at);
        self.first_accept = match (self.first_accept, other.first_accept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.ended = self.ended.max(other.ended);
    }
}

/// What every connection of one load shares.
struct Shared {
    addr: SocketAddr,
    poster: Arc<Poster>,
    load: u32,
    spec: Spec,
    started: Instant,
    /// Requests taken so far, against [`Spec::events`].
    issued: AtomicU64,
    /// Accepted deliveries, readable while the load runs (for sampling).
    accepted: Arc<AtomicU64>,
}

/// Runs `spec` against `addr` on the load client's own threads. `accepted` counts accepted
/// deliveries as they happen (for sampling while the load runs).
pub async fn run(
    addr: SocketAddr,
    poster: Arc<Poster>,
    spec: Spec,
    accepted: Arc<AtomicU64>,
) -> Report {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        addr,
        load: poster.next_load(),
        poster,
        spec,
        started,
        issued: AtomicU64::new(0),
        accepted,
    });
    let threads = LOAD_THREADS.clamp(1, spec.connections.max(1));
    let mut parts = Vec::new();
    let mut report = Report::default();
    for thread in 0..threads {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("load-{thread}"))
            .spawn(move || {
                let _ = tx.send(client_thread(shared, thread, threads));
            });
        match spawned {
            Ok(_) => parts.push(rx),
            Err(e) => report.refuse(format!("cannot start a load thread: {e}")),
        }
    }
    for part in parts {
        match part.await {
            Ok(part) => report.merge(part),
            Err(_) => report.refuse("a load thread died".into()),
        }
    }
    report.elapsed = report.ended.unwrap_or(started).duration_since(started);
    report
}

/// One load thread: connections `thread`, `thread + threads`, ... on a single-threaded
/// runtime.
fn client_thread(shared: Arc<Shared>, thread: usize, threads: usize) -> Report {
    let mut report = Report::default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report.refuse(format!("cannot start a load runtime: {e}"));
            return report;
        }
    };
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for client in (thread..shared.spec.connections).step_by(threads) {
            tasks.spawn(connection(shared.clone(), client as u32));
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(part) => report.merge(part),
                Err(e) => report.refuse(format!("load task failed: {e}")),
            }
        }
    });
    report
}

/// One client's loop over its own keep-alive connection (reopened after a failed exchange).
async fn connection(shared: Arc<Shared>, client: u32) -> Report {
    let spec = shared.spec;
    let poster = &shared.poster;
    let deadline = shared.started + spec.duration;
    let head = poster.head(shared.addr);
    let mut report = Report::default();
    let mut conn: Option<Wire> = None;
    let mut seq: u64 = 0;
    let mut id = [0u8; ID_LEN];
    loop {
        let due = match spec.pace {
            Pace::Closed => Instant::now(),
            Pace::Rate { per_second } => {
                let index = seq * spec.connections as u64 + u64::from(client);
                shared.started + Duration::from_secs_f64(index as f64 / per_second)
            }
        };
        if due >= deadline {
            break;
        }
        if matches!(spec.pace, Pace::Rate { .. }) {
            tokio::time::sleep_until(due.into()).await;
        }
        let live = match conn.as_mut() {
            Some(live) => live,
            None => match Wire::connect(shared.addr).await {
                Ok(fresh) => conn.insert(fresh),
                Err(e) => {
                    report.refuse(format!("cannot connect: {e}"));
                    // Not a retry storm: the next attempt waits for the next due time, or
                    // this long in a closed loop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    seq += 1;
                    continue;
                }
            },
        };
        if let Some(limit) = spec.events {
            if shared.issued.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        payload::write_event_id(&mut id, shared.load, client, seq);
        poster.write(&head, &id, &mut live.request);
        seq += 1;
        report.sent += 1;
        // At a fixed rate, latency counts from when the request was due, so a server that
        // falls behind shows its queueing delay too (no coordinated omission).
        let sent_at = match spec.pace {
            Pace::Closed => Instant::now(),
            Pace::Rate { .. } => due,
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, live.exchange()).await;
        let answered_at = Instant::now();
        report.ended = Some(answered_at);
        let verdict = match answer {
            Ok(Ok(answer)) => {
                report.latencies.push(answered_at - sent_at);
                Ok(if poster.plain {
                    (answer.status == 200)
                        .then_some(None)
                        .ok_or_else(|| format!("{}", answer.status))
                } else {
                    accepted(answer.status, answer.body, spec.keep_ids)
                })
            }
            Ok(Err(e)) => Err(format!("exchange failed: {e}")),
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        };
        match verdict {
            Ok(Ok(kept)) => {
                report.accepted += 1;
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                report.first_accept.get_or_insert(answered_at);
                if let Some(event) = kept {
                    report.accepted_at.push((event, answered_at));
                }
                if live.is_closing() {
                    conn = None;
                }
            }
            Ok(Err(kind)) => {
                report.refuse(kind);
                if live.is_closing() {
                    conn = None;
                }
            }
            Err(kind) => {
                report.refuse(kind);
                conn = None;
            }
        }
    }
    report
}

/// A 200 `accepted` answer (with its event id when `keep_id`), else how the answer differs.
/// The common answer is recognised without parsing JSON.
fn accepted(status: u16, body: &[u8], keep_id: bool) -> Result<Option<String>, String> {
    const ACCEPTED: &[u8] = br#""status":"accepted""#;
    if status == 200 && !keep_id && body.windows(ACCEPTED.len()).any(|w| w == ACCEPTED) {
        return Ok(None);
    }
    accepted_id(status, body).map(Some)
}

/// The event id of a 200 `{"status":"accepted","id":ID}`, else how the answer differs.
fn accepted_id(status: u16, body: &[u8]) -> Result<String, String> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let word = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    match (status, word("status"), word("id")) {
        (200, Some(s), Some(id)) if s == "accepted" => Ok(id),
        (200, Some(s), _) => Err(format!("200 {s}")),
        (status, _, _) => Err(format!(
            "{status} {}",
            word("error").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_200_accepted_counts() {
        let ok = br#"{"status":"accepted","id":"01J"}"#;
        assert_eq!(accepted_id(200, ok), Ok("01J".into()));
        let dup = br#"{"status":"duplicate","id":"01J"}"#;
        assert_eq!(accepted_id(200, dup), Err("200 duplicate".into()));
        let busy = br#"{"error":"store_unavailable","message":"retry"}"#;
        assert_eq!(accepted_id(503, busy), Err("503 store_unavailable".into()));
    }
}
