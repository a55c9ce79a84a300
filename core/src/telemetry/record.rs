//! What a finished request or delivery attempt hands to the export thread: one plain record
//! (ids, times, attributes as the server already holds them), and how that thread turns it
//! into OTLP spans. Everything costly (attribute strings, the phases' span ids, timestamps)
//! is made there, off the request path.

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext as OtelContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::context::{new_span_id, SpanContext};
use crate::base::id::EventId;
use crate::base::names::{SinkName, VendorName, WorkspaceId};

/// A finished request or attempt, waiting for export.
pub(super) enum Record {
    Hook(Box<HookRecord>),
    Attempt(Box<AttemptRecord>),
}

/// The steps of a delivery request that are spans of their own, under its `hook` span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Verify,
    Map,
    Commit,
}

impl Phase {
    const ALL: [Phase; 3] = [Phase::Verify, Phase::Map, Phase::Commit];

    fn name(self) -> &'static str {
        match self {
            Phase::Verify => "verify",
            Phase::Map => "map",
            Phase::Commit => "commit",
        }
    }
}

/// A delivery request (or handshake): its `hook` span and the phases it went through.
pub(super) struct HookRecord {
    pub(super) context: SpanContext,
    /// The vendor's span, when its `traceparent` named one.
    pub(super) parent: Option<u64>,
    /// When it started, by the wall clock and by the monotonic one the phases are timed on.
    pub(super) started: (SystemTime, Instant),
    pub(super) ended: Instant,
    pub(super) workspace: WorkspaceId,
    pub(super) vendor: VendorName,
    pub(super) delivery_id: Option<String>,
    pub(super) event_type: Option<String>,
    pub(super) vendor_event_id: Option<String>,
    pub(super) event_id: Option<EventId>,
    pub(super) answer: Option<&'static str>,
    /// Start and end of each phase it reached, in [`Phase::ALL`]'s order.
    pub(super) phases: [Option<(Instant, Instant)>; 3],
}

impl HookRecord {
    pub(super) fn phase_mut(&mut self, phase: Phase) -> &mut Option<(Instant, Instant)> {
        &mut self.phases[phase as usize]
    }
}

/// One delivery attempt's `deliver` span.
pub(super) struct AttemptRecord {
    pub(super) context: SpanContext,
    /// The request's span, which the event's stored `traceparent` names.
    pub(super) parent: Option<u64>,
    pub(super) started: SystemTime,
    pub(super) ended: SystemTime,
    pub(super) workspace: WorkspaceId,
    pub(super) sink: SinkName,
    pub(super) event_id: EventId,
    pub(super) outcome: Option<String>,
}

impl Record {
    /// The spans this record becomes, for the bound on spans waiting.
    pub(super) fn spans(&self) -> usize {
        match self {
            Record::Hook(hook) => 1 + hook.phases.iter().flatten().count(),
            Record::Attempt(_) => 1,
        }
    }

    /// Appends this record's OTLP spans to `out`.
    pub(super) fn into_spans(self, scope: &InstrumentationScope, out: &mut Vec<SpanData>) {
        match self {
            Record::Hook(hook) => hook_spans(*hook, scope, out),
            Record::Attempt(attempt) => out.push(attempt_span(*attempt, scope)),
        }
    }
}

fn hook_spans(hook: HookRecord, scope: &InstrumentationScope, out: &mut Vec<SpanData>) {
    let (wall, mono) = hook.started;
    let at = |instant: Instant| wall + instant.saturating_duration_since(mono);
    for (phase, times) in Phase::ALL.into_iter().zip(hook.phases) {
        let Some((start, end)) = times else { continue };
        let context = SpanContext {
            span_id: new_span_id(),
            ..hook.context
        };
        let span = Span {
            context,
            parent: Some((hook.context.span_id, false)),
            kind: SpanKind::Internal,
            name: phase.name(),
            times: (at(start), at(end)),
            attributes: Vec::new(),
        };
        out.push(span.data(scope));
    }
    let mut attributes = vec![
        KeyValue::new("workspace", hook.workspace.as_str().to_owned()),
        KeyValue::new("vendor", hook.vendor.as_str().to_owned()),
    ];
    let optional = [
        ("delivery_id", hook.delivery_id),
        ("event_type", hook.event_type),
        ("vendor_event_id", hook.vendor_event_id),
        ("event_id", hook.event_id.map(|id| id.to_string())),
        ("answer", hook.answer.map(str::to_owned)),
    ];
    attributes
        .extend((optional.into_iter()).filter_map(|(key, value)| Some(KeyValue::new(key, value?))));
    let span = Span {
        context: hook.context,
        parent: hook.parent.map(|id| (id, true)),
        kind: SpanKind::Server,
        name: "hook",
        times: (wall, at(hook.ended)),
        attributes,
    };
    out.push(span.data(scope));
}

