//! Repeat detection: which key a delivery is known by. The first-seen decision is the store's
//! commit writer's, made atomically for a whole batch (see [`crate::store`]).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::base::names::{VendorName, WorkspaceId};

/// What a repeat check keyed the delivery on, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DedupeBasis {
    /// The vendor's own event id from the payload (with what makes it unique per event, where the
    /// vendor's id alone is not): stable across every retry.
    EventId,
    /// The vendor's delivery id, where that is what the vendor documents.
    DeliveryId,
    /// The fields that identify the event, hashed: for vendors without ids.
    Content,
    /// SHA-256 of the body's canonical JSON (sorted keys, no whitespace, strings unescaped the
    /// one way, numbers as written): a retry that re-serialises the body is still a repeat.
    BodyHash,
}

impl DedupeBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            DedupeBasis::EventId => "event_id",
            DedupeBasis::DeliveryId => "delivery_id",
            DedupeBasis::Content => "content",
            DedupeBasis::BodyHash => "body_hash",
        }
    }
}

/// What identifies one event: the basis and the value its key is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    basis: DedupeBasis,
    value: String,
}

/// Why an identity could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The payload's identifying fields are empty (answered 400).
    #[error("the event cannot be identified: its {0} is empty")]
    Empty(&'static str),
    /// The plugin named a basis this core does not know (a plugin defect, answered 500).
    #[error("the plugin named an unknown dedupe basis {0:?}")]
    UnknownBasis(String),
}

impl Identity {
    /// From the basis and parts a plugin reported; `body` is the request's JSON, for `body_hash`.
    pub fn from_parts(
        basis: &str,
        parts: &[Option<String>],
        body: &RawValue,
    ) -> Result<Identity, IdentityError> {
        let first = parts.first().and_then(Option::as_deref).unwrap_or("");
        let (basis, value) = match basis {
            "event_id" if first.is_empty() => return Err(IdentityError::Empty("event id")),
            // One part reads as itself, as keys always have; several are a JSON array, so no
            // choice of separator can make two different lists one key.
            "event_id" if parts.len() == 1 => (DedupeBasis::EventId, first.to_owned()),
            "event_id" => (DedupeBasis::EventId, json_list(parts)),
            "delivery_id" if first.is_empty() => return Err(IdentityError::Empty("delivery id")),
            "delivery_id" => (DedupeBasis::DeliveryId, first.to_owned()),
            "content"
                if parts
                    .iter()
                    .all(|p| matches!(p.as_deref(), None | Some(""))) =>
            {
                return Err(IdentityError::Empty("content key"))
            }
            // Hashed: identifying fields can be message text, which has no place in a log line.
            "content" => (
                DedupeBasis::Content,
                sha256_hex(json_list(parts).as_bytes()),
            ),
            "body_hash" => return Ok(Identity::body_hash(body)),
            other => return Err(IdentityError::UnknownBasis(other.to_owned())),
        };
        Ok(Identity { basis, value })
    }

    /// For a plugin of ABI 1.0, which reports no identity: its event id, else the delivery id,
    /// else the body's hash.
    pub fn implied(
        vendor_event_id: Option<&str>,
        delivery_id: Option<&str>,
        body: &RawValue,
    ) -> Identity {
        match (
            vendor_event_id.filter(|s| !s.is_empty()),
            delivery_id.filter(|s| !s.is_empty()),
        ) {
            (Some(id), _) => Identity {
                basis: DedupeBasis::EventId,
                value: id.to_owned(),
            },
            (None, Some(id)) => Identity {
                basis: DedupeBasis::DeliveryId,
                value: id.to_owned(),
            },
            (None, None) => Identity::body_hash(body),
        }
    }

    /// Never of the raw bytes: a retry with other spacing or key order hashes the same.
    pub fn body_hash(body: &RawValue) -> Identity {
        Identity {
            basis: DedupeBasis::BodyHash,
            value: sha256_hex(canonical_json(body).as_bytes()),
        }
    }

    pub fn basis(&self) -> DedupeBasis {
        self.basis
    }
}

fn json_list(parts: &[Option<String>]) -> String {
    // A list of strings and nulls always serialises.
    serde_json::to_string(parts).unwrap_or_default()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The canonical form of a JSON text: object keys sorted, no whitespace, strings in serde_json's
/// one escaping, numbers, `true`, `false` and `null` exactly as written (so no precision is lost
/// to a float on the way).
pub fn canonical_json(value: &RawValue) -> String {
    let mut out = String::with_capacity(value.get().len());
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &RawValue, out: &mut String) {
    let text = value.get();
    // `value` is valid JSON, so each parse below succeeds; should one not, the text as written
    // is still a deterministic stand-in.
    match text.as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<BTreeMap<String, &RawValue>>(text) {
            Ok(members) => {
                out.push('{');
                for (i, (key, member)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(&key).unwrap_or_default());
                    out.push(':');
                    write_canonical(member, out);
                }
                out.push('}');
            }
            Err(_) => out.push_str(text),
        },
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => {
                out.push('[');
                for (i, item) in items.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_canonical(item, out);
                }
                out.push(']');
            }
            Err(_) => out.push_str(text),
        },
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(s) => out.push_str(&serde_json::to_string(&s).unwrap_or_default()),
            Err(_) => out.push_str(text),
        },
        _ => out.push_str(text),
    }
}

