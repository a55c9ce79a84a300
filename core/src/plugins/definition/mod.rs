//! Vendor definitions: a vendor as data, `<vendor>.vendor.yaml` in `plugins_dir`, loaded beside
//! the libraries into the same [`VendorPlugin`](super::VendorPlugin). A definition says how the
//! vendor signs (`signature`, or `none`), what identifies an event (`identity`), where its type
//! is and what canonical type each vendor type is (`type`, `types`), when it happened
//! (`occurred_at`), which payload fields fill the canonical `data` (by JSON pointer), the GET
//! handshake, and test vectors that prove all of it at load. `docs/writing-a-vendor-definition.md`
//! is the reference.
//!
//! The interpreter ([`eval`]) is pure and bounded: no I/O, no scripting, no loop but over the
//! definition's own lists and the pointers' segments, each capped when the file is read
//! ([`read`]). The body is parsed once; the one decode step (JSON inside a string) reads at most
//! the body's own bytes. Problems are reported all at once, each with the file, line and key
//! ([`problems`]); vectors are proven with the core's own signature check and mapping ([`prove`]).

mod eval;
mod fields;
mod problems;
mod prove;
mod read;
mod rules;
mod shape;
mod spec;

use std::path::Path;

use hyper::header::HeaderName;

use super::{HandshakeSpec, PluginError};
use crate::base::locate::KeyPath;
use crate::event::verify::SignatureScheme;

/// The file name suffix of a definition: `<vendor>.vendor.yaml`.
pub const FILE_SUFFIX: &str = ".vendor.yaml";

/// A definition larger than this is refused unread: a vendor fits in a few kilobytes.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// One loaded definition: what [`VendorPlugin`](super::VendorPlugin) shows of it, and the rules
/// its deliveries are mapped by.
#[derive(Debug)]
pub struct Definition {
    pub vendor: String,
    pub version: String,
    /// `None`: `signature: none`, served only behind an allow-list.
    pub signature: Option<SignatureScheme>,
    pub delivery_id_header: Option<HeaderName>,
    pub event_type_header: Option<HeaderName>,
    pub handshake: HandshakeSpec,
    /// What identifies one event, for `switchyard plugins`.
    pub dedupe: String,
    pub(super) vectors: Vec<Vector>,
    /// The file's text: a reload re-reads a definition only when it changed.
    pub(super) text: String,
    rules: Rules,
}

/// How a delivery becomes an event.
#[derive(Debug)]
struct Rules {
    /// Where the `data` pointers start: the first of these that is an object, else `{}`.
    root: Vec<String>,
    event_id: Spec,
    kind: TypeRule,
    occurred_at: Option<Spec>,
    identity: Vec<IdRule>,
    types: Vec<TypeEntry>,
    /// The message fields of a `message.*` type no entry gives `data` for.
    message_default: Data,
}

/// Where the vendor's event type is.
#[derive(Debug)]
struct TypeRule {
    /// In the signed body.
    pointer: Spec,
    /// The unsigned header: the body wins, and a body and header that disagree are refused.
    header: Option<HeaderName>,
    /// Tried when neither says.
    fallback: Spec,
    at: KeyPath,
}

/// One entry of `types`: a vendor type (or a `*` pattern) and what it sets. For each setting,
/// the first matching entry that has it wins; the top level is the default.
#[derive(Debug)]
struct TypeEntry {
    pattern: wildmatch::WildMatch,
    canonical: Option<String>,
    data: Option<Data>,
    /// `Some(None)`: `occurred_at: none`.
    occurred_at: Option<Option<Spec>>,
    identity: Option<Vec<IdRule>>,
}

