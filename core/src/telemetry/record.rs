//! What a finished request or delivery attempt hands to the export thread: one plain record
//! (ids, times, attributes as the server already holds them), and how that thread turns it
//! into OTLP spans, the protobuf messages themselves (`opentelemetry-proto`): nothing in
//! between to build, group or copy. Everything costly (attribute strings, the phases' span
//! ids, timestamps) is made there, off the request path.

use std::time::{Instant, SystemTime};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{Span, SpanFlags, Status};

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
    pub(super) fn into_spans(self, out: &mut Vec<Span>) {
        match self {
            Record::Hook(hook) => hook_spans(*hook, out),
            Record::Attempt(attempt) => out.push(attempt_span(*attempt)),
        }
    }
}

fn hook_spans(hook: HookRecord, out: &mut Vec<Span>) {
    let (wall, mono) = hook.started;
    let at = |instant: Instant| wall + instant.saturating_duration_since(mono);
    for (phase, times) in Phase::ALL.into_iter().zip(hook.phases) {
        let Some((start, end)) = times else { continue };
        let context = SpanContext {
            span_id: new_span_id(),
            ..hook.context
        };
        let span = Parts {
            context,
            parent: Some((hook.context.span_id, false)),
            kind: SpanKind::Internal,
            name: phase.name(),
            times: (at(start), at(end)),
            attributes: Vec::new(),
        };
        out.push(span.into_span());
    }
    let mut attributes = Vec::with_capacity(7);
    attributes.push(attribute("workspace", hook.workspace.as_str().to_owned()));
    attributes.push(attribute("vendor", hook.vendor.as_str().to_owned()));
    let optional = [
        ("delivery_id", hook.delivery_id),
        ("event_type", hook.event_type),
        ("vendor_event_id", hook.vendor_event_id),
        ("event_id", hook.event_id.map(|id| id.to_string())),
        ("answer", hook.answer.map(str::to_owned)),
    ];
    attributes
        .extend((optional.into_iter()).filter_map(|(key, value)| Some(attribute(key, value?))));
    let span = Parts {
        context: hook.context,
        parent: hook.parent.map(|id| (id, true)),
        kind: SpanKind::Server,
        name: "hook",
        times: (wall, at(hook.ended)),
        attributes,
    };
    out.push(span.into_span());
}

fn attempt_span(attempt: AttemptRecord) -> Span {
    let mut attributes = Vec::with_capacity(4);
    attributes.push(attribute(
        "workspace",
        attempt.workspace.as_str().to_owned(),
    ));
    attributes.push(attribute("sink", attempt.sink.as_str().to_owned()));
    attributes.push(attribute("event_id", attempt.event_id.to_string()));
    if let Some(outcome) = attempt.outcome {
        attributes.push(attribute("outcome", outcome));
    }
    let span = Parts {
        context: attempt.context,
        parent: attempt.parent.map(|id| (id, true)),
        kind: SpanKind::Client,
        name: "deliver",
        times: (attempt.started, attempt.ended),
        attributes,
    };
    span.into_span()
}

/// A string attribute.
pub(super) fn attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// What differs between the spans we make.
struct Parts {
    context: SpanContext,
    /// The parent's span id, and whether it is another service's.
    parent: Option<(u64, bool)>,
    kind: SpanKind,
    name: &'static str,
    times: (SystemTime, SystemTime),
    attributes: Vec<KeyValue>,
}

