//! A real HTTP receiver for `http` sinks: it records every request it gets, in arrival order,
//! and answers as the test says (accept, fail with a status, or hang without answering).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 204 No Content.
    Accept,
    /// This status (and `Retry-After: 0`, so retries stay fast).
    Fail(u16),
    /// Never answers: the request stays open until the sender gives up.
    Hang,
    /// 204 after this long; requests are answered concurrently, as a real slow receiver does.
    Slow(Duration),
    /// This status (without Retry-After) to requests whose body contains the text; 204 to
    /// the rest: a "poison" event among good ones.
    FailMatching(u16, &'static str),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct SinkRequest {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered; `None` while hanging.
    pub answered: Option<u16>,
}

impl SinkRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The envelope's `id`.
    pub fn event_id(&self) -> String {
        let envelope: Value = serde_json::from_slice(&self.body).expect("the body is JSON");
        envelope["id"].as_str().expect("an envelope id").to_owned()
    }
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    received: Vec<SinkRequest>,
    /// Requests held open in [`Mode::Hang`].
    held: Vec<tiny_http::Request>,
}

/// Stops and joins on drop.
pub struct Receiver {
    server: Arc<tiny_http::Server>,
    state: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    url: String,
}

impl Receiver {
    pub fn start(mode: Mode) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind a receiver"));
        let url = format!(
            "http://{}/events",
            server.server_addr().to_ip().expect("an IP listener")
        );
        let state = Arc::new((
            Mutex::new(State {
                mode: Some(mode),
                ..State::default()
            }),
            Condvar::new(),
        ));
        let thread = {
            let (server, state) = (server.clone(), state.clone());
            std::thread::spawn(move || serve(&server, &state))
        };
        Receiver {
            server,
            state,
            thread: Some(thread),
            url,
        }
    }

    /// The URL to configure the sink with.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.0.lock().unwrap().mode = Some(mode);
    }

    /// Every request so far, answered or not.
    pub fn received(&self) -> Vec<SinkRequest> {
        self.state.0.lock().unwrap().received.clone()
    }

    /// The envelope ids of requests answered 2xx, in arrival order (repeats included).
    pub fn delivered(&self) -> Vec<String> {
        delivered(&self.state.0.lock().unwrap().received)
    }

    /// Waits until `done` holds for the requests received so far; panics after `within`.
    pub fn wait_until(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[SinkRequest]) -> bool,
    ) -> Vec<SinkRequest> {
        let deadline = Instant::now() + within;
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap();
        loop {
            if done(&state.received) {
                return state.received.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "the receiver did not see {what} within {within:?}; it got {} request(s), answered {:?}",
                    state.received.len(),
                    state.received.iter().map(|r| r.answered).collect::<Vec<_>>()
                );
            }
            state = changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// Waits until the ids answered 2xx include every one of `ids`.
    pub fn wait_for_delivered(&self, ids: &[String], within: Duration) -> Vec<String> {
        let received = self.wait_until(
            &format!("{} delivered event(s)", ids.len()),
            within,
            |received| {
                let delivered = delivered(received);
                ids.iter().all(|id| delivered.contains(id))
            },
        );
        delivered(&received)
    }
}

fn delivered(received: &[SinkRequest]) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
        .map(SinkRequest::event_id)
        .collect()
}

fn serve(server: &tiny_http::Server, state: &(Mutex<State>, Condvar)) {
    for mut request in server.incoming_requests() {
        let mut body = Vec::new();
        if request.as_reader().read_to_end(&mut body).is_err() {
            continue;
        }
        let headers = request
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect();
        let (lock, changed) = state;
        let mut state = lock.lock().unwrap();
        let mode = state.mode.unwrap_or(Mode::Accept);
        let poisoned = |marker: &str| body.windows(marker.len()).any(|w| w == marker.as_bytes());
        let answered = match mode {
            Mode::Accept | Mode::Slow(_) => Some(204),
            Mode::Fail(status) => Some(status),
            Mode::FailMatching(status, marker) if poisoned(marker) => Some(status),
            Mode::FailMatching(..) => Some(204),
            Mode::Hang => None,
        };
        state.received.push(SinkRequest {
            headers,
            body,
            answered,
        });
        match (mode, answered) {
            (Mode::Slow(delay), _) => {
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = request.respond(tiny_http::Response::empty(204));
                });
            }
            (Mode::FailMatching(..), Some(status)) => {
                let _ = request.respond(tiny_http::Response::empty(status));
            }
            (_, Some(status)) => {
                let retry_after =
                    tiny_http::Header::from_bytes("Retry-After", "0").expect("a valid header");
                let response = tiny_http::Response::empty(status).with_header(retry_after);
                // The sender may have given up already; that is its business.
                let _ = request.respond(response);
            }
            (_, None) => state.held.push(request),
        }
        changed.notify_all();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
