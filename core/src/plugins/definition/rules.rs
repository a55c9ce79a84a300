//! Reading a definition's mapping rules: `root`, `event_id`, `type`, `occurred_at`, `identity`
//! and the `types` table with the canonical `data` each type's fields fill. Every list is capped
//! and every pointer bounded here, so the work per event is bounded by the file's own size.

use hyper::header::HeaderName;
use serde_yaml::Value;

use super::fields::{choice, header, kind, required, string, Fields};
use super::problems::Problems;
use super::shape::{self, Slot};
use super::spec::{pointer, present, spec};
use super::{Data, Field, From, IdRule, Kind, Rules, Spec, TypeEntry, TypeRule};
use crate::base::locate::KeyPath;

/// Identity rules, content parts, `types` entries.
const MAX_RULES: usize = 8;
const MAX_PARTS: usize = 8;
const MAX_TYPES: usize = 128;

/// The rules, what identifies an event in words (for `switchyard plugins`), and the event-type
/// header.
pub(super) type Read = (Rules, String, Option<HeaderName>);

pub(super) fn read(top: &mut Fields, has_delivery_id: bool, p: &mut Problems) -> Option<Read> {
    let at = top.at.clone();
    let root = top.take("root").map_or(Some(vec![String::new()]), |v| {
        let spec = spec(&at.key("root"), v, Kind::Text, p)?;
        (spec.sources.into_iter())
            .map(|s| match s.from {
                From::Pointer(pointer) => Some(pointer),
                From::Header(_) => {
                    p.add(&at.key("root"), "the root is in the body: pointers only");
                    None
                }
            })
            .collect()
    });
    let event_id = (top.take("event_id")).map(|v| spec(&at.key("event_id"), v, Kind::Text, p));
    let kind = required(top, "type", p).and_then(|v| type_rule(&at.key("type"), v, p));
    let occurred_at = (top.take("occurred_at")).map(|v| occurred(&at.key("occurred_at"), v, p));
    let context = Context {
        event_id: event_id.is_some(),
        delivery_id: has_delivery_id,
    };
    let identity =
        required(top, "identity", p).and_then(|v| identity(&at.key("identity"), v, &context, p));
    let types = (top.take("types")).map_or(Some(Vec::new()), |v| {
        types(&at.key("types"), v, &context, p)
    });
    let (kind, identity, types) = (kind?, identity?, types?);
    let dedupe = describe(&identity, &types);
    let header = kind.header.clone();
    let rules = Rules {
        root: root?,
        event_id: event_id.unwrap_or(Some(Spec {
            sources: Vec::new(),
            at: at.key("event_id"),
        }))?,
        kind,
        occurred_at: occurred_at.unwrap_or(Some(None))?,
        identity,
        types: types.into_iter().map(|(_, entry)| entry).collect(),
        message_default: shape::default_message(),
    };
    Some((rules, dedupe, header))
}

struct Context {
    event_id: bool,
    delivery_id: bool,
}

fn type_rule(at: &KeyPath, value: Value, p: &mut Problems) -> Option<TypeRule> {
    if !matches!(value, Value::Mapping(_)) {
        let pointer = spec(at, value, Kind::Text, p)?;
        return Some(TypeRule {
            pointer,
            header: None,
            fallback: Spec {
                sources: Vec::new(),
                at: at.clone(),
            },
            at: at.clone(),
        });
    }
    let mut f = Fields::of(at, value, p);
    let pointer = f
        .take("pointer")
        .map(|v| spec(&at.key("pointer"), v, Kind::Text, p));
    let header = f.take("header").map(|v| header(&at.key("header"), v, p));
    let fallback = f
        .take("fallback")
        .map(|v| spec(&at.key("fallback"), v, Kind::Text, p));
    f.finish(p);
    if pointer.is_none() && header.is_none() {
        p.add(at, "expected `pointer`, `header` or both");
        return None;
    }
    let empty = |key: &str| Spec {
        sources: Vec::new(),
        at: at.key(key),
    };
    Some(TypeRule {
        pointer: pointer.unwrap_or_else(|| Some(empty("pointer")))?,
        header: present(header)?,
        fallback: fallback.unwrap_or_else(|| Some(empty("fallback")))?,
        at: at.clone(),
    })
}

/// `none`, or where the time is: `Some(None)` is `none`.
fn occurred(at: &KeyPath, value: Value, p: &mut Problems) -> Option<Option<Spec>> {
    match value {
        Value::String(text) if text == "none" => Some(None),
        other => spec(at, other, Kind::Time, p).map(Some),
    }
}

