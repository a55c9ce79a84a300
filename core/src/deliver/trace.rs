//! One span per delivery attempt (`deliver`: workspace, sink, event id, outcome), a child of
//! the span of the request that brought the event, which its envelope's `traceparent` names;
//! and the attempt's own `traceparent`, which the sink passes on; the trace id for the
//! worker's log lines about an event. With traces off this costs nothing: no span is made and
//! no envelope read.

use serde::Deserialize;
use tracing::{field, Span};

use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};
use crate::sinks::SinkError;
use crate::telemetry;

/// One event's attempt, while it is with the sink: the span ends when this is dropped.
pub(super) struct Attempt {
    span: Span,
    traceparent: Option<String>,
}

impl Attempt {
    pub(super) fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }
}

/// The attempts of a batch about to be handed to `sink`, one per event.
pub(super) fn start<'a>(
    workspace: &WorkspaceId,
    sink: &SinkName,
    events: impl Iterator<Item = (&'a EventId, &'a [u8])>,
) -> Vec<Attempt> {
    if !telemetry::enabled() {
        return Vec::new();
    }
    events
        .map(|(id, envelope)| {
            let span = tracing::debug_span!(
                "deliver",
                workspace = workspace.as_str(),
                sink = sink.as_str(),
                event_id = %id,
                outcome = field::Empty,
                otel.kind = "client",
            );
            if let Some(parent) = stored_traceparent(envelope) {
                telemetry::follow(&span, &parent);
            }
            let traceparent = telemetry::traceparent(&span);
            Attempt { span, traceparent }
        })
        .collect()
}

/// Records what the sink answered on every attempt of its batch.
pub(super) fn finish(attempts: &[Attempt], result: &Result<(), SinkError>) {
    for attempt in attempts {
        match result {
            Ok(()) => attempt.span.record("outcome", "delivered"),
            Err(error) => attempt.span.record("outcome", field::display(error)),
        };
    }
}

/// The trace id of the request an envelope came with, for the attempt's log lines; `None`
/// with traces off.
pub(super) fn trace_id(envelope: &[u8]) -> Option<String> {
    if !telemetry::enabled() {
        return None;
    }
    let traceparent = stored_traceparent(envelope)?;
    telemetry::trace_id_of(&traceparent).map(str::to_owned)
}

/// The `traceparent` an envelope was stored with.
fn stored_traceparent(envelope: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        traceparent: Option<String>,
    }
    serde_json::from_slice::<Head>(envelope).ok()?.traceparent
}