fn attempt_span(attempt: AttemptRecord, scope: &InstrumentationScope) -> SpanData {
    let mut attributes = vec![
        KeyValue::new("workspace", attempt.workspace.as_str().to_owned()),
        KeyValue::new("sink", attempt.sink.as_str().to_owned()),
        KeyValue::new("event_id", attempt.event_id.to_string()),
    ];
    if let Some(outcome) = attempt.outcome {
        attributes.push(KeyValue::new("outcome", outcome));
    }
    let span = Span {
        context: attempt.context,
        parent: attempt.parent.map(|id| (id, true)),
        kind: SpanKind::Client,
        name: "deliver",
        times: (attempt.started, attempt.ended),
        attributes,
    };
    span.data(scope)
}

/// What differs between the spans we make.
struct Span {
    context: SpanContext,
    /// The parent's span id, and whether it is another service's.
    parent: Option<(u64, bool)>,
    kind: SpanKind,
    name: &'static str,
    times: (SystemTime, SystemTime),
    attributes: Vec<KeyValue>,
}

impl Span {
    fn data(self, scope: &InstrumentationScope) -> SpanData {
        let (parent, remote) = self.parent.unwrap_or((0, false));
        SpanData {
            span_context: OtelContext::new(
                TraceId::from(self.context.trace_id),
                SpanId::from(self.context.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: remote,
            span_kind: self.kind,
            name: Cow::Borrowed(self.name),
            start_time: self.times.0,
            end_time: self.times.1,
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn attribute(span: &SpanData, key: &str) -> Option<String> {
        (span.attributes.iter())
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    }

    fn context() -> SpanContext {
        SpanContext {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0x1111,
            sampled: true,
        }
    }

    #[test]
    fn a_request_becomes_its_hook_span_with_the_phases_it_reached_under_it() {
        let mono = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ms = |n| mono + Duration::from_millis(n);
        let mut hook = HookRecord {
            context: context(),
            parent: Some(0x2222),
            started: (wall, mono),
            ended: ms(9),
            workspace: WorkspaceId::new("acme"),
            vendor: VendorName::new("watsi"),
            delivery_id: None,
            event_type: Some("message.received".into()),
            vendor_event_id: None,
            event_id: None,
            answer: Some("accepted"),
            phases: [None; 3],
        };
        *hook.phase_mut(Phase::Verify) = Some((ms(1), ms(2)));
        *hook.phase_mut(Phase::Commit) = Some((ms(5), ms(8)));
        let record = Record::Hook(Box::new(hook));
        assert_eq!(record.spans(), 3);
        let mut spans = Vec::new();
        record.into_spans(&InstrumentationScope::builder("test").build(), &mut spans);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["verify", "commit", "hook"]);
        let hook = &spans[2];
        assert_eq!(
            hook.span_context.trace_id(),
            TraceId::from(context().trace_id)
        );
        assert_eq!(hook.span_context.span_id(), SpanId::from(0x1111));
        assert_eq!(hook.parent_span_id, SpanId::from(0x2222));
        assert!(hook.parent_span_is_remote);
        assert_eq!(hook.span_kind, SpanKind::Server);
        assert_eq!(
            (hook.start_time, hook.end_time),
            (wall, wall + Duration::from_millis(9))
        );
        assert_eq!(attribute(hook, "workspace").as_deref(), Some("acme"));
        assert_eq!(attribute(hook, "vendor").as_deref(), Some("watsi"));
        assert_eq!(
            attribute(hook, "event_type").as_deref(),
            Some("message.received")
        );
        assert_eq!(attribute(hook, "answer").as_deref(), Some("accepted"));
        assert_eq!(attribute(hook, "event_id"), None);
        for phase in &spans[..2] {
            assert_eq!(phase.span_context.trace_id(), hook.span_context.trace_id());
            assert_eq!(phase.parent_span_id, SpanId::from(0x1111));
            assert!(!phase.parent_span_is_remote);
            assert_ne!(phase.span_context.span_id(), SpanId::from(0x1111));
        }
        let commit = &spans[1];
        assert_eq!(commit.start_time, wall + Duration::from_millis(5));
        assert_eq!(commit.end_time, wall + Duration::from_millis(8));
    }

    #[test]
    fn an_attempt_becomes_a_client_span_under_the_requests() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let id = EventId::generate();
        let record = Record::Attempt(Box::new(AttemptRecord {
            context: context(),
            parent: Some(0x3333),
            started: wall,
            ended: wall + Duration::from_millis(4),
            workspace: WorkspaceId::new("acme"),
            sink: SinkName::new("crm"),
            event_id: id.clone(),
            outcome: Some("delivered".into()),
        }));
        assert_eq!(record.spans(), 1);
        let mut spans = Vec::new();
        record.into_spans(&InstrumentationScope::builder("test").build(), &mut spans);
        let [deliver] = &spans[..] else {
            panic!("one span: {spans:?}")
        };
        assert_eq!(deliver.name, "deliver");
        assert_eq!(deliver.span_kind, SpanKind::Client);
        assert_eq!(deliver.parent_span_id, SpanId::from(0x3333));
        assert_eq!(attribute(deliver, "sink").as_deref(), Some("crm"));
        assert_eq!(attribute(deliver, "outcome").as_deref(), Some("delivered"));
        assert_eq!(attribute(deliver, "event_id"), Some(id.to_string()));
    }
}