fn identity(
    at: &KeyPath,
    value: Value,
    context: &Context,
    p: &mut Problems,
) -> Option<Vec<IdRule>> {
    let items = match value {
        Value::Sequence(items) => items,
        one => vec![one],
    };
    if items.is_empty() || items.len() > MAX_RULES {
        p.add(
            at,
            format!("expected 1 to {MAX_RULES} ways to identify an event"),
        );
        return None;
    }
    let rules: Vec<Option<IdRule>> = (items.into_iter().enumerate())
        .map(|(i, item)| id_rule(&at.index(i), item, context, p))
        .collect();
    rules.into_iter().collect()
}

fn id_rule(at: &KeyPath, value: Value, context: &Context, p: &mut Problems) -> Option<IdRule> {
    let rule = match value {
        Value::String(name) => match name.as_str() {
            "event_id" => IdRule::EventId(Vec::new()),
            "delivery_id" => IdRule::DeliveryId,
            "body_hash" => IdRule::BodyHash,
            other => {
                let message = format!(
                    "unknown identity `{other}`, expected event_id, delivery_id, body_hash, \
                     {{ event_id: {{ and }} }}, {{ content, require }} or {{ refuse }}"
                );
                p.add(at, message);
                return None;
            }
        },
        other => {
            let mut f = Fields::of(at, other, p);
            let rule = if let Some(event) = f.take("event_id") {
                let mut e = Fields::of(&at.key("event_id"), event, p);
                let and =
                    (e.take("and")).map_or(Some(Vec::new()), |v| parts(&e.at.key("and"), v, p));
                e.finish(p);
                and.map(IdRule::EventId)
            } else if let Some(content) = f.take("content") {
                let parts = parts(&at.key("content"), content, p);
                let require = match f.take("require") {
                    None => Some(0),
                    Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
                    Some(_) => None,
                };
                match (parts, require) {
                    (Some(parts), Some(require)) if require <= parts.len() => {
                        Some(IdRule::Content { parts, require })
                    }
                    (Some(_), _) => {
                        p.add(
                            &at.key("require"),
                            "expected how many of the first parts must have values",
                        );
                        None
                    }
                    _ => None,
                }
            } else if let Some(text) = f.take("refuse") {
                string(&at.key("refuse"), text, p).map(IdRule::Refuse)
            } else {
                p.add(at, "expected event_id, delivery_id, body_hash, { event_id }, { content } or { refuse }");
                None
            };
            f.finish(p);
            rule?
        }
    };
    match rule {
        IdRule::EventId(_) if !context.event_id => p.add(
            at,
            "identity by `event_id` needs the top-level `event_id` pointers",
        ),
        IdRule::DeliveryId if !context.delivery_id => {
            p.add(at, "identity by `delivery_id` needs `delivery_id_header`")
        }
        _ => return Some(rule),
    }
    None
}

fn parts(at: &KeyPath, value: Value, p: &mut Problems) -> Option<Vec<Spec>> {
    let Value::Sequence(items) = value else {
        p.add(at, format!("expected a list, found {}", kind(&value)));
        return None;
    };
    if items.is_empty() || items.len() > MAX_PARTS {
        p.add(at, format!("expected 1 to {MAX_PARTS} parts"));
        return None;
    }
    let parts: Vec<Option<Spec>> = (items.into_iter().enumerate())
        .map(|(i, item)| spec(&at.index(i), item, Kind::Text, p))
        .collect();
    parts.into_iter().collect()
}

fn types(
    at: &KeyPath,
    value: Value,
    context: &Context,
    p: &mut Problems,
) -> Option<Vec<(String, TypeEntry)>> {
    let mut f = Fields::of(at, value, p);
    let entries = f.rest();
    f.finish(p);
    if entries.len() > MAX_TYPES {
        p.add(at, format!("more than {MAX_TYPES} entries"));
        return None;
    }
    let read: Vec<Option<(String, TypeEntry)>> = (entries.into_iter())
        .map(|(name, v)| {
            let entry = type_entry(&at.key(&name), &name, v, context, p)?;
            Some((name, entry))
        })
        .collect();
    read.into_iter().collect()
}

