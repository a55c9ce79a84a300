//! `GET /admin/events?workspace=&vendor=&type=&since=&until=&status=&sink=&q=&limit=&after=`:
//! event search, newest first, one page, answered as `{"events": [...], "next": id|null}`.
//! Needs the embedded store; in cluster mode it answers why not.

use std::time::UNIX_EPOCH;

use hyper::StatusCode;
use serde_json::{json, Value};

use super::Admin;
use crate::base::id::EventId;
use crate::http::answer::{error, reply, Answer};
use crate::store::search::{DeliveryStatus, SearchQuery, MAX_PAGE};
use crate::store::StoreError;

impl Admin {
    pub(super) async fn search(&self, query: &str) -> Answer {
        let query = match parse(query) {
            Ok(query) => query,
            Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_query", &why),
        };
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || store.search(&query)).await;
        match found {
            Ok(Ok(page)) => {
                let events: Vec<Value> = (page.events.iter())
                    .map(|e| {
                        let sinks: Vec<Value> = (e.sinks.iter())
                            .map(|(sink, status)| json!({"sink": sink, "status": status.as_str()}))
                            .collect();
                        json!({
                            "id": e.id.to_string(),
                            "received_at": e.received_at,
                            "workspace": e.workspace,
                            "vendor": e.vendor,
                            "type": e.event_type,
                            "vendor_event_id": e.vendor_event_id,
                            "sinks": sinks,
                        })
                    })
                    .collect();
                let next = page.next.map(|id| id.to_string());
                reply(StatusCode::OK, &json!({"events": events, "next": next}))
            }
            Ok(Err(e @ StoreError::Unsupported(_))) => error(
                StatusCode::NOT_IMPLEMENTED,
                "search_unsupported",
                &e.to_string(),
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "event search failed on the store");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    &e.to_string(),
                )
            }
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "search_failed",
                &format!("the search task failed: {e}"),
            ),
        }
    }
}

/// An RFC 3339 time, in milliseconds since the epoch.
pub(super) fn millis(key: &str, value: &str) -> Result<u64, String> {
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| format!("{key} must be an RFC 3339 time, such as 2026-01-31T10:00:00Z"))
}

/// The query string, every problem named; empty values count as absent.
fn parse(query: &str) -> Result<SearchQuery, String> {
    let mut search = SearchQuery::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if value.is_empty() {
            continue;
        }
        let text = Some(value.to_string());
        match key.as_ref() {
            "workspace" => search.workspace = text,
            "vendor" => search.vendor = text,
            "type" => search.event_type = Some(wildmatch::WildMatch::new(&value)),
            "sink" => search.sink = text,
            "q" => search.q = text,
            "since" => search.since_ms = Some(millis("since", &value)?),
            "until" => search.until_ms = Some(millis("until", &value)?),
            "status" => {
                search.status =
                    Some(DeliveryStatus::parse(&value).ok_or(
                        "status must be one of delivered, pending, retrying, dead".to_owned(),
                    )?)
            }
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => search.limit = n,
                _ => return Err(format!("limit must be 1 to {MAX_PAGE}")),
            },
            "after" => match EventId::parse(&value) {
                Some(id) => search.after = Some(id),
                None => return Err("after must be an event id (a ULID)".into()),
            },
            other => return Err(format!("unknown parameter `{other}`")),
        }
    }
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_problems_are_named() {
        let q = parse(
            "workspace=acme&type=message.*&status=dead&since=2026-01-01T00:00:00Z&limit=5&q=%2B55",
        )
        .unwrap();
        assert_eq!(q.workspace.as_deref(), Some("acme"));
        assert_eq!(q.status, Some(DeliveryStatus::Dead));
        assert_eq!(q.since_ms, Some(1_767_225_600_000));
        assert_eq!((q.limit, q.q.as_deref()), (5, Some("+55")));
        assert!(parse("status=lost").unwrap_err().contains("status"));
        assert!(parse("since=yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse("limit=0").is_err() && parse("after=x").is_err());
        assert!(parse("colour=red").unwrap_err().contains("colour"));
        assert!(parse("vendor=").unwrap().vendor.is_none());
    }
}
