//! The load client's HTTP/1.1 connection, kept lean so that the client is never what limits a
//! figure: the caller writes each request's bytes into a buffer the connection reuses, one
//! `write` sends them, and the answer is parsed in place (httparse, hyper's own parser) from a
//! read buffer that is also reused. No header map, no body type, no task per connection
//! beyond the caller's: one keep-alive connection, one exchange at a time, as a vendor sends.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answers larger than this are refused (the servers measured answer a few dozen bytes).
const MAX_ANSWER: usize = 1 << 20;
/// Headers an answer may carry.
const MAX_HEADERS: usize = 32;

/// Why an exchange failed; the connection is then closed.
#[derive(Debug)]
pub enum WireError {
    Io(std::io::Error),
    /// The server closed the connection before a whole answer.
    Closed,
    Malformed(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Closed => write!(f, "connection closed before a whole answer"),
            WireError::Malformed(why) => write!(f, "malformed answer: {why}"),
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e)
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Wire {
    stream: TcpStream,
    /// Read buffer: `input[..filled]` holds bytes not yet consumed.
    input: Vec<u8>,
    filled: usize,
    /// The previous answer's end: dropped at the next exchange.
    consumed: usize,
    /// The request being built, reused for every request.
    pub request: Vec<u8>,
    /// The server asked to close after its last answer.
    closing: bool,
}

/// An answer: its status and where its body lies in the connection's read buffer.
pub struct Answer<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

impl Wire {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Wire> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Wire {
            stream,
            input: vec![0; 16 * 1024],
            filled: 0,
            consumed: 0,
            request: Vec::with_capacity(4096),
            closing: false,
        })
    }

    /// True once the server said `Connection: close`: open a new one for the next request.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Sends [`Wire::request`] and reads one whole answer. The answer's body stays in the read
    /// buffer until the next exchange.
    pub async fn exchange(&mut self) -> Result<Answer<'_>, WireError> {
        // Drop the previous answer; keep-alive without pipelining leaves nothing after it,
        // but only what was consumed is dropped.
        self.input.copy_within(self.consumed..self.filled, 0);
        self.filled -= self.consumed;
        self.consumed = 0;
        self.stream.write_all(&self.request).await?;
        let (status, head, body) = loop {
            if let Some(parsed) = self.parse()? {
                break parsed;
            }
            self.fill().await?;
        };
        let end = match body {
            Body::Length(len) => {
                while self.filled < head + len {
                    self.fill().await?;
                }
                head + len
            }
            Body::Chunked => self.dechunk(head).await?,
        };
        self.consumed = end;
        Ok(Answer {
            status,
            body: &self.input[head..end],
        })
    }

    /// Parses a head if a whole one is buffered: status, head length, how the body is framed.
    fn parse(&mut self) -> Result<Option<(u16, usize, Body)>, WireError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(&self.input[..self.filled]) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(WireError::Malformed(e.to_string())),
        };
        let status = response.code.unwrap_or(0);
        let mut body = Body::Length(0);
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let len = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| WireError::Malformed("bad content-length".into()))?;
                body = Body::Length(len);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                && h.value.eq_ignore_ascii_case(b"chunked")
            {
                body = Body::Chunked;
            } else if h.name.eq_ignore_ascii_case("connection")
                && h.value.eq_ignore_ascii_case(b"close")
            {
                self.closing = true;
            }
        }
        if let Body::Length(len) = body {
            if len > MAX_ANSWER {
                return Err(WireError::Malformed(format!("a {len}-byte answer")));
            }
        }
        Ok(Some((status, head, body)))
    }

    /// Decodes a chunked body in place, right after the head at `head`; returns where the
    /// decoded body ends, with any bytes after the chunked body moved up behind it.
    async fn dechunk(&mut self, head: usize) -> Result<usize, WireError> {
        let mut write = head;
        let mut read = head;
        loop {
            let (start, size) = loop {
                match httparse::parse_chunk_size(&self.input[read..self.filled]) {
                    Ok(httparse::Status::Complete((start, size))) => break (start, size as usize),
                    Ok(httparse::Status::Partial) => self.fill().await?,
                    Err(_) => return Err(WireError::Malformed("bad chunk size".into())),
                }
            };
            read += start;
            if write - head + size > MAX_ANSWER {
                return Err(WireError::Malformed("an answer over 1 MiB".into()));
            }
            // The chunk, then its CRLF (for the last chunk: the empty trailer's CRLF).
            while self.filled < read + size + 2 {
                self.fill().await?;
            }
            self.input.copy_within(read..read + size, write);
            write += size;
            read += size + 2;
            if size == 0 {
                // What follows the answer belongs to the next one.
                let rest = self.filled - read;
                self.input.copy_within(read..self.filled, write);
                self.filled = write + rest;
                return Ok(write);
            }
        }
    }

    /// Reads more bytes into the buffer, growing it when full.
    async fn fill(&mut self) -> Result<(), WireError> {
        if self.filled == self.input.len() {
            if self.input.len() >= 2 * MAX_ANSWER {
                return Err(WireError::Malformed("an answer head over 1 MiB".into()));
            }
            self.input.resize(self.input.len() * 2, 0);
        }
        match self.stream.read(&mut self.input[self.filled..]).await? {
            0 => Err(WireError::Closed),
            n => {
                self.filled += n;
                Ok(())
            }
        }
    }
}

enum Body {
    Length(usize),
    Chunked,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request (read up to its blank line, no body) with the next
    /// canned answer, split in two writes to exercise partial reads.
    async fn canned(answers: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                while !seen.ends_with(b"\r\n\r\n") {
                    let mut byte = [0];
                    if stream.read(&mut byte).await.unwrap() == 0 {
                        return;
                    }
                    seen.push(byte[0]);
                }
                seen.clear();
                let (a, b) = answer.split_at(answer.len() / 2);
                stream.write_all(a).await.unwrap();
                stream.flush().await.unwrap();
                tokio::task::yield_now().await;
                stream.write_all(b).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_length_and_chunked_answers_on_one_connection() {
        let addr = canned(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n3\r\n!!!\r\n0\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ])
        .await;
        let mut wire = Wire::connect(addr).await.unwrap();
        wire.request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
        let a = wire.exchange().await.unwrap();
        assert_eq!((a.status, a.body), (200, &b"hello"[..]));
        let a = wire.exchange().await.unwrap();
        assert_eq!((a.status, a.body), (200, &b"OK!!!"[..]));
        assert!(!wire.is_closing());
        let a = wire.exchange().await.unwrap();
        assert_eq!((a.status, a.body), (503, &b""[..]));
        assert!(wire.is_closing());
        assert!(matches!(wire.exchange().await, Err(WireError::Closed)));
    }
}
