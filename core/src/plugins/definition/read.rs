//! Reading a definition's YAML into a [`Definition`]: the top level, the signature, the
//! handshake and the test vectors here; the mapping rules in [`super::rules`]. Every unknown key,
//! wrong type and bad value is reported with its key and line, and reading goes on around it.

use std::time::Duration;

use hyper::header::HeaderName;
use serde_yaml::Value;

use super::fields::{choice, header, kind, required, string, Fields};
use super::problems::Problems;
use super::rules;
use super::{Definition, Expect, Vector};
use crate::base::locate::KeyPath;
use crate::event::verify::{Algorithm, Encoding, SignatureScheme, Signed};
use crate::plugins::HandshakeSpec;

/// More vectors than this prove nothing more and cost every load.
const MAX_VECTORS: usize = 64;

/// The whole file: `None` when it cannot even be read as YAML.
pub(super) fn read(text: &str, p: &mut Problems) -> Option<Definition> {
    if let Some(line) = p.too_deep() {
        p.add_file(Some(line), "nested too deeply to be a vendor definition");
        return None;
    }
    let value: Value = match serde_yaml::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            p.add_file(error.location().map(|l| l.line()), error.to_string());
            return None;
        }
    };
    let root = KeyPath::root();
    let mut top = Fields::of(&root, value, p);
    let vendor = required(&mut top, "vendor", p).and_then(|v| vendor_name(&root, v, p));
    let version = required(&mut top, "version", p).and_then(|v| string(&root.key("version"), v, p));
    let delivery_id_header = (top.take("delivery_id_header"))
        .and_then(|v| header(&root.key("delivery_id_header"), v, p));
    let signature = match top.take("signature") {
        Some(value) => signature(
            &root.key("signature"),
            value,
            delivery_id_header.is_some(),
            p,
        ),
        None => {
            p.add(
                &root,
                "`signature` is required: the vendor's scheme, or `none`",
            );
            None
        }
    };
    let handshake = (top.take("handshake")).map_or(Some(HandshakeSpec::None), |v| {
        handshake(&root.key("handshake"), v, p)
    });
    let rules = rules::read(&mut top, delivery_id_header.is_some(), p);
    let vectors = match top.take("test_vectors") {
        Some(value) => vectors(&root.key("test_vectors"), value, p),
        None => {
            p.add(
                &root,
                "`test_vectors` is required: a definition is proven when it loads",
            );
            Vec::new()
        }
    };
    top.finish(p);
    let (rules, dedupe, event_type_header) = rules?;
    Some(Definition {
        vendor: vendor?,
        version: version?,
        signature: signature?,
        delivery_id_header,
        event_type_header,
        handshake: handshake?,
        dedupe,
        vectors,
        text: text.to_owned(),
        rules,
    })
}

fn vendor_name(root: &KeyPath, value: Value, p: &mut Problems) -> Option<String> {
    let at = root.key("vendor");
    let name = string(&at, value, p)?;
    let valid = !name.is_empty()
        && (name.bytes())
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        p.add(
            &at,
            format!("{name:?} must be lower-case letters, digits, '-' or '_'"),
        );
        return None;
    }
    Some(name)
}

/// `none`, or the scheme: `Some(None)` is `none`.
fn signature(
    at: &KeyPath,
    value: Value,
    has_delivery_id: bool,
    p: &mut Problems,
) -> Option<Option<SignatureScheme>> {
    if let Value::String(text) = &value {
        if text == "none" {
            return Some(None);
        }
    }
    let mut f = Fields::of(at, value, p);
    let header = required(&mut f, "header", p).and_then(|v| header(&at.key("header"), v, p));
    let algorithm = f.take("algorithm").map_or(Some(Algorithm::Sha256), |v| {
        let choices = [
            ("sha1", Algorithm::Sha1),
            ("sha256", Algorithm::Sha256),
            ("sha512", Algorithm::Sha512),
        ];
        choice(&at.key("algorithm"), v, &choices, "algorithm", p)
    });
    let encoding = f.take("encoding").map_or(Some(Encoding::Hex), |v| {
        let choices = [("hex", Encoding::Hex), ("base64", Encoding::Base64)];
        choice(&at.key("encoding"), v, &choices, "encoding", p)
    });
    let prefix = f
        .take("prefix")
        .map_or(Some(String::new()), |v| string(&at.key("prefix"), v, p));
    let several = match f.take("several") {
        None => Some(false),
        Some(Value::Bool(b)) => Some(b),
        Some(other) => {
            p.add(
                &at.key("several"),
                format!("expected true or false, found {}", kind(&other)),
            );
            None
        }
    };
    let template = f.take("signed").map_or(Some("{body}".to_owned()), |v| {
        string(&at.key("signed"), v, p)
    });
    let timestamp = f
        .take("timestamp")
        .map(|v| timestamp(&at.key("timestamp"), v, p));
    f.finish(p);
    let template = template?;
    let uses = |token: &str| template.contains(token);
    if !uses("{body}") {
        p.add(
            &at.key("signed"),
            "the signed content must include `{body}`",
        );
    }
    if uses("{timestamp}") && timestamp.is_none() {
        p.add(
            &at.key("signed"),
            "`{timestamp}` needs `timestamp: { header, tolerance }`",
        );
    }
    if uses("{id}") && !has_delivery_id {
        p.add(&at.key("signed"), "`{id}` needs `delivery_id_header`");
    }
    let signed = match (template.as_str(), timestamp) {
        ("{body}", None) => Signed::Body,
        (_, timestamp) => {
            let (timestamp_header, tolerance) = match timestamp {
                Some(t) => t?,
                None => (None, None),
            };
            Signed::Template {
                template,
                timestamp_header,
                tolerance,
            }
        }
    };
    Some(Some(SignatureScheme {
        header: header?,
        encoding: encoding?,
        prefix: prefix?,
        signed,
        algorithm: algorithm?,
        several: several?,
    }))
}

