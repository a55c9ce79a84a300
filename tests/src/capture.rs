//! A child's output, captured for waiting on and for failure messages.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::Value;

/// A child's output stream, drained by a thread into a shared buffer so the pipe never blocks;
/// waiters are woken on every line and when the stream closes.
#[derive(Clone, Default)]
pub struct Capture(Arc<(Mutex<CaptureState>, Condvar)>);

#[derive(Default)]
struct CaptureState {
    text: String,
    closed: bool,
}

impl Capture {
    pub(crate) fn drain(stream: impl Read + Send + 'static) -> Capture {
        let capture = Capture::default();
        let shared = capture.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).unwrap_or(0);
                let (lock, wake) = &*shared.0;
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    state.closed = true;
                    wake.notify_all();
                    return;
                }
                state.text.push_str(&String::from_utf8_lossy(&line));
                wake.notify_all();
            }
        });
        capture
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        self.lock().text.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CaptureState> {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `found` finds something in the text. `Err(true)` when the stream closed
    /// first, `Err(false)` when the deadline passed.
    pub fn wait_for<T>(
        &self,
        deadline: Instant,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, bool> {
        let (_, wake) = &*self.0;
        let mut state = self.lock();
        loop {
            if let Some(t) = found(&state.text) {
                return Ok(t);
            }
            if state.closed {
                return Err(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(false);
            }
            state = wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until the stream closes (the process exited); `false` if the deadline passed.
    pub fn wait_closed(&self, deadline: Instant) -> bool {
        matches!(self.wait_for(deadline, |_| None::<()>), Err(true))
    }
}

pub(crate) fn json_lines(text: &str, source: &str) -> Vec<Value> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{source}: a line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// The last `n` lines of a log, for failure messages.
pub(crate) fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
