//! Dedupe claims and the events they guard: what a claim holds (`pending` then `done`), what
//! claiming a key gives, and storing an event with its queue messages. Claiming, taking over
//! and the batching are [`super::writer`]'s.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::future::join_all;

use super::{subjects, ClusterStore};
use crate::base::id::EventId;
use crate::store::codec::{self, Reader};
use crate::store::{Accept, SinkQueue, StoreError};

/// A `pending` claim older than this is taken over: its instance died, or lost NATS, between
/// claiming and storing. Far longer than a store takes, far shorter than vendors' retries.
pub(super) const TAKEOVER_AFTER: Duration = Duration::from_secs(30);
/// The event for lookups, and one queue message per sink: every write sent before any
/// acknowledgement is awaited; returns once JetStream has acknowledged them all.
pub(super) async fn store_event(
    js: &jetstream::Context,
    events: &kv::Store,
    accept: &Accept,
) -> Result<(), StoreError> {
    let mut acks = Vec::with_capacity(accept.queues.len());
    for q in &accept.queues {
        let ack = js
            .publish_with_headers(
                subjects::subject(q),
                subjects::headers(&accept.id, q, None),
                Bytes::copy_from_slice(&accept.envelope),
            )
            .await
            .map_err(|e| StoreError::Cluster(format!("queueing for {}: {e}", q.sink())))?;
        acks.push(ack);
    }
    let record = EventRecord::encode(&accept.queues, &accept.envelope);
    let put = async {
        events
            .put(accept.id.to_string(), record)
            .await
            .map_err(|e| StoreError::Cluster(format!("storing the event: {e}")))
    };
    let queued = async {
        for ack in join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
            ack.map_err(|e| StoreError::Cluster(format!("queueing: {e}")))?;
        }
        Ok(())
    };
    futures_util::future::try_join(put, queued).await?;
    Ok(())
}

impl ClusterStore {
    pub(in crate::store) async fn event(
        &self,
        id: &EventId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.event_record(id).await?.map(|(_, envelope)| envelope))
    }

    /// The queues an event went to and its envelope.
    pub(super) async fn event_record(
        &self,
        id: &EventId,
    ) -> Result<Option<(Vec<Vec<u8>>, Vec<u8>)>, StoreError> {
        let Some(bytes) = self
            .events
            .get(id.to_string())
            .await
            .map_err(|e| StoreError::Cluster(format!("reading event {id}: {e}")))?
        else {
            return Ok(None);
        };
        match EventRecord::decode(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(error) => {
                self.unreadable(&format!("stored event {id}"), &error);
                Ok(None)
            }
        }
    }
}

/// What claiming a key gave.
pub(super) enum Claimed {
    /// This accept holds the claim (created, or taken over) at this revision.
    Mine(u64),
    /// A stored event has it.
    Duplicate(EventId),
}

/// A dedupe claim's value.
pub(super) enum Claim {
    /// Claimed by this event id at this time (ms), not yet known to be stored.
    Pending(EventId, u64),
    Done(EventId),
}

impl Claim {
    pub(super) fn encode(&self) -> Bytes {
        match self {
            Claim::Pending(id, at) => format!("pending {id} {at}").into(),
            Claim::Done(id) => format!("done {id}").into(),
        }
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Claim> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split(' ');
        match (parts.next()?, parts.next().and_then(EventId::parse)?) {
            ("done", id) => Some(Claim::Done(id)),
            ("pending", id) => Some(Claim::Pending(id, parts.next()?.parse().ok()?)),
            _ => None,
        }
    }
}

/// An event as the events bucket keeps it: the queues it went to, then its envelope.
struct EventRecord;

impl EventRecord {
    fn encode(queues: &[SinkQueue], envelope: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(envelope.len() + 64);
        out.extend_from_slice(&(queues.len() as u16).to_be_bytes());
        for q in queues {
            codec::put_bytes16(&mut out, q.prefix());
        }
        out.extend_from_slice(envelope);
        codec::versioned(&out).into()
    }

    fn decode(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, Vec<u8>), codec::RecordError> {
        let mut r = Reader(codec::payload(bytes)?);
        let queues = (0..r.u16()?)
            .map(|_| r.bytes16().map(<[u8]>::to_vec))
            .collect::<Result<_, _>>()?;
        Ok((queues, r.0.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_and_foreign_values_are_not_claims() {
        let id = EventId::generate();
        match Claim::decode(&Claim::Pending(id.clone(), 42).encode()) {
            Some(Claim::Pending(got, 42)) => assert_eq!(got, id),
            _ => panic!("pending claim did not round-trip"),
        }
        match Claim::decode(&Claim::Done(id.clone()).encode()) {
            Some(Claim::Done(got)) => assert_eq!(got, id),
            _ => panic!("done claim did not round-trip"),
        }
        assert!(Claim::decode(b"done not-an-id").is_none());
        assert!(Claim::decode(b"").is_none());
    }
}
