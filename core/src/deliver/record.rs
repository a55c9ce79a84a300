//! What the store keeps about deliveries: each attempt's outcome, the state of a queued event,
//! dead letters and completed deliveries. JSON, so an operator can read them through /admin/.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::base::id::{rfc3339, EventId};
use crate::base::names::{SinkName, WorkspaceId};

/// One try at handing an event to a sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// RFC 3339.
    pub at: String,
    /// `delivered`, or why it failed.
    pub outcome: String,
}

/// A queued event's attempts so far and when the next one is due.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    pub attempts: Vec<Attempt>,
    /// Milliseconds since the Unix epoch.
    pub next_attempt_at_ms: u64,
    /// Failures that were the event's own (the sink took others meanwhile): they count
    /// against the sink's `retry` schedule. Failures while the sink was down do not.
    #[serde(default)]
    pub poison_failures: usize,
}

/// An event a sink did not take after its last attempt (or refused for good). Its envelope
/// stays with the event in the store; the operator API shows them together.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_id: String,
    pub workspace: String,
    pub sink: String,
    pub reason: String,
    /// RFC 3339.
    pub dead_at: String,
    pub attempts: Vec<Attempt>,
}

impl DeadLetter {
    /// `id` of `workspace`'s `sink`, dead now, with why and every attempt.
    pub fn new(
        workspace: &WorkspaceId,
        sink: &SinkName,
        id: &EventId,
        reason: String,
        attempts: Vec<Attempt>,
    ) -> DeadLetter {
        DeadLetter {
            event_id: id.to_string(),
            workspace: workspace.to_string(),
            sink: sink.to_string(),
            reason,
            dead_at: rfc3339(SystemTime::now()),
            attempts,
        }
    }
}

/// A completed delivery, kept for lookup until retention ends. Most deliveries succeed at the
/// first attempt; those store no attempt list (it would only repeat `delivered_at`), which
/// keeps this record, written once per event and sink, small.
#[derive(Debug, Serialize, Deserialize)]
pub struct Delivered {
    /// RFC 3339.
    pub delivered_at: String,
    /// Every attempt, when there was more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

impl Delivered {
    pub fn new(delivered_at: String, earlier_failures: Vec<Attempt>) -> Delivered {
        let mut attempts = earlier_failures;
        if !attempts.is_empty() {
            attempts.push(Attempt {
                at: delivered_at.clone(),
                outcome: "delivered".into(),
            });
        }
        Delivered {
            delivered_at,
            attempts,
        }
    }

    /// Every attempt, the implied single one included.
    pub fn attempts(&self) -> Vec<Attempt> {
        if self.attempts.is_empty() {
            vec![Attempt {
                at: self.delivered_at.clone(),
                outcome: "delivered".into(),
            }]
        } else {
            self.attempts.clone()
        }
    }
}

/// Records are written by this module only, so a record that does not decode is damage; it
/// reads as absent rather than stopping delivery.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Records hold strings, numbers and already-valid JSON: serialisation cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}
