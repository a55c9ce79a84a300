//! Cluster dead letters: the `SWITCHYARD_DEAD` stream, one subject per letter
//! (`switchyard.dead.<workspace>.<sink>.<event id>`, one message kept per subject), holding
//! the letter and the envelope, so a replay does not depend on the events bucket's retention.
//! They stay until the operator replays or deletes them.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures_util::StreamExt;

use super::subjects::{self, record_key};
use super::{ClusterStore, EVENT_ID_HEADER};
use crate::base::id::EventId;
use crate::store::codec::{self, Reader};
use crate::store::{DeadPage, SinkQueue, StoreError};

fn subject(q: &SinkQueue, id: &EventId) -> String {
    format!("switchyard.dead.{}.{}.{id}", q.workspace(), q.sink())
}

fn encode(dead_letter: &[u8], envelope: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(dead_letter.len() + envelope.len() + 4);
    codec::put_bytes32(&mut out, dead_letter);
    out.extend_from_slice(envelope);
    codec::versioned(&out).into()
}

/// The letter and the envelope.
fn decode(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), codec::RecordError> {
    let mut r = Reader(codec::payload(bytes)?);
    let letter = r.bytes32()?.to_vec();
    Ok((letter, r.0.to_vec()))
}

fn cluster(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Cluster(format!("{context}: {e}"))
}