fn type_entry(
    at: &KeyPath,
    name: &str,
    value: Value,
    context: &Context,
    p: &mut Problems,
) -> Option<TypeEntry> {
    if name.is_empty() {
        p.add(at, "a vendor type cannot be empty");
    }
    let mut f = Fields::of(at, value, p);
    let canonical = f.take("type").map(|v| {
        let name = string(&at.key("type"), v, p)?;
        if shape::CANONICAL.contains(&name.as_str()) {
            return Some(name);
        }
        let message = format!(
            "maps to `{name}`, which is not a canonical type (expected one of {}); leave `type` \
             out to keep the vendor's name",
            shape::CANONICAL.join(", ")
        );
        p.add(&at.key("type"), message);
        None
    });
    let canonical = present(canonical);
    let shape_name = match &canonical {
        Some(Some(canonical)) => canonical.as_str(),
        _ => name,
    };
    let data = (f.take("data")).map(|v| data(&at.key("data"), v, shape::of(shape_name), p));
    if data.is_none()
        && ["message.status", "contact.updated", "media.uploaded"].contains(&shape_name)
    {
        let message = format!("`data` is required: the fields of `{shape_name}`, by pointer");
        p.add(at, message);
    }
    let occurred_at = (f.take("occurred_at")).map(|v| occurred(&at.key("occurred_at"), v, p));
    let identity = (f.take("identity")).map(|v| identity(&at.key("identity"), v, context, p));
    f.finish(p);
    Some(TypeEntry {
        pattern: wildmatch::WildMatch::new(name),
        canonical: canonical?,
        data: present(data)?,
        occurred_at: present(occurred_at)?,
        identity: present(identity)?,
    })
}

fn data(
    at: &KeyPath,
    value: Value,
    shape: Option<&[(&'static str, Slot)]>,
    p: &mut Problems,
) -> Option<Data> {
    let Some(shape) = shape else {
        if value == Value::String("pass".into()) {
            return Some(Data::Pass);
        }
        p.add(
            at,
            "this type has no canonical shape: its data is the payload as it is (`data: pass`)",
        );
        return None;
    };
    let mut f = Fields::of(at, value, p);
    let mut fields = Vec::new();
    let mut ok = true;
    for (name, slot) in shape {
        let Some(v) = f.take(name) else {
            fields.push((*name, None));
            continue;
        };
        let field = match slot {
            Slot::Value(kind) => spec(&at.key(name), v, *kind, p).map(|s| Field::Value(*kind, s)),
            Slot::Object(names) => object(&at.key(name), v, names, p),
        };
        ok &= field.is_some();
        fields.push((*name, field));
    }
    f.finish(p);
    ok.then_some(Data::Shape(fields))
}

fn object(
    at: &KeyPath,
    value: Value,
    names: &'static [&'static str],
    p: &mut Problems,
) -> Option<Field> {
    let mut f = Fields::of(at, value, p);
    let object_at = f
        .take("at")
        .map(|v| string(&at.key("at"), v, p).and_then(|t| pointer(&at.key("at"), t, p)));
    let any = f
        .take("when")
        .map(|v| choice(&at.key("when"), v, &[("any", true)], "condition", p));
    let mut fields = Vec::new();
    let mut ok = true;
    for name in names {
        let field = f.take(name).map(|v| spec(&at.key(name), v, Kind::Text, p));
        ok &= !matches!(field, Some(None));
        fields.push((*name, field.flatten()));
    }
    f.finish(p);
    ok.then_some(())?;
    Some(Field::Object {
        at: present(object_at)?,
        any: present(any)?.unwrap_or(false),
        fields,
    })
}

/// What identifies one event, in words.
fn describe(identity: &[IdRule], types: &[(String, TypeEntry)]) -> String {
    let rules: Vec<String> = identity.iter().map(IdRule::describe).collect();
    let mut text = rules.join("; else ");
    let own: Vec<&str> = (types.iter())
        .filter(|(_, e)| e.identity.is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    if !own.is_empty() {
        text.push_str(&format!(" (their own: {})", own.join(", ")));
    }
    text
}

impl IdRule {
    fn describe(&self) -> String {
        match self {
            IdRule::EventId(and) if and.is_empty() => "event_id".into(),
            IdRule::EventId(and) => format!("event_id + {}", Spec::list(and)),
            IdRule::DeliveryId => "delivery_id".into(),
            IdRule::Content { parts, .. } => format!("content: {}", Spec::list(parts)),
            IdRule::BodyHash => "body_hash".into(),
            IdRule::Refuse(_) => "refused".into(),
        }
    }
}

impl Spec {
    fn list(specs: &[Spec]) -> String {
        let names: Vec<String> = specs.iter().map(Spec::describe).collect();
        names.join(", ")
    }

    pub(super) fn describe(&self) -> String {
        let names: Vec<String> = (self.sources.iter())
            .map(|s| match &s.from {
                From::Pointer(pointer) => pointer.clone(),
                From::Header(header) => format!("header {header}"),
            })
            .collect();
        names.join(" or ")
    }
}
