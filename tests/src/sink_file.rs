//! A file sink's JSON lines, polled until what a test waits for arrives, and checks on the
//! events read back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::capture::json_lines;
use crate::Value;

/// How long an accepted event may take to reach a sink.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);
/// The pause between two polls of a condition that has no notification (a file, `/readyz`).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A file sink's JSON lines.
pub struct SinkFile {
    pub(crate) path: PathBuf,
}

impl SinkFile {
    /// The sink file at `path` (for configurations not written by [`Config`](crate::Config)).
    pub fn at(path: impl Into<PathBuf>) -> SinkFile {
        SinkFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The events written so far (complete lines only); none when the file does not exist.
    pub fn events(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => json_lines(&text, &self.path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", self.path.display()),
        }
    }

    /// Polls until the event `id` is in the file; returns every event written by then.
    ///
    /// Each sink's worker delivers its queue in id order, and ids grow with acceptance, so once
    /// an event accepted later is in the file, everything accepted before it for this sink is
    /// too: waiting for a later event settles what an earlier request did or did not write.
    #[track_caller]
    pub fn wait_for(&self, id: &str) -> Vec<Value> {
        self.wait_until(&format!("event {id}"), |events| {
            events.iter().any(|e| e["id"] == id)
        })
    }

    /// Polls until the file holds the event `id` at least `n` times; returns them all.
    #[track_caller]
    pub fn wait_for_copies(&self, id: &str, n: usize) -> Vec<Value> {
        self.wait_until(&format!("{n} copies of event {id}"), |events| {
            count_id(events, id) >= n
        })
    }

    /// Polls until the file holds at least `n` events; returns them all.
    #[track_caller]
    pub fn wait_for_count(&self, n: usize) -> Vec<Value> {
        self.wait_until(&format!("{n} event(s)"), |events| events.len() >= n)
    }

    #[track_caller]
    fn wait_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not receive {what} within {DELIVERY_DEADLINE:?}; it holds {} event(s):\n{}",
                    self.path.display(),
                    events.len(),
                    events
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// How many of `events` carry `id`.
pub fn count_id(events: &[Value], id: &str) -> usize {
    events.iter().filter(|e| e["id"] == id).count()
}

/// Asserts that every field of `expected` is in `actual` with the same value, recursively for
/// objects (arrays and scalars compare whole; `null` must be present and null).
#[track_caller]
pub fn assert_subset(expected: &Value, actual: &Value, context: &str) {
    let mut problems = Vec::new();
    subset(expected, actual, "", &mut problems);
    assert!(
        problems.is_empty(),
        "{context}:\n  {}\n  in: {actual}",
        problems.join("\n  ")
    );
}

fn subset(expected: &Value, actual: &Value, at: &str, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let at = format!("{at}/{key}");
                match have.get(key) {
                    Some(found) => subset(value, found, &at, problems),
                    None => problems.push(format!("{at}: missing, expected {value}")),
                }
            }
        }
        _ if expected == actual => {}
        _ => problems.push(format!("{at}: expected {expected}, got {actual}")),
    }
}