impl ClusterStore {
    pub(in crate::store) async fn bury(
        &self,
        q: &SinkQueue,
        id: &EventId,
        dead_letter: &[u8],
    ) -> Result<(), StoreError> {
        let message = self.release(q, id);
        let envelope = match &message {
            Some(message) => message.payload.to_vec(),
            None => self.event(id).await?.unwrap_or_default(),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(EVENT_ID_HEADER, id.to_string().as_str());
        let seq = message
            .as_ref()
            .and_then(|m| m.info().ok().map(|i| i.stream_sequence))
            .unwrap_or_default();
        headers.insert(
            NATS_MESSAGE_ID,
            format!("dead.{}.{seq}", record_key(q, id)).as_str(),
        );
        let published = async {
            self.js
                .publish_with_headers(subject(q, id), headers, encode(dead_letter, &envelope))
                .await
                .map_err(|e| cluster("burying", e))?
                .await
                .map_err(|e| cluster("burying", e))
        }
        .await;
        if let Err(error) = published {
            if let Some(message) = message {
                self.restore(q, id, message);
            }
            return Err(error);
        }
        if let Some(message) = message {
            if let Err(error) = message.double_ack().await {
                tracing::warn!(workspace = %q.workspace(), sink = %q.sink(), event_id = %id, %error, "a buried event was not acknowledged; it may be delivered again");
            }
        }
        let _ = self.attempts.purge(record_key(q, id)).await;
        q.0.dead.fetch_add(1, Ordering::Relaxed);
        let _ =
            q.0.depth
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(1))
                });
        Ok(())
    }

    /// Ids of a sink's dead letters, oldest first.
    async fn dead_ids(&self, q: &SinkQueue) -> Result<Vec<EventId>, StoreError> {
        let filter = format!("switchyard.dead.{}.{}.*", q.workspace(), q.sink());
        let mut subjects = self
            .dead_stream
            .info_with_subjects(&filter)
            .await
            .map_err(|e| cluster("listing dead letters", e))?;
        let mut ids = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| cluster("listing dead letters", e))?;
            if let Some(id) = subject.rsplit('.').next().and_then(EventId::parse) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub(super) async fn count_dead_letters(&self, q: &SinkQueue) -> Result<u64, StoreError> {
        Ok(self.dead_ids(q).await?.len() as u64)
    }

    async fn dead_message(
        &self,
        q: &SinkQueue,
        id: &EventId,
    ) -> Result<Option<(u64, Vec<u8>, Vec<u8>)>, StoreError> {
        match self
            .dead_stream
            .get_last_raw_message_by_subject(&subject(q, id))
            .await
        {
            Ok(message) => match decode(&message.payload) {
                Ok((letter, envelope)) => Ok(Some((message.sequence, letter, envelope))),
                Err(error) => {
                    self.unreadable(&format!("dead letter {id}"), &error);
                    Ok(None)
                }
            },
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(cluster("reading a dead letter", e)),
        }
    }

    pub(in crate::store) async fn dead_letters(
        &self,
        q: &SinkQueue,
        after: Option<&EventId>,
        limit: usize,
    ) -> Result<DeadPage, StoreError> {
        let ids: Vec<EventId> = self
            .dead_ids(q)
            .await?
            .into_iter()
            .filter(|id| after.is_none_or(|after| id > after))
            .collect();
        let mut letters = Vec::new();
        for id in ids.iter().take(limit) {
            if let Some((_, letter, _)) = self.dead_message(q, id).await? {
                letters.push((id.clone(), letter));
            }
        }
        let next = match limit.checked_sub(1) {
            Some(last) if ids.len() > limit => ids.get(last).cloned(),
            _ => None,
        };
        Ok(DeadPage { letters, next })
    }

    pub(in crate::store) async fn dead_letter(
        &self,
        q: &SinkQueue,
        id: &EventId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.dead_message(q, id).await?.map(|(_, letter, _)| letter))
    }

    pub(in crate::store) async fn requeue(
        &self,
        q: &SinkQueue,
        id: &EventId,
        state: &[u8],
    ) -> Result<bool, StoreError> {
        let Some((seq, _, envelope)) = self.dead_message(q, id).await? else {
            return Ok(false);
        };
        // Before the event is queued, so no instance takes it without its attempts.
        self.attempts
            .put(record_key(q, id), codec::versioned(state).into())
            .await
            .map_err(|e| cluster("replaying", e))?;
        self.js
            .publish_with_headers(
                subjects::subject(q),
                subjects::headers(id, q, Some(seq)),
                envelope.into(),
            )
            .await
            .map_err(|e| cluster("replaying", e))?
            .await
            .map_err(|e| cluster("replaying", e))?;
        self.dead_stream
            .purge()
            .filter(subject(q, id))
            .await
            .map_err(|e| cluster("replaying", e))?;
        let _ =
            q.0.dead
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(1))
                });
        Ok(true)
    }

    /// An event back on a sink's queue whatever became of it: a dead letter is replayed; a
    /// delivered event (or one waiting for a retry) is published on the queue again with
    /// `state` in the attempts bucket, its envelope from the events bucket. One still leased
    /// or unread by this instance is left: it is on the queue already.
    pub(in crate::store) async fn put_back(
        &self,
        q: &SinkQueue,
        id: &EventId,
        state: &[u8],
    ) -> Result<bool, StoreError> {
        if self.requeue(q, id, state).await? || self.queued(q, id)?.is_some() {
            return Ok(true);
        }
        let envelope = match self.event_record(id).await? {
            Some((queues, envelope)) if queues.iter().any(|p| p == q.prefix()) => envelope,
            _ => return Ok(false),
        };
        self.attempts
            .put(record_key(q, id), codec::versioned(state).into())
            .await
            .map_err(|e| cluster("delivering again", e))?;
        // Its own message id, so JetStream's duplicate window does not drop it as the
        // event's first publish.
        let again =
            (SystemTime::now().duration_since(UNIX_EPOCH)).map_or(0, |d| d.as_millis() as u64);
        self.js
            .publish_with_headers(
                subjects::subject(q),
                subjects::headers(id, q, Some(again)),
                envelope.into(),
            )
            .await
            .map_err(|e| cluster("delivering again", e))?
            .await
            .map_err(|e| cluster("delivering again", e))?;
        Ok(true)
    }

    pub(in crate::store) async fn delete_dead_letter(
        &self,
        q: &SinkQueue,
        id: &EventId,
    ) -> Result<bool, StoreError> {
        let purged = self
            .dead_stream
            .purge()
            .filter(subject(q, id))
            .await
            .map_err(|e| cluster("deleting a dead letter", e))?;
        if purged.purged > 0 {
            let _ =
                q.0.dead
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                        Some(d.saturating_sub(1))
                    });
        }
        Ok(purged.purged > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_its_envelope_byte_for_byte() {
        let stored = encode(
            br#"{"reason":"gave up"}"#,
            br#"{"id":"x","raw":"  1e400 "}"#,
        );
        let (letter, envelope) = decode(&stored).unwrap();
        assert_eq!(letter, br#"{"reason":"gave up"}"#);
        assert_eq!(envelope, br#"{"id":"x","raw":"  1e400 "}"#);
    }
}
