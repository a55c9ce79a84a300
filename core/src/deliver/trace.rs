//! One span per delivery attempt (`deliver`: workspace, sink, event id, outcome), a child of
//! the span of the request that brought the event, which its envelope's `traceparent` names;
//! and the attempt's own `traceparent`, which the sink passes on; the trace id for the
//! worker's log lines about an event. With traces off this costs nothing: no attempt is
//! recorded and no envelope read.

use crate::base::id::EventId;
use crate::base::names::{SinkName, WorkspaceId};
use crate::event::envelope::stored_traceparent;
use crate::sinks::SinkError;
use crate::telemetry::{self, AttemptTrace};

/// The attempts of a batch about to be handed to `sink`, one per event, in its order (`None`
/// once traces are off); none at all with traces off.
pub(super) fn start<'a>(
    workspace: &WorkspaceId,
    sink: &SinkName,
    events: impl Iterator<Item = (&'a EventId, &'a [u8])>,
) -> Vec<Option<AttemptTrace>> {
    if !telemetry::enabled() {
        return Vec::new();
    }
    events
        .map(|(id, envelope)| {
            AttemptTrace::start(stored_traceparent(envelope), workspace, sink, id)
        })
        .collect()
}

/// Ends every attempt of a batch with what the sink answered.
pub(super) fn finish(attempts: Vec<Option<AttemptTrace>>, result: &Result<(), SinkError>) {
    for attempt in attempts.into_iter().flatten() {
        attempt.finish(|| match result {
            Ok(()) => "delivered".to_owned(),
            Err(error) => error.to_string(),
        });
    }
}

/// The trace id of the request an envelope came with, for the attempt's log lines; `None`
/// with traces off.
pub(super) fn trace_id(envelope: &[u8]) -> Option<String> {
    if !telemetry::enabled() {
        return None;
    }
    telemetry::trace_id_of(stored_traceparent(envelope)?).map(str::to_owned)
}
