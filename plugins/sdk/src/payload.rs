//! Helpers for reading vendor payloads: parse the body, pick fields, normalise timestamps.

use std::sync::OnceLock;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::event::MapError;

/// Parses the raw body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, MapError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(MapError::NotAnObject),
        Err(e) => Err(MapError::InvalidJson(e.to_string())),
    }
}

/// A required string field, named `key` in the error. Empty counts as missing: an empty event
/// type or id identifies nothing.
pub fn required_str<'v>(
    object: &'v Map<String, Value>,
    key: &'static str,
) -> Result<&'v str, MapError> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) | Some(Value::String(_)) => Err(MapError::MissingField(key)),
        Some(_) => Err(MapError::WrongType {
            field: key,
            expected: "a string",
        }),
    }
}

/// A required object field, named `key` in the error.
pub fn required_object<'v>(
    object: &'v Map<String, Value>,
    key: &'static str,
) -> Result<&'v Map<String, Value>, MapError> {
    match object.get(key) {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(MapError::MissingField(key)),
        Some(_) => Err(MapError::WrongType {
            field: key,
            expected: "an object",
        }),
    }
}

/// An optional object field: `None` when absent or not an object.
pub fn object<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Map<String, Value>> {
    object.get(key).and_then(Value::as_object)
}

/// An optional object field, read as an empty object when absent or not an object: the
/// canonical fields of a payload without its `data` are all `null`, not an error.
pub fn object_or_empty<'v>(object: &'v Map<String, Value>, key: &str) -> &'v Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    self::object(object, key).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// An optional text field: strings as they are, numbers in their decimal form, anything else
/// (absent, null, empty, objects, arrays) as `None`: a field the consumer may never read is no
/// reason to refuse an event.
pub fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A timestamp field normalised to RFC 3339 UTC: an RFC 3339 string, or a number of Unix seconds.
/// Anything else is `None`: a time we cannot read is not guessed.
pub fn timestamp(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) => rfc3339(s),
        Value::Number(n) => n.as_i64().and_then(from_unix_seconds),
        _ => None,
    }
}

/// Normalises an RFC 3339 string to UTC, or `None` if it is not one.
pub fn rfc3339(s: &str) -> Option<String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()
}

/// Unix seconds as RFC 3339 UTC.
pub fn from_unix_seconds(secs: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn timestamps_normalise_to_utc() {
        let o = obj(
            json!({"a": "2024-03-23T21:41:44.477Z", "b": 692233200, "c": "yesterday", "d": "2023-06-15T16:22:33+02:00"}),
        );
        assert_eq!(
            timestamp(&o, "a").as_deref(),
            Some("2024-03-23T21:41:44.477Z")
        );
        assert_eq!(timestamp(&o, "b").as_deref(), Some("1991-12-08T23:00:00Z"));
        assert_eq!(timestamp(&o, "c"), None);
        assert_eq!(timestamp(&o, "d").as_deref(), Some("2023-06-15T14:22:33Z"));
        assert_eq!(timestamp(&o, "missing"), None);
    }

    #[test]
    fn optional_text_is_none_when_empty_or_of_another_type() {
        let o = obj(json!({"s": "x", "n": 12, "e": "", "a": [1], "o": {}, "z": null}));
        assert_eq!(text(&o, "s").as_deref(), Some("x"));
        assert_eq!(text(&o, "n").as_deref(), Some("12"));
        for key in ["e", "a", "o", "z", "missing"] {
            assert_eq!(text(&o, key), None, "{key}");
        }
    }

    #[test]
    fn field_errors_name_the_field() {
        let o = obj(json!({"id": 5}));
        assert_eq!(
            required_str(&o, "type").unwrap_err().to_string(),
            "required field `type` is missing or empty"
        );
        let o = obj(json!({"id": 5, "type": ""}));
        assert_eq!(
            required_str(&o, "type").unwrap_err(),
            MapError::MissingField("type")
        );
        assert_eq!(
            required_str(&o, "id").unwrap_err().to_string(),
            "field `id` must be a string"
        );
        assert_eq!(parse_object(b"[1]").unwrap_err(), MapError::NotAnObject);
        assert!(matches!(
            parse_object(b"{").unwrap_err(),
            MapError::InvalidJson(_)
        ));
    }
}
