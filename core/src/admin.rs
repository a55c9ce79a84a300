//! The operator surface under `/admin/`, behind the bearer token from routes.yaml:
//!
//! - `GET  /admin/queues`: every sink's queue depth and dead-letter count
//! - `GET  /admin/workspaces/{ws}/sinks/{sink}/dead-letters`: a sink's dead letters
//! - `POST /admin/workspaces/{ws}/sinks/{sink}/dead-letters/replay`: replay them all
//! - `POST /admin/workspaces/{ws}/sinks/{sink}/dead-letters/{id}/replay`: replay one
//! - `GET  /admin/events/{id}`: an event with its delivery to each sink, attempt by attempt

use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::deliver::{self, DeadLetter, Delivered, DeliveryState, SinkWorker};
use crate::envelope::{rfc3339, EventId};
use crate::names::Secret;
use crate::respond::{error, reply, Answer};
use crate::store::{DeliveryOf, Store, StoreError};
use crate::topology::Topology;

pub struct Admin {
    /// `None`: the operator surface is off.
    pub token: Option<Secret>,
}

impl Admin {
    pub async fn answer(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        topology: &Topology,
        store: &Store,
    ) -> Answer {
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
        let segments: Vec<&str> = path.trim_matches('/').split('/').skip(1).collect();
        let result = match (method, segments.as_slice()) {
            (&Method::GET, ["queues"]) => Ok(queues(topology, store)),
            (&Method::GET, ["events", id]) => match EventId::parse(id) {
                Some(id) => event(topology, store, &id),
                None => return invalid_event_id(),
            },
            (_, ["workspaces", ws, "sinks", sink, "dead-letters", rest @ ..]) => {
                let Some(worker) = topology.workspace(ws).and_then(|w| w.worker(sink)) else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "unknown_sink",
                        &format!("workspace `{ws}` has no sink `{sink}`"),
                    );
                };
                match (method, rest) {
                    (&Method::GET, []) => dead_letters(store, worker),
                    (&Method::POST, ["replay"]) => replay(store, worker, None).await,
                    (&Method::POST, [id, "replay"]) => match EventId::parse(id) {
                        Some(id) => replay(store, worker, Some(&id)).await,
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
}

fn authorized(headers: &HeaderMap, token: &Secret) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|given| bool::from(given.ct_eq(token.expose())))
}

fn not_found() -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such operator endpoint; see the README's operator section",
    )
}

fn invalid_event_id() -> Answer {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_event_id",
        "event ids are ULIDs",
    )
}

fn queues(topology: &Topology, store: &Store) -> Answer {
    let mut sinks: Vec<Value> = topology
        .workspaces()
        .flat_map(|ws| ws.workers())
        .map(|w| {
            json!({
                "workspace": w.workspace,
                "sink": w.sink,
                "queued": store.queue_depth(&w.queue),
                "dead": store.dead_letters(&w.queue).map_or(0, |d| d.len()),
            })
        })
        .collect();
    sinks.sort_by_key(|s| (s["workspace"].to_string(), s["sink"].to_string()));
    reply(StatusCode::OK, &json!({ "sinks": sinks }))
}

fn dead_letters(store: &Store, worker: &SinkWorker) -> Result<Answer, StoreError> {
    let letters: Vec<DeadLetter> = store
        .dead_letters(&worker.queue)?
        .iter()
        .filter_map(|(_, bytes)| deliver::decode(bytes))
        .collect();
    Ok(reply(StatusCode::OK, &json!({ "dead_letters": letters })))
}

async fn replay(
    store: &Store,
    worker: &SinkWorker,
    only: Option<&EventId>,
) -> Result<Answer, StoreError> {
    let replayed = deliver::replay(store, worker, only)?;
    if only.is_some() && replayed == 0 {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "unknown_dead_letter",
            "no dead letter with that event id in this sink",
        ));
    }
    // The replay is answered once it is durable, like an accept.
    store.commit().await?;
    Ok(reply(StatusCode::OK, &json!({ "replayed": replayed })))
}

fn event(topology: &Topology, store: &Store, id: &EventId) -> Result<Answer, StoreError> {
    let Some(bytes) = store.event(id)? else {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "unknown_event",
            "no such event (never accepted, or past retention)",
        ));
    };
    let envelope: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let workspace = envelope["workspace"]
        .as_str()
        .and_then(|ws| topology.workspace(ws));
    let mut deliveries = Vec::new();
    for worker in workspace.into_iter().flat_map(|ws| ws.workers()) {
        let delivery = match store.delivery_of(&worker.queue, id)? {
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
            DeliveryOf::Delivered(bytes) => match deliver::decode::<Delivered>(&bytes) {
                Some(done) => {
                    json!({"status": "delivered", "delivered_at": done.delivered_at, "attempts": done.attempts})
                }
                None => json!({"status": "delivered"}),
            },
        };
        let mut delivery = delivery;
        delivery["sink"] = json!(worker.sink);
        deliveries.push(delivery);
    }
    deliveries.sort_by_key(|d| d["sink"].to_string());
    Ok(reply(
        StatusCode::OK,
        &json!({ "event": envelope, "deliveries": deliveries }),
    ))
}
