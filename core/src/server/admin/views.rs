//! The operator views that show stored events: a page of dead letters and one event with its
//! delivery to each sink. Both embed the stored envelope verbatim (`raw` as the vendor sent it).

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{Admin, Page};
use crate::base::id::{rfc3339, EventId};
use crate::deliver::{self, DeadLetter, Delivered, DeliveryState};
use crate::http::answer::{error, json_bytes, Answer};
use crate::store::{DeliveryOf, SinkQueue, StoreError};

impl Admin {
    pub(super) async fn dead_letters(
        &self,
        queue: &SinkQueue,
        page: Page,
    ) -> Result<Answer, StoreError> {
        let found = self
            .store
            .dead_letters(queue, page.after.as_ref(), page.limit)
            .await?;
        let mut letters = Vec::with_capacity(found.letters.len());
        for (id, bytes) in found.letters {
            let letter = match deliver::decode::<DeadLetter>(&bytes) {
                Some(dead) => json!(dead),
                None => {
                    self.store
                        .unreadable(&format!("dead letter {id}"), &"not a dead-letter record");
                    json!({"event_id": id.to_string(), "unreadable": true})
                }
            };
            let envelope = self.envelope(&id).await?;
            letters.push(LetterView { letter, envelope });
        }
        let page = PageView {
            dead_letters: letters,
            next: found.next.map(|id| id.to_string()),
            total: queue.dead(),
        };
        Ok(json_bytes(StatusCode::OK, to_json(&page)))
    }

    /// An event's envelope as it was stored: `raw` as the vendor sent it (key order, numbers).
    async fn envelope(&self, id: &EventId) -> Result<Option<Box<RawValue>>, StoreError> {
        Ok((self.store.event(id).await?)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| RawValue::from_string(text).ok()))
    }

    pub(super) async fn event(&self, id: &EventId) -> Result<Answer, StoreError> {
        let Some(envelope) = self.envelope(id).await? else {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "unknown_event",
                "no such event (never accepted, or past retention)",
            ));
        };
        let topology = self.topology.load_full();
        let head = workspace_of(envelope.get().as_bytes());
        let workspace = head.and_then(|head| topology.workspace(&head));
        let mut deliveries = Vec::new();
        for worker in workspace.into_iter().flat_map(|ws| ws.workers()) {
            let mut delivery = match self.store.delivery_of(&worker.queue, id).await? {
                DeliveryOf::Unknown => continue,
                DeliveryOf::Queued(state) => {
                    let state: DeliveryState =
                        state.and_then(|s| deliver::decode(&s)).unwrap_or_default();
                    let next = std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(state.next_attempt_at_ms);
                    json!({"status": "queued", "attempts": state.attempts, "next_attempt_at": rfc3339(next)})
                }
                DeliveryOf::Dead(bytes) => match deliver::decode::<DeadLetter>(&bytes) {
                    Some(dead) => {
                        json!({"status": "dead", "reason": dead.reason, "dead_at": dead.dead_at, "attempts": dead.attempts})
                    }
                    None => json!({"status": "dead"}),
                },
                DeliveryOf::Delivered(record) => {
                    match record.and_then(|bytes| deliver::decode::<Delivered>(&bytes)) {
                        Some(done) => {
                            json!({"status": "delivered", "delivered_at": done.delivered_at, "attempts": done.attempts()})
                        }
                        // Delivered at the first attempt: the embedded store keeps no record.
                        None => json!({"status": "delivered"}),
                    }
                }
            };
            delivery["sink"] = json!(worker.sink);
            deliveries.push(delivery);
        }
        deliveries.sort_by_key(|d| d["sink"].to_string());
        let view = EventView {
            event: envelope,
            deliveries,
        };
        Ok(json_bytes(StatusCode::OK, to_json(&view)))
    }
}

/// Answers that embed stored envelopes verbatim: a `Value` would sort their keys and round
/// their numbers.
#[derive(Serialize)]
struct EventView {
    event: Box<RawValue>,
    deliveries: Vec<Value>,
}

#[derive(Serialize)]
struct LetterView {
    #[serde(flatten)]
    letter: Value,
    envelope: Option<Box<RawValue>>,
}

#[derive(Serialize)]
struct PageView {
    dead_letters: Vec<LetterView>,
    next: Option<String>,
    total: u64,
}

/// Strings, numbers and already-valid JSON: serialisation cannot fail.
fn to_json(view: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(view).unwrap_or_default()
}

/// The workspace a stored envelope belongs to.
pub(super) fn workspace_of(envelope: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        workspace: String,
    }
    serde_json::from_slice::<Head>(envelope)
        .ok()
        .map(|head| head.workspace)
}
