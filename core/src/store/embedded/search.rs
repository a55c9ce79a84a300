//! Event search over the index: each entry carries the fields a search filters on, taken from
//! the envelope once, when the applier writes the entry; a search then walks the index newest
//! first within its time range (event ids are time-ordered, see [`super::index`]) without
//! reading the log, and asks each sink's lane, attempts and dead letters where the event
//! stands there.

use std::borrow::Cow;

use serde::Deserialize;

use super::record::{self, StoredEvent};
use super::wal::Position;
use super::{EmbeddedStore, StoreError};
use crate::base::id::EventId;
use crate::store::codec::{put_bytes16, Reader};
use crate::store::search::{
    DeliveryStatus, Fields, Found, SearchPage, SearchQuery, DEFAULT_PAGE, MAX_PAGE,
};

/// The envelope's searchable part; the rest (`raw` above all) is skipped unread.
#[derive(Deserialize)]
struct Searchable<'a> {
    #[serde(borrow)]
    workspace: Cow<'a, str>,
    #[serde(borrow)]
    vendor: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    vendor_event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dedupe_key: Cow<'a, str>,
    #[serde(borrow)]
    dedupe_basis: Cow<'a, str>,
    #[serde(borrow)]
    received_at: Cow<'a, str>,
    #[serde(default)]
    data: Parties,
}

/// `data.from` and `data.to` when they are strings (the canonical message shape).
#[derive(Deserialize, Default)]
struct Parties {
    from: Option<serde_json::Value>,
    to: Option<serde_json::Value>,
}

/// The index entry's search fields for a compressed envelope: empty (an entry search skips)
/// when the envelope cannot be read, which its own reader reports.
pub(super) fn index_fields(compressed: &[u8]) -> Vec<u8> {
    let Ok(envelope) = record::decompress(compressed) else {
        return Vec::new();
    };
    let Ok(e) = serde_json::from_slice::<Searchable<'_>>(&envelope) else {
        return Vec::new();
    };
    // The dedupe key ends `delivery_id:<id>` when the vendor's delivery id made it.
    let delivery_id = (e.dedupe_basis == "delivery_id")
        .then(|| e.dedupe_key.rsplit_once("delivery_id:").map(|(_, id)| id))
        .flatten()
        .unwrap_or("");
    let text = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let mut out = Vec::new();
    for field in [
        &e.workspace,
        &e.vendor,
        &e.event_type,
        e.vendor_event_id.as_deref().unwrap_or(""),
        delivery_id,
        &text(&e.data.from),
        &text(&e.data.to),
        &e.received_at,
    ] {
        put_bytes16(&mut out, field.as_bytes());
    }
    out
}

/// Reads what [`index_fields`] wrote; `None` for an entry without them.
pub(super) fn decode(bytes: &[u8]) -> Option<Fields<'_>> {
    let mut r = Reader(bytes);
    let mut next = || r.bytes16().ok().and_then(|b| std::str::from_utf8(b).ok());
    Some(Fields {
        workspace: next()?,
        vendor: next()?,
        event_type: next()?,
        vendor_event_id: next()?,
        delivery_id: next()?,
        from: next()?,
        to: next()?,
        received_at: next()?,
    })
}

/// The id bound a time makes: the smallest id of that millisecond.
pub(super) fn bound(ms: u64) -> [u8; 16] {
    ulid::Ulid::from_parts(ms, 0).to_bytes()
}

impl EmbeddedStore {
    /// The events that answer `query`, newest first, one page, with every event accepted
    /// before the call. Blocking: it may wait for the index (see [`EmbeddedStore::event`]).
    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        self.settle();
        let trees = self.trees()?;
        let limit = match query.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let low = bound(query.since_ms.unwrap_or(0));
        let until = (query.until_ms).map(|ms| bound(ms.saturating_add(1)));
        let after = query.after.as_ref().map(EventId::to_bytes);
        let high = match (until, after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if high.is_some_and(|high| high <= low) {
            return Ok(SearchPage::default());
        }
        let mut page = SearchPage::default();
        for entry in self.entries(&trees, low, high, true) {
            let (id, bytes) = entry?;
            let stored = match StoredEvent::decode(&bytes) {
                Ok(stored) => stored,
                Err(error) => {
                    self.unreadable("stored event", &error);
                    continue;
                }
            };
            let Some(fields) = decode(stored.search) else {
                continue;
            };
            if !query.admits(&fields) {
                continue;
            }
            let id = EventId::from_bytes(id);
            let sinks = self.statuses(&id, &stored, query)?;
            if !query.admits_sinks(&sinks) {
                continue;
            }
            page.events.push(Found {
                id: id.clone(),
                received_at: fields.received_at.to_owned(),
                workspace: fields.workspace.to_owned(),
                vendor: fields.vendor.to_owned(),
                event_type: fields.event_type.to_owned(),
                vendor_event_id: Some(fields.vendor_event_id)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned),
                sinks,
            });
            if page.events.len() == limit {
                page.next = Some(id);
                break;
            }
        }
        Ok(page)
    }

    /// Where the event stands at each sink it went to that the query shows: a dead letter,
    /// attempts waiting (retrying), not yet passed by its lane (pending), else delivered.
    fn statuses(
        &self,
        id: &EventId,
        stored: &StoredEvent<'_>,
        query: &SearchQuery,
    ) -> Result<Vec<(String, DeliveryStatus)>, StoreError> {
        let trees = self.trees()?;
        let at = Position {
            segment: stored.span.segment,
            offset: stored.span.offset,
        };
        let mut sinks = Vec::with_capacity(stored.queues.len());
        for prefix in &stored.queues {
            let sink = std::str::from_utf8(prefix)
                .ok()
                .and_then(|p| p.strip_suffix('\0'))
                .and_then(|p| p.split_once('/'))
                .map_or("", |(_, sink)| sink);
            if !query.shows_sink(sink) {
                continue;
            }
            let mut key = prefix.to_vec();
            key.extend_from_slice(&id.to_bytes());
            let status = if trees.dead.contains_key(&key)? {
                DeliveryStatus::Dead
            } else if trees.attempts.contains_key(&key)? {
                DeliveryStatus::Retrying
            } else if (self.lanes.get(prefix)).is_some_and(|slot| {
                let lane = slot.lane();
                lane.read < at || lane.window.contains_key(id)
            }) {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Delivered
            };
            sinks.push((sink.to_owned(), status));
        }
        Ok(sinks)
    }
}
