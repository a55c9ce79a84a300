//! The commit writer's verdicts: for each request of a batch, whether it is a new event, a
//! copy of one earlier in the batch, or a repeat of a claimed one (decided against sled's
//! claims and those still on their way into it); then each request's answer.

use std::collections::HashMap;

use super::applier::PendingClaims;
use super::gather::Reply;
use super::record::Claim;
use super::{lock, Engine, StoreError, StoreMetrics};
use crate::base::id::EventId;
use crate::store::{Accept, Accepted};

/// What the writer decided for one request of a batch.
pub(super) enum Decision {
    New,
    /// A copy of the batch's event at this index.
    RepeatInBatch(usize),
    /// Claimed by an earlier event.
    Seen(EventId),
    Failed(StoreError),
}

/// Each request's decision. A claim whose window has ended is claimed anew, in the current
/// claim generation (see [`super::claims`]).
pub(super) fn decide(
    engine: &Engine,
    pending: &PendingClaims,
    metrics: &StoreMetrics,
    batch: &[(Accept, Reply)],
) -> Vec<Decision> {
    let mut decisions = Vec::with_capacity(batch.len());
    let pending = lock(pending);
    // Keys claimed earlier in this batch: a second copy is a duplicate of the first.
    let mut claimed: HashMap<&[u8], usize> = HashMap::new();
    for (index, (accept, _)) in batch.iter().enumerate() {
        let key = accept.key.as_bytes();
        if let Some(&first) = claimed.get(key) {
            decisions.push(Decision::RepeatInBatch(first));
            continue;
        }
        if let Some(first) = pending.get(key) {
            decisions.push(Decision::Seen(first.clone()));
            continue;
        }
        let existing = match engine
            .trees()
            .and_then(|t| t.claims.get(key, accept.now_ms))
        {
            Ok(existing) => existing,
            Err(e) => {
                // sled fails reads once its own background flush has failed (a full
                // disk): the store is not ready until the healer has reopened it.
                engine.set_stuck();
                decisions.push(Decision::Failed(e));
                continue;
            }
        };
        match existing.as_deref().map(Claim::decode) {
            Some(Ok(claim)) if claim.expires_at_ms > accept.now_ms => {
                decisions.push(Decision::Seen(claim.event_id));
                continue;
            }
            Some(Err(error)) => {
                metrics.unreadable.inc();
                tracing::error!(dedupe_key = %accept.key, %error, "dedupe entry unreadable; the key is claimed anew");
            }
            // None yet, or one whose window has ended: claimed anew.
            Some(Ok(_)) | None => {}
        }
        claimed.insert(key, index);
        decisions.push(Decision::New);
    }
    decisions
}

/// Answers every request of a batch (`failed`: the log write failed).
pub(super) fn answer(
    batch: Vec<(Accept, Reply)>,
    decisions: Vec<Decision>,
    failed: Option<String>,
) {
    let ids: Vec<EventId> = batch.iter().map(|(a, _)| a.id.clone()).collect();
    for ((_, reply), decision) in batch.into_iter().zip(decisions) {
        let answer = match (decision, &failed) {
            (Decision::Seen(first), _) => Ok(Accepted::Duplicate(first)),
            (Decision::Failed(error), _) => Err(error),
            (Decision::New | Decision::RepeatInBatch(_), Some(error)) => {
                Err(StoreError::Write(error.clone()))
            }
            (Decision::RepeatInBatch(first), None) => Ok(Accepted::Duplicate(ids[first].clone())),
            // Counted and its workers woken when logged (see `Writer::commit`).
            (Decision::New, None) => Ok(Accepted::New),
        };
        // A waiter that went away (its client disconnected) is fine: its event is kept.
        let _ = reply.send(answer);
    }
}
