//! `POST /admin/workspaces/{ws}/sinks/{sink}/replay?since=T&until=T[&type=GLOB]`: delivers
//! again, to that sink only, every event accepted in the window that was routed to it; answers
//! `{"queued": N, "gone": M}` once durable (`gone`: envelopes past retention). Needs the
//! embedded store.

use hyper::StatusCode;
use serde_json::json;

use super::search::millis;
use super::Admin;
use crate::deliver;
use crate::http::answer::{error, reply, Answer};
use crate::store::{StoreError, Window};

impl Admin {
    pub(super) async fn replay_window(&self, ws: &str, sink: &str, query: &str) -> Answer {
        let window = match parse(query) {
            Ok(window) => window,
            Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_query", &why),
        };
        let Some(queue) = self.store.known_queue(ws, sink) else {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_sink",
                &format!("workspace `{ws}` has no sink `{sink}`"),
            );
        };
        let replayed = match deliver::replay_window(&self.store, &queue, window).await {
            Ok(replayed) => replayed,
            Err(e @ StoreError::Unsupported(_)) => {
                return error(
                    StatusCode::NOT_IMPLEMENTED,
                    "replay_unsupported",
                    &e.to_string(),
                )
            }
            Err(e) => return store_failed(&e),
        };
        // Answered once durable, like an accept: a restart then still delivers them.
        if let Err(e) = self.store.sync().await {
            return store_failed(&e);
        }
        reply(
            StatusCode::OK,
            &json!({"queued": replayed.queued, "gone": replayed.gone}),
        )
    }
}

fn store_failed(e: &StoreError) -> Answer {
    tracing::error!(error = %e, "window replay failed on the store");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        &e.to_string(),
    )
}

/// `since` and `until` are required: a replay of everything is not one a typo should start.
fn parse(query: &str) -> Result<Window, String> {
    let (mut since, mut until, mut event_type) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "since" => since = Some(millis("since", &value)?),
            "until" => until = Some(millis("until", &value)?),
            "type" if !value.is_empty() => event_type = Some(wildmatch::WildMatch::new(&value)),
            "type" => {}
            other => return Err(format!("unknown parameter `{other}`")),
        }
    }
    match (since, until) {
        (Some(since_ms), Some(until_ms)) if since_ms <= until_ms => Ok(Window {
            since_ms,
            until_ms,
            event_type,
        }),
        (Some(_), Some(_)) => Err("since must not be after until".into()),
        _ => Err("name the window with since and until (RFC 3339 times)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_needs_both_ends_in_order() {
        let w =
            parse("since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:01Z&type=message.*").unwrap();
        assert_eq!(
            (w.since_ms, w.until_ms),
            (1_767_225_600_000, 1_767_225_601_000)
        );
        assert!(w.event_type.is_some_and(|g| g.matches("message.status")));
        assert!(parse("since=2026-01-01T00:00:00Z").is_err());
        assert!(parse("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z").is_err());
        assert!(parse("since=x&until=y").unwrap_err().contains("RFC 3339"));
    }
}
