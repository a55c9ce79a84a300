//! Event search, what both stores speak: the query (`GET /admin/events`), the fields an
//! event is found by, a delivery's status at one sink, and the pure verdict on whether an
//! event answers a query. The embedded store keeps these fields in its index entries
//! (`embedded/search.rs`); the cluster store keeps no search index.

use crate::base::id::EventId;

/// A page holds at most this many events, whatever `limit` asks.
pub const MAX_PAGE: usize = 1000;
pub const DEFAULT_PAGE: usize = 50;

/// Where an event stands at one sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The sink's queue has passed it and holds no failure for it.
    Delivered,
    /// Not yet read from the log, or read and not yet settled.
    Pending,
    /// It failed and waits for its next attempt.
    Retrying,
    /// A dead letter.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Delivered,
            DeliveryStatus::Pending,
            DeliveryStatus::Retrying,
            DeliveryStatus::Dead,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// What an event is found by; empty strings stand for fields the event did not have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub workspace: &'a str,
    pub vendor: &'a str,
    pub event_type: &'a str,
    pub vendor_event_id: &'a str,
    /// The vendor's delivery id, when the event was deduplicated by it.
    pub delivery_id: &'a str,
    /// The canonical sender and recipient (`data.from`, `data.to`).
    pub from: &'a str,
    pub to: &'a str,
    pub received_at: &'a str,
}

/// A search: every filter is optional; `after` is the previous page's `next`.
#[derive(Debug, Default)]
pub struct SearchQuery {
    pub workspace: Option<String>,
    pub vendor: Option<String>,
    /// A glob (`message.*`).
    pub event_type: Option<wildmatch::WildMatch>,
    /// Accepted at or after, in milliseconds since the epoch.
    pub since_ms: Option<u64>,
    /// Accepted at or before.
    pub until_ms: Option<u64>,
    pub status: Option<DeliveryStatus>,
    pub sink: Option<String>,
    /// A vendor event id, delivery id, sender or recipient, exactly.
    pub q: Option<String>,
    pub limit: usize,
    pub after: Option<EventId>,
}

/// One event found, with its status at each sink it was routed to (those `sink` names).
#[derive(Debug)]
pub struct Found {
    pub id: EventId,
    pub received_at: String,
    pub workspace: String,
    pub vendor: String,
    pub event_type: String,
    pub vendor_event_id: Option<String>,
    pub sinks: Vec<(String, DeliveryStatus)>,
}

/// Newest first; `next` is set when the page is full, for the page after it.
#[derive(Debug, Default)]
pub struct SearchPage {
    pub events: Vec<Found>,
    pub next: Option<EventId>,
}

impl SearchQuery {
    /// Whether an event's own fields answer the query (its time is the caller's range).
    pub fn admits(&self, f: &Fields<'_>) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        is(&self.workspace, f.workspace)
            && is(&self.vendor, f.vendor)
            && (self.event_type.as_ref()).is_none_or(|glob| glob.matches(f.event_type))
            && self
                .q
                .as_deref()
                .is_none_or(|q| [f.vendor_event_id, f.delivery_id, f.from, f.to].contains(&q))
    }

    /// Whether the event's sinks answer the `status` filter; they are already those `sink`
    /// names, and an event routed to none of them does not answer.
    pub fn admits_sinks(&self, sinks: &[(String, DeliveryStatus)]) -> bool {
        !sinks.is_empty()
            && (self.status).is_none_or(|want| sinks.iter().any(|(_, status)| *status == want))
    }

    /// Whether a sink's status is shown: only that sink when `sink` is asked for.
    pub fn shows_sink(&self, sink: &str) -> bool {
        self.sink.as_deref().is_none_or(|want| want == sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields<'static> {
        Fields {
            workspace: "acme",
            vendor: "watsi",
            event_type: "message.received",
            vendor_event_id: "evt_1",
            delivery_id: "",
            from: "+5511",
            to: "+4420",
            received_at: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn each_filter_admits_its_own_and_refuses_others() {
        let f = fields();
        assert!(SearchQuery::default().admits(&f));
        let query = |edit: fn(&mut SearchQuery)| {
            let mut q = SearchQuery::default();
            edit(&mut q);
            q.admits(&f)
        };
        assert!(query(|q| q.workspace = Some("acme".into())));
        assert!(!query(|q| q.workspace = Some("globex".into())));
        assert!(!query(|q| q.vendor = Some("twilio".into())));
        assert!(query(
            |q| q.event_type = Some(wildmatch::WildMatch::new("message.*"))
        ));
        assert!(!query(
            |q| q.event_type = Some(wildmatch::WildMatch::new("call.*"))
        ));
        for found in ["evt_1", "+5511", "+4420"] {
            let q = SearchQuery {
                q: Some(found.into()),
                ..SearchQuery::default()
            };
            assert!(q.admits(&f), "{found}");
        }
        // Part of an id is not a match.
        assert!(!query(|q| q.q = Some("evt".into())));
    }

    #[test]
    fn status_needs_one_shown_sink_in_that_status() {
        let mut q = SearchQuery {
            status: Some(DeliveryStatus::Dead),
            ..SearchQuery::default()
        };
        let sinks = vec![
            ("crm".to_owned(), DeliveryStatus::Delivered),
            ("audit".to_owned(), DeliveryStatus::Dead),
        ];
        assert!(q.admits_sinks(&sinks));
        assert!(!q.admits_sinks(&sinks[..1]));
        assert!(!q.admits_sinks(&[]));
        q.sink = Some("crm".into());
        assert!(q.shows_sink("crm") && !q.shows_sink("audit"));
        assert_eq!(
            DeliveryStatus::parse("retrying"),
            Some(DeliveryStatus::Retrying)
        );
        assert_eq!(DeliveryStatus::parse("lost"), None);
    }
}
