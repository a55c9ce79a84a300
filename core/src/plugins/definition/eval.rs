//! The interpreter: a verified delivery and a definition's rules make a [`MappedEvent`], or the
//! reason it cannot. Pure: the body, the headers and the rules in, the event out. The body is
//! parsed once; every other step follows a pointer or reads a header, a bounded number of times.

use std::borrow::Cow;

use hyper::header::HeaderMap;
use serde_json::value::RawValue;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Data, Definition, Field, From, IdRule, Kind, Rules, Spec, TimeFormat, TypeEntry};
use crate::event::dedupe::{Identity, IdentityError};
use crate::event::envelope::MappedEvent;
use crate::plugins::MapFailure;

/// What a delivery offers the rules.
struct Delivery<'a> {
    body: &'a Value,
    headers: &'a HeaderMap,
}

fn invalid(why: impl Into<String>) -> MapFailure {
    MapFailure::InvalidPayload(why.into())
}

impl Definition {
    /// Maps a verified delivery: `raw` is its body as the envelope keeps it, `delivery_id` the
    /// delivery id header's value.
    pub(in crate::plugins) fn map(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        raw: Box<RawValue>,
        delivery_id: Option<&str>,
    ) -> Result<MappedEvent, MapFailure> {
        let body: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("body is not valid JSON: {e}")))?;
        if !body.is_object() {
            return Err(invalid("body must be a JSON object"));
        }
        let delivery = Delivery {
            body: &body,
            headers,
        };
        let rules = &self.rules;
        let vendor_type = rules.vendor_type(&delivery)?;
        let matching = || (rules.types.iter()).filter(|e| e.pattern.matches(&vendor_type));
        let first = |pick: fn(&TypeEntry) -> Option<&_>| matching().find_map(pick);
        let canonical_type =
            (matching().find_map(|e| e.canonical.clone())).unwrap_or_else(|| vendor_type.clone());
        let data = rules.data(rules.data_rule(&vendor_type, &canonical_type), &delivery);
        let occurred_at = match first(|e| e.occurred_at.as_ref()) {
            Some(own) => own.as_ref(),
            None => rules.occurred_at.as_ref(),
        };
        let occurred_at =
            occurred_at.and_then(|spec| read(spec, Kind::Time, &delivery, delivery.body));
        let vendor_event_id = read(&rules.event_id, Kind::Text, &delivery, delivery.body);
        let identity_rules =
            (matching().find_map(|e| e.identity.as_deref())).unwrap_or(&rules.identity);
        let identity = rules.identity(
            identity_rules,
            vendor_event_id.as_deref(),
            delivery_id,
            &delivery,
            &raw,
        )?;
        let data = RawValue::from_string(data).map_err(|e| {
            MapFailure::PluginFailed(format!("the definition wrote invalid data: {e}"))
        })?;
        Ok(MappedEvent {
            vendor_type,
            canonical_type,
            vendor_event_id,
            occurred_at,
            data,
            identity,
            raw,
        })
    }
}

impl Rules {
    /// How the `data` of a vendor type is made: the first matching entry's, else the message
    /// fields for a `message.*` type, else the payload as it is.
    pub(super) fn data_rule(&self, vendor_type: &str, canonical_type: &str) -> &Data {
        (self.types.iter())
            .filter(|e| e.pattern.matches(vendor_type))
            .find_map(|e| e.data.as_ref())
            .unwrap_or(match canonical_type.starts_with("message.") {
                true => &self.message_default,
                false => &Data::Pass,
            })
    }

    /// The signed body's type, else the unsigned header's, else the fallback; a body and a
    /// header that disagree are refused, as one of them was altered.
    fn vendor_type(&self, d: &Delivery<'_>) -> Result<String, MapFailure> {
        let rule = &self.kind;
        let signed = read(&rule.pointer, Kind::Text, d, d.body);
        let header = rule.header.as_ref();
        let unsigned = header.and_then(|h| header_text(d.headers, h));
        match (signed, unsigned) {
            (Some(signed), Some(unsigned)) if signed != unsigned => Err(invalid(format!(
                "the signed body's {} is {signed:?} but the unsigned {} header says \
                 {unsigned:?}; refusing to guess which is true",
                rule.pointer.describe(),
                header.map_or("", |h| h.as_str()),
            ))),
            (Some(signed), _) => Ok(signed),
            (None, Some(unsigned)) => Ok(unsigned.to_owned()),
            (None, None) => read(&rule.fallback, Kind::Text, d, d.body).ok_or_else(|| {
                let mut places = vec![rule.pointer.describe()];
                places.extend(header.map(|h| format!("the {h} header")));
                places.push(rule.fallback.describe());
                places.retain(|p| !p.is_empty());
                invalid(format!(
                    "the event type is missing or empty (looked for {})",
                    places.join(", then ")
                ))
            }),
        }
    }