impl Parts {
    fn into_span(self) -> Span {
        // The low byte is the W3C trace flags (sampled: every span recorded is); the next two
        // bits say whether the parent's remoteness is known, and whether it is remote.
        let mut flags = 0x01 | SpanFlags::ContextHasIsRemoteMask as u32;
        let parent_span_id = match self.parent {
            Some((id, remote)) => {
                if remote {
                    flags |= SpanFlags::ContextIsRemoteMask as u32;
                }
                id.to_be_bytes().to_vec()
            }
            None => Vec::new(),
        };
        Span {
            trace_id: self.context.trace_id.to_be_bytes().to_vec(),
            span_id: self.context.span_id.to_be_bytes().to_vec(),
            trace_state: String::new(),
            parent_span_id,
            flags,
            name: self.name.to_owned(),
            kind: self.kind as i32,
            start_time_unix_nano: unix_nanos(self.times.0),
            end_time_unix_nano: unix_nanos(self.times.1),
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Some(Status::default()),
        }
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    (time.duration_since(SystemTime::UNIX_EPOCH)).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn value(span: &Span, key: &str) -> Option<String> {
        let kv = span.attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(text) => Some(text.clone()),
            other => panic!("{key} is not a string: {other:?}"),
        }
    }

    fn remote(span: &Span) -> bool {
        span.flags & SpanFlags::ContextIsRemoteMask as u32 != 0
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
        record.into_spans(&mut spans);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["verify", "commit", "hook"]);
        let hook = &spans[2];
        assert_eq!(hook.trace_id, context().trace_id.to_be_bytes());
        assert_eq!(hook.span_id, 0x1111u64.to_be_bytes());
        assert_eq!(hook.parent_span_id, 0x2222u64.to_be_bytes());
        assert!(remote(hook));
        assert_eq!(hook.flags & 0xff, 0x01, "sampled");
        assert_eq!(hook.kind, SpanKind::Server as i32);
        let second = 1_000_000_000;
        assert_eq!(
            (hook.start_time_unix_nano, hook.end_time_unix_nano),
            (1_000 * second, 1_000 * second + 9_000_000)
        );
        assert_eq!(value(hook, "workspace").as_deref(), Some("acme"));
        assert_eq!(value(hook, "vendor").as_deref(), Some("watsi"));
        assert_eq!(
            value(hook, "event_type").as_deref(),
            Some("message.received")
        );
        assert_eq!(value(hook, "answer").as_deref(), Some("accepted"));
        assert_eq!(value(hook, "event_id"), None);
        for phase in &spans[..2] {
            assert_eq!(phase.trace_id, hook.trace_id);
            assert_eq!(phase.parent_span_id, 0x1111u64.to_be_bytes());
            assert!(!remote(phase));
            assert_eq!(phase.kind, SpanKind::Internal as i32);
            assert_ne!(phase.span_id, hook.span_id);
        }
        let commit = &spans[1];
        assert_eq!(commit.start_time_unix_nano, 1_000 * second + 5_000_000);
        assert_eq!(commit.end_time_unix_nano, 1_000 * second + 8_000_000);
    }

    #[test]
    fn a_request_with_no_vendor_parent_is_a_root_span() {
        let now = (SystemTime::now(), Instant::now());
        let record = Record::Hook(Box::new(HookRecord {
            context: context(),
            parent: None,
            started: now,
            ended: now.1,
            workspace: WorkspaceId::new("acme"),
            vendor: VendorName::new("watsi"),
            delivery_id: None,
            event_type: None,
            vendor_event_id: None,
            event_id: None,
            answer: Some("unauthorized"),
            phases: [None; 3],
        }));
        let mut spans = Vec::new();
        record.into_spans(&mut spans);
        let [hook] = &spans[..] else {
            panic!("one span: {spans:?}")
        };
        assert!(hook.parent_span_id.is_empty());
        assert!(!remote(hook));
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
        record.into_spans(&mut spans);
        let [deliver] = &spans[..] else {
            panic!("one span: {spans:?}")
        };
        assert_eq!(deliver.name, "deliver");
        assert_eq!(deliver.kind, SpanKind::Client as i32);
        assert_eq!(deliver.parent_span_id, 0x3333u64.to_be_bytes());
        assert_eq!(value(deliver, "sink").as_deref(), Some("crm"));
        assert_eq!(value(deliver, "outcome").as_deref(), Some("delivered"));
        assert_eq!(value(deliver, "event_id"), Some(id.to_string()));
    }
}
