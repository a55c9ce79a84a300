//! What became of a batch the sink answered: each event's verdict first (pure, from the
//! sink's answer and the delivery policy), then counted, then recorded in the store
//! (delivered, due again with its attempts, or moved to the dead letters).

use std::time::{Duration, Instant, SystemTime};

use super::{Batch, Pending, Run, Worker};
use crate::base::id::{millis, rfc3339, EventId};
use crate::deliver::policy::{Blame, Failure, Verdict};
use crate::deliver::record::{self, Attempt, DeadLetter, Delivered, DeliveryState};
use crate::deliver::trace;
use crate::sinks::SinkError;
use crate::store::StoreError;

impl Worker {
    /// Every event's verdict first (pure), then counted, then recorded.
    pub(super) async fn settle(
        &self,
        run: &mut Run,
        batch: Batch,
        result: Result<(), SinkError>,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let now_ms = millis(now);
        let (workspace, sink) = (self.workspace.as_str(), self.sink_name.as_str());
        let (blame, judged) = self.judge(run, batch, &result, now);
        for (event, verdict) in &judged {
            self.metrics
                .sink_attempt(workspace, sink, verdict.outcome());
            if *verdict == Verdict::Delivered {
                let waited = now_ms.saturating_sub(event.id.timestamp_ms());
                self.metrics
                    .delivered_after(workspace, sink, waited as f64 / 1000.0);
            }
        }
        let mut failed = false;
        for (mut event, verdict) in judged {
            match verdict {
                Verdict::Delivered => {
                    // Every delivered event passes here: its envelope is read for the trace id
                    // only when the line is written.
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        let trace_id = trace::trace_id(&event.envelope);
                        tracing::debug!(workspace, sink, event_id = %event.id, trace_id, "event delivered");
                    }
                    let record = Delivered::new(rfc3339(now), event.state.attempts);
                    run.done.push((event.id, record::encode(&record)));
                }
                Verdict::Retry {
                    wait,
                    poison_failures,
                } => {
                    failed = true;
                    if let Err(error) = &result {
                        let trace_id = trace::trace_id(&event.envelope);
                        tracing::warn!(workspace, sink, event_id = %event.id, trace_id, %error, attempt = event.state.attempts.len(), retry_in_ms = wait.as_millis() as u64, blame = ?blame, "delivery failed; will retry");
                    }
                    event.state.poison_failures = poison_failures;
                    event.state.next_attempt_at_ms = now_ms + wait.as_millis() as u64;
                    let state = record::encode(&event.state);
                    self.store
                        .set_attempts(&self.queue, &event.id, &state)
                        .await?;
                    if !self.policy.ordered {
                        run.waiting
                            .insert((event.state.next_attempt_at_ms, event.id.clone()));
                        run.waiting_ids.insert(event.id);
                    }
                }
                Verdict::Bury { reason } => {
                    failed = true;
                    let trace_id = trace::trace_id(&event.envelope);
                    self.bury(&event.id, event.state, reason, trace_id).await?;
                }
            }
        }
        // A failure's record (attempts, when to retry, dead letter) must survive a crash; a
        // lost completion only means one more delivery, which at-least-once allows.
        if failed {
            self.store.sync().await?;
        }
        Ok(())
    }

    /// The verdict on each event of a batch the sink answered with `result`, with the failed
    /// attempt added to its history, and whose fault a failure was (none for a refusal for
    /// good); the sink's health learns of the answer.
    fn judge(
        &self,
        run: &mut Run,
        batch: Batch,
        result: &Result<(), SinkError>,
        now: SystemTime,
    ) -> (Option<Blame>, Vec<(Pending, Verdict)>) {
        let error = match result {
            Ok(()) => {
                run.health.succeeded();
                let delivered = batch.events.into_iter();
                return (None, delivered.map(|e| (e, Verdict::Delivered)).collect());
            }
            Err(error) => error,
        };
        // A refusal for good means the receiver answered: it is up, and the events are dead.
        let blame = if error.is_permanent() {
            run.health.succeeded();
            None
        } else {
            let sink_wide = error.is_sink_wide() || self.sink.max_batch() > 1;
            let first = batch.events.first().map(|event| event.id.clone());
            first.map(|id| {
                (run.health).failed(Instant::now(), &id, sink_wide, error.retry_after(), error)
            })
        };
        let now_ms = millis(now);
        let judged = batch
            .events
            .into_iter()
            .map(|mut event| {
                event.state.attempts.push(attempt(now, error));
                let verdict = match blame {
                    None => Verdict::Bury {
                        reason: format!("refused for good: {error}"),
                    },
                    Some(blame) => self.policy.judge(Failure {
                        age: Duration::from_millis(now_ms.saturating_sub(event.id.timestamp_ms())),
                        blame,
                        poison_failures: event.state.poison_failures,
                        attempts: event.state.attempts.len(),
                        retry_after: error.retry_after(),
                        error,
                    }),
                };
                (event, verdict)
            })
            .collect();
        (blame, judged)
    }

    /// Moves an event to the sink's dead letters, with why and every attempt.
    pub(super) async fn bury(
        &self,
        id: &EventId,
        state: DeliveryState,
        reason: String,
        trace_id: Option<String>,
    ) -> Result<(), StoreError> {
        let (workspace, sink) = (&self.workspace, &self.sink_name);
        tracing::error!(%workspace, %sink, event_id = %id, trace_id, %reason, "event moved to the dead letters");
        let dead = DeadLetter::new(workspace, sink, id, reason, state.attempts);
        self.store
            .bury(&self.queue, id, &record::encode(&dead))
            .await
    }
}

fn attempt(at: SystemTime, error: &SinkError) -> Attempt {
    Attempt {
        at: rfc3339(at),
        outcome: error.to_string(),
    }
}
