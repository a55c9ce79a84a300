//! W3C Trace Context, by hand: a `traceparent` read and written, a new span's ids, and the
//! sampling verdict (parent-based: a parent decides for its trace; a new trace is kept by the
//! ratio, read off its id as the OpenTelemetry SDK's `TraceIdRatioBased` does, so a trace is
//! kept or not alike by every service sampling at the same ratio). All pure but the ids, which
//! are random.

use std::fmt;

/// A span's place in its trace: what a `traceparent` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: u128,
    pub span_id: u64,
    /// Whether the trace is recorded (flag bit 0).
    pub sampled: bool,
}

impl SpanContext {
    /// A new span's context: a child of `parent` (same trace, whose verdict it follows), or
    /// the root of a new trace kept at `ratio`.
    pub fn child_of(parent: Option<&SpanContext>, ratio: f64) -> SpanContext {
        let span_id = new_span_id();
        match parent {
            Some(parent) => SpanContext {
                trace_id: parent.trace_id,
                span_id,
                sampled: parent.sampled,
            },
            None => {
                let trace_id = fastrand::u128(1..);
                SpanContext {
                    trace_id,
                    span_id,
                    sampled: kept_at(ratio, trace_id),
                }
            }
        }
    }

    /// The W3C `traceparent` (version 00) naming this span.
    pub fn traceparent(&self) -> String {
        // Written into a fixed buffer: `format!`'s u128 hex is a measurable part of a traced
        // request's cost.
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex::encode_to_slice(self.trace_id.to_be_bytes(), &mut text[3..35])
            .and_then(|()| hex::encode_to_slice(self.span_id.to_be_bytes(), &mut text[36..52]))
            .expect("the buffer's hex fields fit the ids exactly");
        text[54] = if self.sampled { b'1' } else { b'0' };
        String::from_utf8_lossy(&text).into_owned()
    }

    /// The trace id as log lines show it: 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> TraceIdHex {
        TraceIdHex(self.trace_id)
    }
}

/// A trace id written in hex where it is displayed, with no string of its own.
#[derive(Debug, Clone, Copy)]
pub struct TraceIdHex(u128);

impl fmt::Display for TraceIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A new span id: random, never zero (zero is invalid).
pub fn new_span_id() -> u64 {
    fastrand::u64(1..)
}

/// Whether a new trace with this id is kept at `ratio`: its low 64 bits (less one, so the bound
/// fits) against the ratio's share of them.
pub fn kept_at(ratio: f64, trace_id: u128) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    ((trace_id as u64) >> 1) < bound
}

/// The span a `traceparent` names, if it is a valid one: version 2 hex digits but `ff` (00
/// has exactly four fields; a later version may add some), a non-zero trace id of 32 and
/// parent id of 16 lowercase hex digits, and 2 of flags.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    let mut fields = traceparent.trim().split('-');
    let version = fields.next()?;
    let (trace_id, span_id, flags) = (fields.next()?, fields.next()?, fields.next()?);
    if !hex(version, 2) || version == "ff" || (version == "00" && fields.next().is_some()) {
        return None;
    }
    if !hex(trace_id, 32) || !hex(span_id, 16) || !hex(flags, 2) {
        return None;
    }
    let trace_id = u128::from_str_radix(trace_id, 16).ok()?;
    let span_id = u64::from_str_radix(span_id, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace_id != 0 && span_id != 0).then_some(SpanContext {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// `len` lowercase hex digits.
fn hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_the_same() {
        let context = parse(VALID).expect("valid");
        assert_eq!(context.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(context.span_id, 0x00f067aa0ba902b7);
        assert!(context.sampled);
        assert_eq!(context.traceparent(), VALID);
        assert_eq!(
            context.trace_id_hex().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let unsampled = "00-000000000000000000000000000000a1-0000000000000001-00";
        let context = parse(unsampled).expect("valid");
        assert!(!context.sampled);
        assert_eq!(context.traceparent(), unsampled);
    }

    #[test]
    fn an_invalid_traceparent_names_no_span() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1x",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        // A later version may carry more fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(parse(later).is_some());
    }

    #[test]
    fn a_child_keeps_its_parents_trace_and_verdict_with_an_id_of_its_own() {
        for sampled in [true, false] {
            let parent = SpanContext {
                sampled,
                ..parse(VALID).expect("valid")
            };
            // The parent decides, whatever the ratio.
            for ratio in [0.0, 1.0] {
                let child = SpanContext::child_of(Some(&parent), ratio);
                assert_eq!(child.trace_id, parent.trace_id);
                assert_eq!(child.sampled, sampled);
                assert_ne!(child.span_id, 0);
            }
        }
    }

    #[test]
    fn a_new_trace_is_kept_by_the_ratio_of_its_id() {
        assert!(SpanContext::child_of(None, 1.0).sampled);
        assert!(!SpanContext::child_of(None, 0.0).sampled);
        assert!(kept_at(0.5, 0));
        assert!(kept_at(0.5, (1u128 << 63) - 1));
        assert!(!kept_at(0.5, 1u128 << 63));
        assert!(!kept_at(0.5, u64::MAX as u128));
        // Only the low 64 bits count.
        assert!(kept_at(0.5, 1u128 << 100));
        let kept = (0..10_000u128)
            .filter(|n| {
                kept_at(
                    0.25,
                    n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                )
            })
            .count();
        assert!((2_000..3_000).contains(&kept), "{kept} of 10000 at 0.25");
    }
}
