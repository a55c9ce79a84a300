//! Reading where a value is: a JSON pointer, `{ pointer | header, format, lower, decode }`, or
//! a list of them tried in order. Pointers are checked (RFC 6901) and bounded here.

use serde_yaml::Value;

use super::fields::{choice, header, kind, string, Fields};
use super::problems::Problems;
use super::{From, Kind, Source, Spec, TimeFormat};
use crate::base::locate::KeyPath;

/// A JSON pointer longer than this is no vendor's field.
const MAX_POINTER_BYTES: usize = 256;
const MAX_POINTER_SEGMENTS: usize = 16;
/// Places one value may be looked for in.
const MAX_SOURCES: usize = 8;

/// A value's places: one pointer, `{ pointer | header, ... }`, or a list of them, in order.
pub(super) fn spec(at: &KeyPath, value: Value, kind: Kind, p: &mut Problems) -> Option<Spec> {
    let items: Vec<(KeyPath, Value)> = match value {
        Value::Sequence(items) => (items.into_iter().enumerate())
            .map(|(i, v)| (at.index(i), v))
            .collect(),
        other => vec![(at.clone(), other)],
    };
    if items.is_empty() || items.len() > MAX_SOURCES {
        p.add(at, format!("expected 1 to {MAX_SOURCES} places to look"));
        return None;
    }
    let sources: Vec<Option<Source>> = (items.into_iter())
        .map(|(at, v)| source(&at, v, kind, p))
        .collect();
    Some(Spec {
        sources: sources.into_iter().collect::<Option<_>>()?,
        at: at.clone(),
    })
}

fn source(at: &KeyPath, value: Value, kind: Kind, p: &mut Problems) -> Option<Source> {
    let default_format = (kind == Kind::Time).then_some(TimeFormat::Auto);
    let text = match value {
        Value::String(text) => text,
        Value::Mapping(_) => return source_options(at, value, kind, p),
        other => {
            let message = format!(
                "expected a JSON pointer such as /data/id, a list of them, or {{ pointer, ... }}, \
                 found {}",
                kind_of(&other)
            );
            p.add(at, message);
            return None;
        }
    };
    Some(Source {
        from: From::Pointer(pointer(at, text, p)?),
        lower: false,
        format: default_format,
        decode: false,
    })
}

fn kind_of(value: &Value) -> &'static str {
    kind(value)
}

fn source_options(at: &KeyPath, value: Value, kind: Kind, p: &mut Problems) -> Option<Source> {
    let mut f = Fields::of(at, value, p);
    let pointer_value = f.take("pointer");
    let header_value = f.take("header");
    let from = match (pointer_value, header_value) {
        (Some(v), None) => string(&at.key("pointer"), v, p)
            .and_then(|text| pointer(&at.key("pointer"), text, p))
            .map(From::Pointer),
        (None, Some(v)) => header(&at.key("header"), v, p).map(From::Header),
        _ => {
            p.add(at, "expected exactly one of `pointer` and `header`");
            None
        }
    };
    let formats = [
        ("auto", TimeFormat::Auto),
        ("rfc3339", TimeFormat::Rfc3339),
        ("unix", TimeFormat::UnixSeconds),
        ("unix_ms", TimeFormat::UnixMillis),
    ];
    let format = match f.take("format") {
        None => Some((kind == Kind::Time).then_some(TimeFormat::Auto)),
        Some(_) if kind == Kind::List => {
            p.add(&at.key("format"), "a list is not a time");
            None
        }
        Some(v) => choice(&at.key("format"), v, &formats, "time format", p).map(Some),
    };
    let lower = flag(&mut f, "lower", p);
    let decode = match f.take("decode") {
        None => Some(false),
        Some(_) if kind != Kind::List => {
            let message = "`decode: json` reads a list held in a string (`history`) only";
            p.add(&at.key("decode"), message);
            None
        }
        Some(v) => choice(&at.key("decode"), v, &[("json", true)], "decode step", p),
    };
    f.finish(p);
    Some(Source {
        from: from?,
        lower: lower?,
        format: format?,
        decode: decode?,
    })
}

fn flag(f: &mut Fields, key: &'static str, p: &mut Problems) -> Option<bool> {
    match f.take(key) {
        None => Some(false),
        Some(Value::Bool(b)) => Some(b),
        Some(other) => {
            let message = format!("expected true or false, found {}", kind(&other));
            p.add(&f.at.key(key), message);
            None
        }
    }
}

/// A JSON pointer (RFC 6901): empty (the whole value) or `/`-separated, bounded.
pub(super) fn pointer(at: &KeyPath, text: String, p: &mut Problems) -> Option<String> {
    let problem = if text.len() > MAX_POINTER_BYTES {
        Some(format!(
            "a pointer of {} bytes is longer than {MAX_POINTER_BYTES}",
            text.len()
        ))
    } else if !text.is_empty() && !text.starts_with('/') {
        Some(format!(
            "{text:?} is not a JSON pointer: it must start with `/`"
        ))
    } else if text.matches('/').count() > MAX_POINTER_SEGMENTS {
        Some(format!(
            "a pointer deeper than {MAX_POINTER_SEGMENTS} levels"
        ))
    } else if (text.match_indices('~'))
        .any(|(i, _)| !matches!(text.as_bytes().get(i + 1), Some(b'0' | b'1')))
    {
        Some(format!(
            "{text:?}: `~` must be followed by 0 or 1 (RFC 6901)"
        ))
    } else {
        None
    };
    match problem {
        Some(message) => {
            p.add(at, message);
            None
        }
        None => Some(text),
    }
}

/// An optional key's value: absent is `Some(None)`; present, `None` when it was wrong.
pub(super) fn present<T>(read: Option<Option<T>>) -> Option<Option<T>> {
    match read {
        None => Some(None),
        Some(value) => value.map(Some),
    }
}