/// An event's `data`.
#[derive(Debug)]
enum Data {
    /// The root object as it is (types without a canonical shape).
    Pass,
    /// A canonical shape, every field in order: `None` is null.
    Shape(Vec<(&'static str, Option<Field>)>),
}

#[derive(Debug)]
enum Field {
    Value(Kind, Spec),
    /// `media`, `contact`: present when `at` is an object (always, without `at`), and with
    /// `any`, only when one of its fields has a value.
    Object {
        at: Option<String>,
        any: bool,
        fields: Vec<(&'static str, Option<Spec>)>,
    },
}

/// How a value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A non-empty string, or a number in its decimal form.
    Text,
    /// Text in lower case (`status`).
    Lower,
    /// A time, normalised to RFC 3339 UTC.
    Time,
    /// An array (or with `decode: json`, a string holding one).
    List,
}

/// Where a value may come from, tried in order; the first that gives one wins.
#[derive(Debug)]
struct Spec {
    sources: Vec<Source>,
    /// Where the definition says it, for a vector that proves it wrong.
    at: KeyPath,
}

#[derive(Debug)]
struct Source {
    from: From,
    lower: bool,
    format: Option<TimeFormat>,
    decode: bool,
}

#[derive(Debug)]
enum From {
    Pointer(String),
    Header(HeaderName),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimeFormat {
    /// An RFC 3339 string or a number of Unix seconds.
    Auto,
    Rfc3339,
    UnixSeconds,
    UnixMillis,
}

/// One way to identify an event, tried in order.
#[derive(Debug)]
enum IdRule {
    /// The event id, with parts that make it unique where it is not on its own.
    EventId(Vec<Spec>),
    /// The delivery id header's value.
    DeliveryId,
    /// The listed fields, hashed; the first `require` of them must have values.
    Content {
        parts: Vec<Spec>,
        require: usize,
    },
    BodyHash,
    /// Refused (400) with this text.
    Refuse(String),
}

/// A test vector: a delivery as the vendor sends it, and what the event must be.
#[derive(Debug)]
pub(super) struct Vector {
    body: String,
    secret: String,
    /// As written: the name is checked when the file is read.
    headers: Vec<(String, String)>,
    expect: Expect,
    at: KeyPath,
}

#[derive(Debug)]
enum Expect {
    /// Refused, the reason containing this text.
    Refused(String),
    /// Envelope fields that must be as given (`data` at least as given).
    Event(Vec<(String, serde_json::Value)>),
}

impl Definition {
    /// Reads and checks one definition, then proves its vectors; every problem found, each
    /// naming the file, line and key.
    pub fn load(path: &Path) -> Result<Definition, Vec<PluginError>> {
        let text = read_file(path)?;
        let mut problems = problems::Problems::new(path, &text);
        let definition = read::read(&text, &mut problems);
        let definition = match definition {
            Some(definition) if problems.is_empty() => definition,
            _ => return Err(problems.into_errors()),
        };
        definition.prove(&mut problems);
        if problems.is_empty() {
            Ok(definition)
        } else {
            Err(problems.into_errors())
        }
    }

    /// Whether the file at `path` still holds the text this definition was read from.
    pub(super) fn unchanged(&self, path: &Path) -> bool {
        std::fs::read_to_string(path).is_ok_and(|text| text == self.text)
    }

    pub(super) fn vector_count(&self) -> usize {
        self.vectors.len()
    }
}

/// The file's text, refused when it is too large to be a definition or not UTF-8.
fn read_file(path: &Path) -> Result<String, Vec<PluginError>> {
    let refuse = |reason: String| {
        vec![PluginError::Open {
            path: path.to_path_buf(),
            reason,
        }]
    };
    let size = std::fs::metadata(path)
        .map_err(|e| refuse(e.to_string()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(refuse(format!(
            "{size} bytes is more than a vendor definition may hold ({MAX_FILE_BYTES})"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| refuse(e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| refuse("not UTF-8 text".into()))
}

/// Whether `path` names a definition.
pub fn is_definition(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() > FILE_SUFFIX.len() && n.ends_with(FILE_SUFFIX))
}

#[cfg(test)]
mod tests;
