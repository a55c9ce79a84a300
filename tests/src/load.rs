//! Vendors under load for the crash tests: client threads that post signed Watsi events to
//! whichever server is current, each retrying its event until it is answered 200 (as a vendor
//! does), and collect the acknowledged ids.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{hook, Server, WATSI};

/// A vendor's pause before it tries an unanswered event again.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The running clients and what they were told.
pub struct Load {
    addr: Arc<Mutex<SocketAddr>>,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    /// `clients` threads posting `body(client, n)` for n = 0, 1, ... to workspace `acme`'s
    /// Watsi endpoint, signed with `secret`; n moves on once the event is acknowledged.
    pub fn start(
        addr: SocketAddr,
        clients: usize,
        secret: &'static str,
        body: fn(usize, usize) -> String,
    ) -> Load {
        let addr = Arc::new(Mutex::new(addr));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let (addr, acked, stop) = (addr.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .timeout_global(Some(Duration::from_secs(5)))
                        .max_idle_connections(0)
                        .build()
                        .into();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let current = *addr.lock().unwrap();
                        match post(&agent, current, secret, &body(client, n)) {
                            Some(id) => {
                                acked.lock().unwrap().push(id);
                                n += 1;
                            }
                            // The server is down or not ready: a vendor retries a little later.
                            None => std::thread::sleep(RETRY_PAUSE),
                        }
                    }
                })
            })
            .collect();
        Load {
            addr,
            acked,
            stop,
            clients,
        }
    }

    /// Events acknowledged so far.
    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Sends to a restarted server from now on.
    pub fn point_at(&self, addr: SocketAddr) {
        *self.addr.lock().unwrap() = addr;
    }

    /// Waits until `n` events are acknowledged in all; fails with the server's log after
    /// `within` without getting there.
    pub fn wait_for(&self, n: usize, within: Duration, server: &Server) {
        let deadline = Instant::now() + within;
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "the load stalled at {} acknowledgements:\n{}",
                self.count(),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the clients; every id acknowledged.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().expect("a load client");
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// One signed POST; the id when answered 200, accepted or duplicate (a duplicate answers a
/// retry whose first answer was lost: the id is the original's, which the store has promised
/// to keep).
fn post(agent: &ureq::Agent, addr: SocketAddr, secret: &str, body: &str) -> Option<String> {
    let signature = WATSI.signature(secret, body.as_bytes());
    let mut answer = agent
        .post(format!("http://{addr}{}", hook("acme", "watsi")))
        .header("Content-Type", "application/json")
        .header(WATSI.header, &signature)
        .send(body.as_bytes())
        .ok()?;
    if answer.status() != 200 {
        return None;
    }
    let reply: Value = serde_json::from_slice(&answer.body_mut().read_to_vec().ok()?).ok()?;
    reply["id"].as_str().map(str::to_owned)
}
