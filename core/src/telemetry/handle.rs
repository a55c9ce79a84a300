//! The request path's side of traces: a request ([`RequestTrace`]) or a delivery attempt
//! ([`AttemptTrace`]) keeps its ids, times and attributes in a plain record, and hands it,
//! finished, to the export thread when it is dropped. Nothing is entered per poll and nothing
//! is made for a trace that is not sampled but its ids, which still go on in `traceparent`.

use std::future::Future;
use std::time::{Instant, SystemTime};

use hyper::HeaderMap;

use super::context::{self, SpanContext, TraceIdHex};
use super::export::recorder;
use super::record::{AttemptRecord, HookRecord, Phase, Record};
use crate::base::id::EventId;
use crate::base::names::{SinkName, VendorName, WorkspaceId};

/// A delivery request's (or handshake's) `hook` span, with its phases; sent when dropped.
pub struct RequestTrace {
    /// `None` with traces off.
    context: Option<SpanContext>,
    /// `None` unless the trace is sampled.
    record: Option<Box<HookRecord>>,
}

impl RequestTrace {
    /// The request's span, continuing the trace its `traceparent` names, if any.
    pub fn start(headers: &HeaderMap, workspace: &WorkspaceId, vendor: &VendorName) -> Self {
        let Some(recorder) = recorder() else {
            return RequestTrace::off();
        };
        let parent = (headers.get("traceparent"))
            .and_then(|value| value.to_str().ok())
            .and_then(context::parse);
        let context = SpanContext::child_of(parent.as_ref(), recorder.ratio);
        let record = context.sampled.then(|| {
            let now = Instant::now();
            Box::new(HookRecord {
                context,
                parent: parent.map(|p| p.span_id),
                started: (SystemTime::now(), now),
                ended: now,
                workspace: workspace.clone(),
                vendor: vendor.clone(),
                delivery_id: None,
                event_type: None,
                vendor_event_id: None,
                event_id: None,
                answer: None,
                phases: [None; 3],
            })
        });
        RequestTrace {
            context: Some(context),
            record,
        }
    }

    /// A request not traced: every call on it does nothing.
    pub fn off() -> Self {
        RequestTrace {
            context: None,
            record: None,
        }
    }

    /// The trace id, for the request's log lines; `None` with traces off.
    pub fn trace_id(&self) -> Option<TraceIdHex> {
        self.context.as_ref().map(SpanContext::trace_id_hex)
    }

    /// The request's span's `traceparent`, kept with the event so its attempts join the trace.
    pub fn traceparent(&self) -> Option<String> {
        self.context.as_ref().map(SpanContext::traceparent)
    }

    pub fn delivery_id(&mut self, id: &str) {
        if let Some(record) = &mut self.record {
            record.delivery_id = Some(id.to_owned());
        }
    }

    /// What the plugin mapped the delivery to.
    pub fn mapped(&mut self, event_type: &str, vendor_event_id: Option<&str>) {
        if let Some(record) = &mut self.record {
            record.event_type = Some(event_type.to_owned());
            record.vendor_event_id = vendor_event_id.map(str::to_owned);
        }
    }

    pub fn event_id(&mut self, id: &EventId) {
        if let Some(record) = &mut self.record {
            record.event_id = Some(id.clone());
        }
    }

    pub fn answer(&mut self, outcome: &'static str) {
        if let Some(record) = &mut self.record {
            record.answer = Some(outcome);
        }
    }

    /// Runs `work` as `phase` of the request, timed when the trace is sampled.
    pub async fn phase<F: Future>(&mut self, phase: Phase, work: F) -> F::Output {
        let started = self.record.is_some().then(Instant::now);
        let output = work.await;
        if let (Some(record), Some(started)) = (&mut self.record, started) {
            *record.phase_mut(phase) = Some((started, Instant::now()));
        }
        output
    }
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.ended = Instant::now();
            if let Some(recorder) = recorder() {
                recorder.submit(Record::Hook(record));
            }
        }
    }
}

/// One delivery attempt's `deliver` span, a child of the span its event's stored
/// `traceparent` names; sent when dropped.
pub struct AttemptTrace {
    traceparent: String,
    record: Option<Box<AttemptRecord>>,
}

impl AttemptTrace {
    /// The attempt's span; `None` with traces off. Without a valid stored `traceparent` it
    /// starts a trace of its own.
    pub fn start(
        stored: Option<&str>,
        workspace: &WorkspaceId,
        sink: &SinkName,
        event_id: &EventId,
    ) -> Option<AttemptTrace> {
        let recorder = recorder()?;
        let parent = stored.and_then(context::parse);
        let context = SpanContext::child_of(parent.as_ref(), recorder.ratio);
        let record = context.sampled.then(|| {
            let now = SystemTime::now();
            Box::new(AttemptRecord {
                context,
                parent: parent.map(|p| p.span_id),
                started: now,
                ended: now,
                workspace: workspace.clone(),
                sink: sink.clone(),
                event_id: event_id.clone(),
                outcome: None,
            })
        });
        Some(AttemptTrace {
            traceparent: context.traceparent(),
            record,
        })
    }

    /// The attempt's own `traceparent`, which the sink passes on.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// Ends the attempt with what the sink answered: `delivered` or the error.
    pub fn finish(mut self, outcome: impl FnOnce() -> String) {
        if let Some(record) = &mut self.record {
            record.outcome = Some(outcome());
        }
    }
}

impl Drop for AttemptTrace {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.ended = SystemTime::now();
            if let Some(recorder) = recorder() {
                recorder.submit(Record::Attempt(record));
            }
        }
    }
}
