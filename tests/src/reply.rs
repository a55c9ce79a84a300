//! HTTP answers, and raw connections whose answers are read byte by byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::capture::tail;
use crate::{Capture, Value};

/// An HTTP answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The request, for failure messages.
    pub context: String,
    pub(crate) log: Option<Capture>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} {}", self.context, self.status, self.body)
    }
}

impl Reply {
    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics if it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| self.fail(&format!("the body is not JSON ({e})")))
    }

    /// Panics with the exchange and the server's recent log.
    #[track_caller]
    pub fn fail(&self, why: &str) -> ! {
        let log = self.log.as_ref().map(|l| tail(&l.text(), 60));
        panic!(
            "{why}\n  request: {}\n  answer: {} {}\n--- server log (tail) ---\n{}",
            self.context,
            self.status,
            self.body,
            log.unwrap_or_default()
        )
    }

    /// Asserts 200 `{"status": status, "id": ID}` and exactly that; returns ID.
    #[track_caller]
    pub fn expect_ok(&self, status: &str) -> String {
        if self.status != 200 {
            self.fail(&format!("expected 200 {status}"));
        }
        let json = self.json();
        let id = json["id"].as_str().filter(|id| !id.is_empty());
        let keys = json.as_object().map_or(0, |o| o.len());
        match id {
            Some(id) if json["status"] == status && keys == 2 => id.to_owned(),
            _ => self.fail(&format!(
                "expected exactly {{\"status\":\"{status}\",\"id\":ID}}"
            )),
        }
    }

    /// 200 accepted; returns the id.
    #[track_caller]
    pub fn expect_accepted(&self) -> String {
        self.expect_ok("accepted")
    }

    /// Asserts `http` with `{"error": code, "message": TEXT}` and exactly that; returns TEXT.
    #[track_caller]
    pub fn expect_error(&self, http: u16, code: &str) -> String {
        if self.status != http {
            self.fail(&format!("expected {http} {code}"));
        }
        let json = self.json();
        let keys = json.as_object().map_or(0, |o| o.len());
        let message = json["message"].as_str().filter(|m| !m.is_empty());
        match message {
            Some(message) if json["error"] == code && keys == 2 => message.to_owned(),
            _ => self.fail(&format!(
                "expected exactly {{\"error\":\"{code}\",\"message\":TEXT}}"
            )),
        }
    }
}

/// A raw connection to the server.
pub struct Connection {
    pub(crate) stream: TcpStream,
    /// Bytes read but not yet parsed into an answer.
    pub(crate) received: Vec<u8>,
    pub(crate) log: Capture,
}

/// What [`Connection::read_reply`] found.
#[derive(Debug)]
pub enum Received {
    Reply(Reply),
    /// The server closed the connection (or reset it) before a whole answer arrived.
    Closed {
        error: Option<String>,
        partial: String,
    },
    /// Nothing complete arrived in time; the connection is still open.
    TimedOut {
        partial: String,
    },
}

impl Connection {
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads until the server's interim `100 Continue` answer has arrived, and consumes it.
    /// `Err` with what arrived instead (a final answer, a close, nothing in time).
    pub fn expect_continue(&mut self, timeout: Duration) -> Result<(), String> {
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        while !self.received.starts_with(CONTINUE) {
            let complete = self.received.windows(4).any(|w| w == b"\r\n\r\n");
            let left = deadline.saturating_duration_since(Instant::now());
            if complete || left.is_zero() {
                return Err(String::from_utf8_lossy(&self.received).into_owned());
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("closed".to_owned()),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("{e}")),
            }
        }
        self.received.drain(..CONTINUE.len());
        Ok(())
    }

    /// Reads one whole answer (framed by `Content-Length`, or by the end of the connection).
    pub fn read_reply(&mut self, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        loop {
            if let Some((reply, used)) = parse_response(&self.received) {
                self.received.drain(..used);
                return Received::Reply(Reply {
                    log: Some(self.log.clone()),
                    ..reply
                });
            }
            let partial = String::from_utf8_lossy(&self.received).into_owned();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::TimedOut { partial };
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return match parse_response_until_eof(&self.received) {
                        Some(reply) => {
                            self.received.clear();
                            Received::Reply(Reply {
                                log: Some(self.log.clone()),
                                ..reply
                            })
                        }
                        None => Received::Closed {
                            error: None,
                            partial,
                        },
                    };
                }
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Received::TimedOut { partial };
                }
                Err(e) => {
                    return Received::Closed {
                        error: Some(e.to_string()),
                        partial,
                    }
                }
            }
        }
    }
}

/// A complete response at the start of `bytes` (head plus `Content-Length` bytes of body), and
/// how many bytes it took.
fn parse_response(bytes: &[u8]) -> Option<(Reply, usize)> {
    let (status, headers, body) = split_response(bytes)?;
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))?
        .1
        .trim()
        .parse()
        .ok()?;
    let head_len = bytes.len() - body.len();
    (body.len() >= length).then(|| {
        let reply = Reply {
            status,
            body: String::from_utf8_lossy(&body[..length]).into_owned(),
            headers,
            context: "raw request".to_owned(),
            log: None,
        };
        (reply, head_len + length)
    })
}

/// A response without `Content-Length`, whose body ran to the end of the connection.
fn parse_response_until_eof(bytes: &[u8]) -> Option<Reply> {
    let (status, headers, body) = split_response(bytes)?;
    let framed = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    (!framed).then(|| Reply {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
        headers,
        context: "raw request".to_owned(),
        log: None,
    })
}

type ResponseParts<'a> = (u16, Vec<(String, String)>, &'a [u8]);

fn split_response(bytes: &[u8]) -> Option<ResponseParts<'_>> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some((status, headers, &bytes[end + 4..]))
}