/// `workspace/vendor/basis:value`: scoped so one workspace's events never collide with another's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DedupeKey(String);

impl DedupeKey {
    pub fn derive(
        workspace: &WorkspaceId,
        vendor: &VendorName,
        identity: &Identity,
    ) -> (DedupeKey, DedupeBasis) {
        let basis = identity.basis;
        let key = format!("{workspace}/{vendor}/{}:{}", basis.as_str(), identity.value);
        (DedupeKey(key), basis)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for DedupeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (WorkspaceId, VendorName) {
        (WorkspaceId::new("acme"), VendorName::new("watsi"))
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn key(identity: &Identity) -> String {
        let (ws, v) = names();
        DedupeKey::derive(&ws, &v, identity).0.as_str().to_owned()
    }

    #[test]
    fn a_plugin_of_abi_1_0_is_keyed_on_event_id_then_delivery_id_then_body_hash() {
        let body = raw("{}");
        let id = Identity::implied(Some("evt_1"), Some("d1"), &body);
        assert_eq!(id.basis(), DedupeBasis::EventId);
        assert_eq!(key(&id), "acme/watsi/event_id:evt_1");
        let id = Identity::implied(None, Some("d1"), &body);
        assert_eq!(key(&id), "acme/watsi/delivery_id:d1");
        let id = Identity::implied(Some(""), None, &body);
        assert_eq!(id.basis(), DedupeBasis::BodyHash);
        assert_eq!(
            key(&id),
            "acme/watsi/body_hash:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn reported_identities_make_their_keys() {
        let body = raw("{}");
        let some = |s: &str| Some(s.to_owned());
        let id = Identity::from_parts("event_id", &[some("a056")], &body).unwrap();
        assert_eq!(key(&id), "acme/watsi/event_id:a056");
        let id = Identity::from_parts(
            "event_id",
            &[some("a056"), some("message.updated"), None],
            &body,
        )
        .unwrap();
        assert_eq!(
            key(&id),
            r#"acme/watsi/event_id:["a056","message.updated",null]"#
        );
        let id = Identity::from_parts("delivery_id", &[some("d1")], &body).unwrap();
        assert_eq!(key(&id), "acme/watsi/delivery_id:d1");
        let content =
            Identity::from_parts("content", &[some("u1"), some("Hello!")], &body).unwrap();
        assert_eq!(content.basis(), DedupeBasis::Content);
        assert!(!key(&content).contains("Hello"), "{}", key(&content));
        // A part's boundary is part of the key.
        let shifted =
            Identity::from_parts("content", &[some("u1H"), some("ello!")], &body).unwrap();
        assert_ne!(key(&content), key(&shifted));
        let id = Identity::from_parts("body_hash", &[], &body).unwrap();
        assert_eq!(id, Identity::body_hash(&body));
    }

    #[test]
    fn empty_identities_and_unknown_bases_are_refused() {
        let body = raw("{}");
        assert_eq!(
            Identity::from_parts("event_id", &[Some(String::new())], &body),
            Err(IdentityError::Empty("event id"))
        );
        assert_eq!(
            Identity::from_parts("delivery_id", &[], &body),
            Err(IdentityError::Empty("delivery id"))
        );
        assert_eq!(
            Identity::from_parts("content", &[None, Some(String::new())], &body),
            Err(IdentityError::Empty("content key"))
        );
        assert_eq!(
            Identity::from_parts("mood", &[], &body),
            Err(IdentityError::UnknownBasis("mood".into()))
        );
    }

    #[test]
    fn the_body_hash_ignores_spacing_key_order_and_escapes_but_not_values() {
        let a = raw(
            r#"{"event":"x","data":{"n":12345678901234567890123,"s":"Aé","l":[1,{"b":2,"a":1}]}}"#,
        );
        let b = raw(
            r#"{ "data" : { "l" : [ 1 , { "a" : 1 , "b" : 2 } ] , "s" : "\u0041\u00e9" , "n" : 12345678901234567890123 } , "event" : "x" }"#,
        );
        assert_eq!(
            canonical_json(&b),
            r#"{"data":{"l":[1,{"a":1,"b":2}],"n":12345678901234567890123,"s":"Aé"},"event":"x"}"#
        );
        assert_eq!(Identity::body_hash(&a), Identity::body_hash(&b));
        // Precision is kept: the 23rd digit tells two bodies apart.
        let c = raw(
            r#"{"event":"x","data":{"n":12345678901234567890124,"s":"Aé","l":[1,{"b":2,"a":1}]}}"#,
        );
        assert_ne!(Identity::body_hash(&a), Identity::body_hash(&c));
    }

    #[test]
    fn workspaces_do_not_share_keys() {
        let v = VendorName::new("watsi");
        let body = raw("{}");
        let id = Identity::implied(Some("e"), None, &body);
        let a = DedupeKey::derive(&WorkspaceId::new("a"), &v, &id).0;
        let b = DedupeKey::derive(&WorkspaceId::new("b"), &v, &id).0;
        assert_ne!(a, b);
    }
}