    /// The object the `data` pointers start from.
    fn root<'v>(&self, body: &'v Value) -> Cow<'v, Value> {
        (self.root.iter())
            .find_map(|p| body.pointer(p).filter(|v| v.is_object()))
            .map_or_else(
                || Cow::Owned(Value::Object(Default::default())),
                Cow::Borrowed,
            )
    }

    /// The event's `data` as JSON text, its fields in the shape's order.
    fn data(&self, data: &Data, d: &Delivery<'_>) -> String {
        let root = self.root(d.body);
        let fields = match data {
            Data::Pass => return root.to_string(),
            Data::Shape(fields) => fields,
        };
        let mut out = String::from("{");
        for (i, (name, field)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("{name:?}:"));
            let value = match field {
                None => Value::Null,
                Some(Field::Value(kind, spec)) => match read_value(spec, *kind, d, &root) {
                    Some(value) => value,
                    None => Value::Null,
                },
                Some(Field::Object { at, any, fields }) => {
                    object(at.as_deref(), *any, fields, d, &root)
                }
            };
            out.push_str(&value.to_string());
        }
        out.push('}');
        out
    }

    fn identity(
        &self,
        rules: &[IdRule],
        event_id: Option<&str>,
        delivery_id: Option<&str>,
        d: &Delivery<'_>,
        raw: &RawValue,
    ) -> Result<Identity, MapFailure> {
        let made = |basis: &str, parts: &[Option<String>]| {
            Identity::from_parts(basis, parts, raw).map_err(|e| match e {
                IdentityError::Empty(_) => invalid(e.to_string()),
                IdentityError::UnknownBasis(_) => MapFailure::PluginFailed(e.to_string()),
            })
        };
        for rule in rules {
            match rule {
                IdRule::EventId(and) => {
                    if let Some(id) = event_id {
                        let mut parts = vec![Some(id.to_owned())];
                        parts.extend(and.iter().map(|s| read(s, Kind::Text, d, d.body)));
                        return made("event_id", &parts);
                    }
                }
                IdRule::DeliveryId => {
                    if let Some(id) = delivery_id.filter(|id| !id.is_empty()) {
                        return made("delivery_id", &[Some(id.to_owned())]);
                    }
                }
                IdRule::Content { parts, require } => {
                    let values: Vec<Option<String>> = parts
                        .iter()
                        .map(|s| read(s, Kind::Text, d, d.body))
                        .collect();
                    let required = values[..*require].iter().all(Option::is_some);
                    if required && values.iter().any(Option::is_some) {
                        return made("content", &values);
                    }
                }
                IdRule::BodyHash => return Ok(Identity::body_hash(raw)),
                IdRule::Refuse(why) => return Err(invalid(why.clone())),
            }
        }
        Err(invalid(
            "the event cannot be identified: none of the definition's identity rules applies",
        ))
    }
}

/// `media`, `contact`: null when `at` is not an object, or with `any`, when no field has a value.
fn object(
    at: Option<&str>,
    any: bool,
    fields: &[(&'static str, Option<Spec>)],
    d: &Delivery<'_>,
    root: &Value,
) -> Value {
    let base = match at {
        Some(pointer) => match root.pointer(pointer) {
            Some(found @ Value::Object(_)) => found,
            _ => return Value::Null,
        },
        None => root,
    };
    let mut object = serde_json::Map::new();
    let mut found = false;
    for (name, spec) in fields {
        let value = spec.as_ref().and_then(|s| read(s, Kind::Text, d, base));
        found |= value.is_some();
        object.insert((*name).to_owned(), value.map_or(Value::Null, Value::String));
    }
    if any && !found {
        return Value::Null;
    }
    Value::Object(object)
}

/// A value read as `kind`, as text.
fn read(spec: &Spec, kind: Kind, d: &Delivery<'_>, base: &Value) -> Option<String> {
    match read_value(spec, kind, d, base)? {
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

/// The first of the spec's places that gives a value of `kind`.
fn read_value(spec: &Spec, kind: Kind, d: &Delivery<'_>, base: &Value) -> Option<Value> {
    spec.sources.iter().find_map(|source| {
        let found = match &source.from {
            From::Pointer(pointer) => Found::Json(base.pointer(pointer)?),
            From::Header(name) => Found::Text(header_text(d.headers, name)?),
        };
        if kind == Kind::List {
            return match found {
                Found::Json(list @ Value::Array(_)) => Some(list.clone()),
                Found::Json(Value::String(text)) if source.decode => decoded_list(text),
                _ => None,
            };
        }
        let text = match source.format {
            Some(format) => time(found, format)?,
            None => found.text()?,
        };
        Some(Value::String(match kind == Kind::Lower || source.lower {
            true => text.to_lowercase(),
            false => text,
        }))
    })
}

/// JSON inside a string: the list it holds, if it holds one. serde_json bounds the nesting; the
/// text is no longer than the body.
fn decoded_list(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(list @ Value::Array(_)) => Some(list),
        _ => None,
    }
}

enum Found<'a> {
    Json(&'a Value),
    Text(&'a str),
}

impl Found<'_> {
    /// A non-empty string, or a number in its decimal form; anything else is no value.
    fn text(&self) -> Option<String> {
        match self {
            Found::Json(Value::Number(n)) => Some(n.to_string()),
            _ => self.str().filter(|s| !s.is_empty()).map(str::to_owned),
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Found::Json(Value::String(s)) => Some(s),
            Found::Text(s) => Some(s),
            _ => None,
        }
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &hyper::header::HeaderName) -> Option<&'h str> {
    (headers.get(name))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// A time normalised to RFC 3339 UTC; one that cannot be read is no value, never a guess.
fn time(found: Found<'_>, format: TimeFormat) -> Option<String> {
    let number = |found: &Found<'_>| match found {
        Found::Json(Value::Number(n)) => n.as_i64(),
        other => other.str()?.parse::<i64>().ok(),
    };
    let string = |found: &Found<'_>| found.str().map(str::to_owned);
    let at = match format {
        TimeFormat::Rfc3339 => OffsetDateTime::parse(&string(&found)?, &Rfc3339).ok()?,
        TimeFormat::Auto => match &found {
            Found::Json(Value::Number(n)) => {
                OffsetDateTime::from_unix_timestamp(n.as_i64()?).ok()?
            }
            _ => OffsetDateTime::parse(&string(&found)?, &Rfc3339).ok()?,
        },
        TimeFormat::UnixSeconds => OffsetDateTime::from_unix_timestamp(number(&found)?).ok()?,
        TimeFormat::UnixMillis => {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(number(&found)?) * 1_000_000)
                .ok()?
        }
    };
    at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()
}
