//! What the console does beyond the CLI's commands: deliver one event again to one sink,
//! delete every dead letter of a sink at once, and the per-sink attempt counts the overview
//! turns into rates.

use hyper::StatusCode;
use serde_json::{json, Value};

use super::views::workspace_of;
use super::Admin;
use crate::base::id::EventId;
use crate::deliver::{self, Redelivery};
use crate::http::answer::{error, reply, Answer};
use crate::metrics::SinkOutcomeLabels;
use crate::store::{SinkQueue, StoreError};

/// The outcomes a delivery worker counts ([`crate::metrics::Metrics::sink_attempt`]).
const OUTCOMES: [&str; 3] = ["delivered", "failed", "dead"];
/// Dead letters deleted per store read by [`Admin::delete_all`].
const DELETE_PAGE: usize = 1000;

impl Admin {
    /// `POST /admin/events/{id}/sinks/{sink}/redeliver`: the event back on that sink's queue,
    /// delivered, dead or anything but queued already.
    pub(super) async fn redeliver(&self, id: &EventId, sink: &str) -> Result<Answer, StoreError> {
        let workspace = (self.store.event(id).await?).and_then(|bytes| workspace_of(&bytes));
        let Some(workspace) = workspace else {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "unknown_event",
                "no such event (never accepted, or past retention)",
            ));
        };
        let Some(queue) = self.store.known_queue(&workspace, sink) else {
            return Ok(not_found_sink(&workspace, sink));
        };
        match deliver::redeliver(&self.store, &queue, id).await? {
            Redelivery::Queued => {
                self.store.sync().await?;
                tracing::info!(workspace = %queue.workspace(), sink = %queue.sink(), event_id = %id, "event queued again by the operator");
                Ok(reply(
                    StatusCode::OK,
                    &json!({"queued": id.to_string(), "sink": sink}),
                ))
            }
            Redelivery::AlreadyQueued => Ok(error(
                StatusCode::CONFLICT,
                "already_queued",
                "the event is still queued for this sink: it will be delivered",
            )),
            Redelivery::Unknown => Ok(error(
                StatusCode::NOT_FOUND,
                "not_routed",
                "the event was not routed to this sink, or its record is past retention",
            )),
        }
    }

    /// `DELETE /admin/workspaces/{ws}/sinks/{sink}/dead-letters`: every one, for good.
    pub(super) async fn delete_all(&self, queue: &SinkQueue) -> Result<Answer, StoreError> {
        let mut deleted = 0u64;
        loop {
            let page = self.store.dead_letters(queue, None, DELETE_PAGE).await?;
            if page.letters.is_empty() {
                break;
            }
            let mut progress = false;
            for (id, _) in &page.letters {
                if self.store.delete_dead_letter(queue, id).await? {
                    deleted += 1;
                    progress = true;
                }
            }
            // A page whose letters are all gone already (another deletion at once) ends it
            // rather than reading the same page forever.
            if !progress {
                break;
            }
        }
        self.store.sync().await?;
        tracing::info!(workspace = %queue.workspace(), sink = %queue.sink(), deleted, "dead letters deleted by the operator");
        Ok(reply(StatusCode::OK, &json!({ "deleted": deleted })))
    }

    /// Delivery attempts to a sink since the server started, by outcome.
    pub(super) fn attempt_counts(&self, queue: &SinkQueue) -> Value {
        let counts = OUTCOMES.iter().map(|outcome| {
            let labels = SinkOutcomeLabels {
                workspace: queue.workspace().to_string(),
                sink: queue.sink().to_string(),
                outcome: (*outcome).to_owned(),
            };
            let count = self.metrics.sink_attempts.get_or_create(&labels).get();
            ((*outcome).to_owned(), json!(count))
        });
        Value::Object(counts.collect())
    }
}

fn not_found_sink(workspace: &str, sink: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "unknown_sink",
        &format!("workspace `{workspace}` has no sink `{sink}`"),
    )
}
