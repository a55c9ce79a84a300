//! The operator surface: readiness, metrics, and `/admin/*` behind the bearer token from
//! routes.yaml:
//!
//! - `GET    /admin/queues`: every sink's state, queue depth, in-flight and dead-letter counts
//! - `POST   /admin/workspaces/{ws}/sinks/{sink}/enable`: a disabled sink resumes (one probe)
//! - `POST   /admin/workspaces/{ws}/sinks/{sink}/replay?since=T&until=T&type=GLOB`: a window
//! - `GET    /admin/workspaces/{ws}/sinks/{sink}/dead-letters?limit=N&after=ID`: one page
//! - `POST   /admin/workspaces/{ws}/sinks/{sink}/dead-letters/replay`: replay them all
//! - `POST   /admin/workspaces/{ws}/sinks/{sink}/dead-letters/{id}/replay`: replay one
//! - `DELETE /admin/workspaces/{ws}/sinks/{sink}/dead-letters/{id}`: delete one
//! - `GET    /admin/events?workspace=&vendor=&type=&since=&until=&status=&sink=&q=`: search
//! - `DELETE /admin/workspaces/{ws}/sinks/{sink}/dead-letters`: delete them all
//! - `GET    /admin/events/{id}`: an event with its delivery to each sink, attempt by attempt
//! - `POST   /admin/events/{id}/sinks/{sink}/redeliver`: deliver it to that sink again
//! - `GET    /admin/events?workspace=&vendor=&type=&...`: event search ([`search`])
//!
//! The browser console ([`console`]) serves the same API to a signed-in session.
//!
//! Every count comes from the store's in-memory counters, so these views cost the same with
//! ten or ten million queued events.

mod actions;
pub mod console;
mod router;
mod search;
mod status;
mod views;
mod window;

pub use self::router::Operator;

use std::sync::Arc;

use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::base::id::EventId;
use crate::base::names::Secret;
use crate::deliver::{self, SinkState};
use crate::http::answer::{error, reply, Answer};
use crate::metrics::Metrics;
use crate::plugins::Plugins;
use crate::runtime::reload::Reloader;
use crate::runtime::topology::Topology;
use crate::store::{SinkQueue, Store, StoreError};
use arc_swap::ArcSwap;

/// A dead-letter page holds at most this many, whatever `limit` asks.
const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;

pub struct Admin {
    /// `None`: the `/admin/*` API is off.
    pub token: Option<Secret>,
    pub topology: Arc<ArcSwap<Topology>>,
    pub reloader: Arc<Reloader>,
    pub store: Arc<Store>,
    /// The loaded plugins, which a reload may add to.
    pub plugins: Arc<ArcSwap<Plugins>>,
    pub metrics: Arc<Metrics>,
}

