//! How the cluster store names things on NATS: a queue's subject and consumer, a queue
//! message's headers, and the keys of its delivery records.

use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};

use super::EVENT_ID_HEADER;
use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};
use crate::store::SinkQueue;

/// The subject a sink's queue messages are published on.
pub(super) fn subject(q: &SinkQueue) -> String {
    format!("switchyard.queue.{}.{}", q.workspace(), q.sink())
}

/// Headers of a queue message: its event id, and the id JetStream dedupes a retried
/// publish on (within the stream's duplicate window). A replay gets its own.
pub(super) fn headers(id: &EventId, q: &SinkQueue, replay: Option<u64>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(EVENT_ID_HEADER, id.to_string().as_str());
    let message_id = match replay {
        Some(seq) => format!("{id}.{}.{}.replay.{seq}", q.workspace(), q.sink()),
        None => format!("{id}.{}.{}", q.workspace(), q.sink()),
    };
    headers.insert(NATS_MESSAGE_ID, message_id.as_str());
    headers
}

/// A consumer's name: unique per workspace and sink, and free of the characters NATS
/// reserves. Its description carries the names themselves.
pub(super) fn consumer_name(q: &SinkQueue) -> String {
    format!(
        "q{}",
        hex::encode(format!("{}/{}", q.workspace(), q.sink()))
    )
}

/// The workspace and sink a consumer's description names.
pub(super) fn names(description: &str) -> Option<(WorkspaceId, SinkName)> {
    let (workspace, sink) = description.split_once('/')?;
    Some((WorkspaceId::new(workspace), SinkName::new(sink)))
}

/// The key of a queued event's records in the attempts and delivered buckets.
pub(super) fn record_key(q: &SinkQueue, id: &EventId) -> String {
    format!("{}.{}.{id}", q.workspace(), q.sink())
}

pub(super) fn event_id(headers: Option<&HeaderMap>) -> Option<EventId> {
    EventId::parse(headers?.get(EVENT_ID_HEADER)?.as_str())
}
