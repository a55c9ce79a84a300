//! A definition's test vectors, proven at load as a library's are: the signature with the core's
//! own check, then the mapping with the interpreter deliveries go through, against the envelope
//! fields the vector expects. A field that comes out wrong is reported at the definition's key
//! that reads it, naming where it looked: a pointer into nothing is found here, not in production.

use std::time::{Duration, UNIX_EPOCH};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::problems::Problems;
use super::{Data, Definition, Expect, Field, Vector};
use crate::base::names::Secret;
use crate::event::envelope::MappedEvent;
use crate::event::verify::Signed;
use crate::plugins::{wire, MapFailure};

impl Definition {
    pub(super) fn prove(&self, p: &mut Problems) {
        for (index, vector) in self.vectors.iter().enumerate() {
            self.prove_one(index, vector, p);
        }
    }

    fn prove_one(&self, index: usize, v: &Vector, p: &mut Problems) {
        let mut headers = HeaderMap::new();
        for (name, value) in &v.headers {
            let at = v.at.key("headers").key(name);
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => p.add(&at, "not a valid header value"),
            }
        }
        let delivery_id = (self.delivery_id_header.as_ref())
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = v.body.as_bytes();
        if let Some(scheme) = &self.signature {
            // The vector's own timestamp is "now", so the tolerance cannot reject it.
            let now = match &scheme.signed {
                Signed::Template {
                    timestamp_header: Some(name),
                    ..
                } => (headers.get(name).and_then(|v| v.to_str().ok()))
                    .and_then(|t| t.parse().ok())
                    .map_or(UNIX_EPOCH, |secs| UNIX_EPOCH + Duration::from_secs(secs)),
                _ => UNIX_EPOCH,
            };
            let secrets = [Secret::new(&v.secret)];
            if let Err(e) = scheme.verify(&headers, body, delivery_id.as_deref(), &secrets, now) {
                let message = format!(
                    "test vector {index}: the core's HMAC of its body with its secret does not \
                     match its {} header: {e}",
                    scheme.header
                );
                p.add(&v.at.key("headers"), message);
            }
        }
        let raw = match wire::raw_json(body) {
            Ok(raw) => raw,
            Err(why) => return p.add(&v.at.key("body"), why),
        };
        match (&v.expect, self.map(&headers, body, raw, delivery_id.as_deref())) {
            (Expect::Refused(text), Err(MapFailure::InvalidPayload(why))) if why.contains(text) => {}
            (Expect::Refused(text), Err(e)) => p.add(
                &v.at.key("expect").key("refused"),
                format!("test vector {index} is refused, but for another reason: {e} (expected {text:?})"),
            ),
            (Expect::Refused(_), Ok(event)) => p.add(
                &v.at.key("expect").key("refused"),
                format!(
                    "test vector {index} is accepted as `{}`, not refused",
                    event.canonical_type
                ),
            ),
            (Expect::Event(_), Err(e)) => p.add(
                &v.at.key("body"),
                format!("test vector {index} is refused: {e}"),
            ),
            (Expect::Event(fields), Ok(event)) => {
                for (name, expected) in fields {
                    self.check_field(index, v, &event, name, expected, p);
                }
            }
        }
    }

    fn check_field(
        &self,
        index: usize,
        v: &Vector,
        event: &MappedEvent,
        name: &str,
        expected: &Value,
        p: &mut Problems,
    ) {
        let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::String(s.to_owned()));
        let at = v.at.key("expect").key(name);
        let (actual, place) = match name {
            "type" => (text(Some(&event.canonical_type)), None),
            "vendor_type" => (text(Some(&event.vendor_type)), Some(&self.rules.kind.at)),
            "vendor_event_id" => (
                text(event.vendor_event_id.as_deref()),
                Some(&self.rules.event_id.at),
            ),
            "occurred_at" => (text(event.occurred_at.as_deref()), None),
            "dedupe_basis" => (text(Some(event.identity.basis().as_str())), None),
            _ => {
                let data: Value = serde_json::from_str(event.data.get()).unwrap_or(Value::Null);
                return self.check_data(index, v, event, expected, &data, p);
            }
        };
        if &actual != expected {
            let message = format!(
                "test vector {index} expects {name} {expected}, the definition gives {actual}"
            );
            p.add(place.unwrap_or(&at), message);
        }
    }

    /// Every field the vector names must be as it says (`data` may have more).
    fn check_data(
        &self,
        index: usize,
        v: &Vector,
        event: &MappedEvent,
        expected: &Value,
        actual: &Value,
        p: &mut Problems,
    ) {
        let at = v.at.key("expect").key("data");
        let (Value::Object(want), Value::Object(have)) = (expected, actual) else {
            if expected != actual {
                let message = format!(
                    "test vector {index} expects data {expected}, the definition gives {actual}"
                );
                p.add(&at, message);
            }
            return;
        };
        let shape = self
            .rules
            .data_rule(&event.vendor_type, &event.canonical_type);
        for (key, want) in want {
            let have = have.get(key).unwrap_or(&Value::Null);
            if subset(want, have) {
                continue;
            }
            let (place, looked) = match shape {
                Data::Shape(fields) => match fields.iter().find(|(n, _)| n == key) {
                    Some((_, Some(Field::Value(_, spec)))) => (
                        spec.at.clone(),
                        format!(" ({} finds nothing of that)", spec.describe()),
                    ),
                    Some((_, None)) => {
                        (at.key(key), " (the definition does not name it)".to_owned())
                    }
                    _ => (at.key(key), String::new()),
                },
                Data::Pass => (at.key(key), String::new()),
            };
            let message = format!(
                "test vector {index} expects data.{key} {want}, the definition gives {have}{looked}"
            );
            p.add(&place, message);
        }
    }
}

/// `want` is in `have`: objects key by key (more keys allowed), anything else equal.
fn subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(k, w)| subset(w, have.get(k).unwrap_or(&Value::Null))),
        _ => want == have,
    }
}