impl Admin {
    pub async fn answer(&self, method: &Method, path: &str, headers: &HeaderMap) -> Answer {
        let Some(token) = &self.token else {
            return error(
                StatusCode::NOT_FOUND,
                "admin_disabled",
                "the operator API is off: set server.admin_token in routes.yaml",
            );
        };
        if !authorized(headers, token) {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <server.admin_token>`",
            );
        }
        self.route(method, path).await
    }

    /// An `/admin/...` request whose caller is already authorised: by the bearer token, or by
    /// a console session ([`console`]).
    pub(super) async fn route(&self, method: &Method, path: &str) -> Answer {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let segments: Vec<&str> = path.trim_matches('/').split('/').skip(1).collect();
        let result = match (method, segments.as_slice()) {
            (&Method::GET, ["queues"]) => Ok(self.queues()),
            (&Method::POST, ["reload"]) => return self.reload().await,
            (&Method::POST, ["backup"]) => return self.backup(query).await,
            (&Method::DELETE, ["queues", ws, sink]) => self.drop_orphan(ws, sink).await,
            (&Method::POST, ["workspaces", ws, "sinks", sink, "enable"]) => {
                return self.enable(ws, sink)
            }
            (&Method::POST, ["workspaces", ws, "sinks", sink, "replay"]) => {
                return self.replay_window(ws, sink, query).await
            }
            (&Method::GET, ["events"]) => return self.search(query).await,
            (&Method::GET, ["events", id]) => match EventId::parse(id) {
                Some(id) => self.event(&id).await,
                None => return invalid_event_id(),
            },
            (&Method::POST, ["events", id, "sinks", sink, "redeliver"]) => {
                match EventId::parse(id) {
                    Some(id) => self.redeliver(&id, sink).await,
                    None => return invalid_event_id(),
                }
            }
            (_, ["workspaces", ws, "sinks", sink, "dead-letters", rest @ ..]) => {
                // A removed sink's queue (an orphan) keeps its dead letters reachable.
                let Some(queue) = self.store.known_queue(ws, sink) else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "unknown_sink",
                        &format!("workspace `{ws}` has no sink `{sink}`"),
                    );
                };
                match (method, rest) {
                    (&Method::GET, []) => match Page::parse(query) {
                        Ok(page) => self.dead_letters(&queue, page).await,
                        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_query", &why),
                    },
                    (&Method::POST, ["replay"]) => self.replay(&queue, None).await,
                    (&Method::DELETE, []) => self.delete_all(&queue).await,
                    (&Method::POST, [id, "replay"]) => match EventId::parse(id) {
                        Some(id) => self.replay(&queue, Some(&id)).await,
                        None => return invalid_event_id(),
                    },
                    (&Method::DELETE, [id]) => match EventId::parse(id) {
                        Some(id) => self.delete(&queue, &id).await,
                        None => return invalid_event_id(),
                    },
                    _ => return not_found(),
                }
            }
            _ => return not_found(),
        };
        result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "operator request failed on the store");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                &e.to_string(),
            )
        })
    }

    /// Every sink's state and counters; a queue whose sink the configuration no longer has is
    /// listed as `orphaned`, with no state: kept until a sink of that name returns.
    fn queues(&self) -> Answer {
        let topology = self.topology.load();
        let mut sinks: Vec<Value> = self
            .store
            .known_queues()
            .iter()
            .map(|q| {
                let worker = (topology.workspace(q.workspace().as_str()))
                    .and_then(|ws| ws.worker(q.sink().as_str()));
                json!({
                    "workspace": q.workspace(),
                    "sink": q.sink(),
                    "state": worker.map(|w| w.status.state().as_str()),
                    "queued": q.depth(),
                    "in_flight": q.in_flight(),
                    "dead": q.dead(),
                    "oldest_queued_seconds": self.store.oldest_queued_age(q).as_secs_f64(),
                    "attempts": self.attempt_counts(q),
                    "orphaned": worker.is_none(),
                })
            })
            .collect();
        sinks.sort_by_key(|s| (s["workspace"].to_string(), s["sink"].to_string()));
        reply(StatusCode::OK, &json!({ "sinks": sinks }))
    }

    /// Resumes a disabled sink: its worker probes it with one delivery, and its queue, kept
    /// all along, flows once that succeeds. Answers the state it was in.
    fn enable(&self, ws: &str, sink: &str) -> Answer {
        let topology = self.topology.load();
        let Some(worker) = topology.workspace(ws).and_then(|w| w.worker(sink)) else {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_sink",
                &format!("workspace `{ws}` has no sink `{sink}`"),
            );
        };
        let was = worker.status.enable();
        if was == SinkState::Disabled {
            tracing::warn!(workspace = ws, sink, "sink enable asked by the operator");
        }
        reply(
            StatusCode::OK,
            &json!({"workspace": ws, "sink": sink, "was": was.as_str(), "enabled": was == SinkState::Disabled}),
        )
    }

    /// `POST /admin/backup?to=/absolute/dir`: a consistent copy of the running store, written
    /// by the server into a directory that does not exist yet.
    async fn backup(&self, query: &str) -> Answer {
        let to = form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "to")
            .map(|(_, value)| std::path::PathBuf::from(value.as_ref()));
        let Some(to) = to.filter(|to| to.is_absolute()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "name the backup directory with ?to=/an/absolute/path that does not exist yet",
            );
        };
        let store = self.store.clone();
        let target = to.clone();
        match tokio::task::spawn_blocking(move || store.backup(&target)).await {
            Ok(Ok(events)) => reply(
                StatusCode::OK,
                &json!({"to": to.display().to_string(), "events": events}),
            ),
            Ok(Err(e @ StoreError::BackupExists { .. })) => {
                error(StatusCode::CONFLICT, "backup_exists", &e.to_string())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "backup failed");
                error(StatusCode::CONFLICT, "backup_failed", &e.to_string())
            }
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backup_failed",
                &format!("the backup task failed: {e}"),
            ),
        }
    }

    /// `DELETE /admin/queues/{ws}/{sink}`: drops what an orphaned queue (its sink removed by a
    /// reload) still holds; a running sink's queue is refused.
    async fn drop_orphan(&self, ws: &str, sink: &str) -> Result<Answer, StoreError> {
        let running = || {
            (self.topology.load())
                .workspace(ws)
                .is_some_and(|w| w.worker(sink).is_some())
        };
        if running() {
            return Ok(error(
                StatusCode::CONFLICT,
                "sink_running",
                "only an orphaned queue (its sink no longer configured) can be dropped",
            ));
        }
        let Some(queue) = self.store.known_queue(ws, sink) else {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "unknown_sink",
                &format!("no queue for workspace `{ws}` sink `{sink}`"),
            ));
        };
        let dropped = self.store.drop_queue(&queue).await?;
        self.store.sync().await?;
        // Empty, with no dead letters to reach, and its sink still gone: nothing left to list.
        if queue.dead() == 0 && !running() {
            self.store.forget_queue(&queue);
            self.metrics.forget_queue(ws, sink);
        }
        tracing::warn!(
            workspace = ws,
            sink,
            dropped,
            "orphaned queue dropped by the operator"
        );
        Ok(reply(StatusCode::OK, &json!({ "dropped": dropped })))
    }

    /// Reads the configuration again; see [`crate::runtime::reload`].
    async fn reload(&self) -> Answer {
        match self.reloader.reload().await {
            Ok(done) => reply(
                StatusCode::OK,
                &json!({
                    "workspaces": done.workspaces,
                    "started": done.started,
                    "stopped": done.stopped,
                    "server_changed": done.server_changed,
                    "plugins_loaded": done.plugins_loaded,
                    "restart_needed": done.restart_needed,
                }),
            ),
            Err(e) => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                &format!("{e}\nthe running configuration stays"),
            ),
        }
    }

    async fn replay(
        &self,
        queue: &SinkQueue,
        only: Option<&EventId>,
    ) -> Result<Answer, StoreError> {
        let replayed = deliver::replay(&self.store, queue, only).await?;
        if only.is_some() && replayed == 0 {
            return Ok(unknown_dead_letter());
        }
        // The replay is answered once it is durable, like an accept.
        self.store.sync().await?;
        Ok(reply(StatusCode::OK, &json!({ "replayed": replayed })))
    }

    async fn delete(&self, queue: &SinkQueue, id: &EventId) -> Result<Answer, StoreError> {
        if !self.store.delete_dead_letter(queue, id).await? {
            return Ok(unknown_dead_letter());
        }
        self.store.sync().await?;
        tracing::info!(workspace = %queue.workspace(), sink = %queue.sink(), event_id = %id, "dead letter deleted");
        Ok(reply(StatusCode::OK, &json!({ "deleted": id.to_string() })))
    }
}

/// Which page of dead letters: `limit` (default 100, at most 1000) and `after` (an event id,
/// the previous page's `next`).
struct Page {
    limit: usize,
    after: Option<EventId>,
}

impl Page {
    fn parse(query: &str) -> Result<Page, String> {
        let mut page = Page {
            limit: DEFAULT_PAGE,
            after: None,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_PAGE).contains(&n) => page.limit = n,
                    _ => return Err(format!("limit must be 1 to {MAX_PAGE}")),
                },
                "after" => match EventId::parse(&value) {
                    Some(id) => page.after = Some(id),
                    None => return Err("after must be an event id (a ULID)".into()),
                },
                other => return Err(format!("unknown parameter `{other}`")),
            }
        }
        Ok(page)
    }
}

/// The bearer scheme is case-insensitive (RFC 9110); the token is compared in constant time.
fn authorized(headers: &HeaderMap, token: &Secret) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().split_first_chunk::<7>())
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
        .is_some_and(|(_, given)| bool::from(given.ct_eq(token.expose())))
}

fn not_found() -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such operator endpoint; see the README's operator section",
    )
}

fn unknown_dead_letter() -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "unknown_dead_letter",
        "no dead letter with that event id in this sink",
    )
}

fn invalid_event_id() -> Answer {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_event_id",
        "event ids are ULIDs",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let token = Secret::new("an-admin-token-of-some-length");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v.parse().unwrap());
            authorized(&h, &token)
        };
        assert!(with("Bearer an-admin-token-of-some-length"));
        assert!(with("bearer an-admin-token-of-some-length"));
        assert!(with("BEARER an-admin-token-of-some-length"));
        assert!(!with("Bearer wrong"));
        assert!(!with("Basic an-admin-token-of-some-length"));
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(Page::parse("").map(|p| p.limit).ok(), Some(DEFAULT_PAGE));
        assert_eq!(Page::parse("limit=5").map(|p| p.limit).ok(), Some(5));
        assert!(Page::parse("limit=0").is_err());
        assert!(Page::parse("limit=100000").is_err());
        assert!(Page::parse("after=nope").is_err());
        assert!(Page::parse("color=red").is_err());
    }
}