type Timestamp = (Option<HeaderName>, Option<Duration>);

fn timestamp(at: &KeyPath, value: Value, p: &mut Problems) -> Option<Timestamp> {
    let mut f = Fields::of(at, value, p);
    let header = required(&mut f, "header", p).and_then(|v| header(&at.key("header"), v, p));
    let tolerance = match f.take("tolerance") {
        None => Some(None),
        Some(v) => string(&at.key("tolerance"), v, p).and_then(|text| {
            match humantime::parse_duration(&text) {
                Ok(d) => Some(Some(d)),
                Err(e) => {
                    p.add(
                        &at.key("tolerance"),
                        format!("{text:?} is not a duration such as 5m: {e}"),
                    );
                    None
                }
            }
        }),
    };
    f.finish(p);
    Some((Some(header?), tolerance?))
}

fn handshake(at: &KeyPath, value: Value, p: &mut Problems) -> Option<HandshakeSpec> {
    let mut f = Fields::of(at, value, p);
    let param = required(&mut f, "query", p).and_then(|v| string(&at.key("query"), v, p));
    let text = f.take("reply").map_or(Some(false), |v| {
        choice(
            &at.key("reply"),
            v,
            &[("json", false), ("text", true)],
            "reply",
            p,
        )
    });
    let field = f.take("field").and_then(|v| string(&at.key("field"), v, p));
    let max_len = match f.take("max_len") {
        None => Some(1024),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=65536).contains(&n)) => {
            n.as_u64().map(|n| n as usize)
        }
        Some(_) => {
            p.add(
                &at.key("max_len"),
                "expected a number of bytes from 1 to 65536",
            );
            None
        }
    };
    f.finish(p);
    let (param, max_len) = (param?, max_len?);
    Some(match text? {
        true => HandshakeSpec::EchoText { param, max_len },
        false => HandshakeSpec::EchoQuery {
            field: field.unwrap_or_else(|| param.clone()),
            param,
            max_len,
        },
    })
}

fn vectors(at: &KeyPath, value: Value, p: &mut Problems) -> Vec<Vector> {
    let Value::Sequence(items) = value else {
        p.add(
            at,
            format!("expected a list of test vectors, found {}", kind(&value)),
        );
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_VECTORS {
        p.add(at, format!("expected 1 to {MAX_VECTORS} test vectors"));
    }
    (items.into_iter().enumerate().take(MAX_VECTORS))
        .filter_map(|(i, item)| vector(&at.index(i), item, p))
        .collect()
}

fn vector(at: &KeyPath, value: Value, p: &mut Problems) -> Option<Vector> {
    let mut f = Fields::of(at, value, p);
    let body = required(&mut f, "body", p).and_then(|v| string(&at.key("body"), v, p));
    let secret = f
        .take("secret")
        .map_or(Some(String::new()), |v| string(&at.key("secret"), v, p));
    let headers = f.take("headers").map(|v| {
        let mut h = Fields::of(&at.key("headers"), v, p);
        let pairs = h.rest();
        (pairs.into_iter())
            .filter_map(|(name, value)| {
                let key = at.key("headers").key(&name);
                header(&key, Value::String(name.clone()), p)?;
                Some((name, string(&key, value, p)?))
            })
            .collect::<Vec<_>>()
    });
    let expect = required(&mut f, "expect", p).and_then(|v| expect(&at.key("expect"), v, p));
    f.finish(p);
    Some(Vector {
        body: body?,
        secret: secret?,
        headers: headers.unwrap_or_default(),
        expect: expect?,
        at: at.clone(),
    })
}

const EXPECTED_FIELDS: [&str; 6] = [
    "type",
    "vendor_type",
    "vendor_event_id",
    "occurred_at",
    "dedupe_basis",
    "data",
];

fn expect(at: &KeyPath, value: Value, p: &mut Problems) -> Option<Expect> {
    let mut f = Fields::of(at, value, p);
    if let Some(refused) = f.take("refused") {
        f.finish(p);
        return string(&at.key("refused"), refused, p).map(Expect::Refused);
    }
    let mut fields = Vec::new();
    for name in EXPECTED_FIELDS {
        // `null` is an expectation here: the field must be null.
        if let Some(value) = f.take_with_null(name) {
            match serde_json::to_value(&value) {
                Ok(json) => fields.push((name.to_owned(), json)),
                Err(e) => p.add(&at.key(name), format!("cannot be read as JSON: {e}")),
            }
        }
    }
    f.finish(p);
    if fields.is_empty() {
        p.add(
            at,
            "expected `refused`, or envelope fields the event must have",
        );
        return None;
    }
    Some(Expect::Event(fields))
}
