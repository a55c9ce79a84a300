//! DocsSmith: `X-DocsSmith-Signature` is the hex HMAC-SHA256 of the raw body. The document names
//! the header after its demo product, `x-DocsSmith Demo2-signature`; a name with a space is not a
//! valid HTTP header token, so no client can send it, and the product's own name is used instead.
//! (Its sample also compares with `===`; the core compares in constant time.)
//!
//! The body is `{id, type, payload}`, with `id` the event id. The fifteen `entity.verb` types
//! (`contact`, `conversation`, `message`, `group`, `attachment` x `created`, `updated`, `deleted`)
//! keep their names. `contact.updated` is also a canonical type, so its data is the contact
//! (`id`, `name` or else `username`, `phone_number`). `message.*` carry the canonical message
//! fields, as every vendor's `message.*` do: `message_id` (the payload's `id`), `text`
//! (`message`), `contact`, `conversation_id`, `sent_at` (`created_at`), the rest `null`. Every
//! other type carries `payload` as data.
//!
//! The document's own examples give one `id` to two different events (a `conversation.updated`
//! and a `message.updated`), so the id is not unique per event: the identity is the id, the type
//! and the entity's `updated_at`.
//!
//! Payload times are Unix seconds and describe the entity: `occurred_at` is its `updated_at` for
//! `*.updated` and its `created_at` for the other types, except `*.deleted`, which is `null`:
//! the entity's creation time is not when it was deleted, and the document gives no deletion time.

use switchyard_plugin::canonical::{ContactUpdated, MessageReceived};
use switchyard_plugin::prelude::*;

pub const PLUGIN: Plugin = Plugin::new(
    "docssmith",
    env!("CARGO_PKG_VERSION"),
    Signature::hmac_sha256_hex("X-DocsSmith-Signature"),
    map_event,
)
.dedupe("event_id: id + type + payload.updated_at")
.test_vectors(&[TestVector::body(
    r#"{"id":"a056V7R7NmNRjl70","type":"conversation.updated","payload":{"id":"WAz8eIbvDR60rouK"}}"#,
    "docssmith-test-vector-secret",
    "7889a05e8d6576821ddb81a75bbcf8d7d6f99eb4be65309acc5a666fdc0c4135",
)]);

export_plugin!(PLUGIN);

fn map_event(request: &Request<'_>) -> Result<MappedEvent, MapError> {
    let body = payload::parse_object(request.body())?;
    let vendor_type = payload::required_str(&body, "type")?.to_owned();
    let event_id = payload::required_str(&body, "id")?.to_owned();
    let entity = payload::object_or_empty(&body, "payload");
    let data = if vendor_type == canonical::CONTACT_UPDATED {
        canonical::to_data(&ContactUpdated {
            contact: contact(entity),
        })
    } else if vendor_type.starts_with("message.") {
        canonical::to_data(&MessageReceived {
            message_id: payload::text(entity, "id"),
            text: payload::text(entity, "message"),
            contact: payload::object(entity, "contact").map(contact),
            conversation_id: payload::text(entity, "conversation_id"),
            sent_at: payload::timestamp(entity, "created_at"),
            ..MessageReceived::default()
        })
    } else {
        Value::Object(entity.clone())
    };
    let occurred_at = if vendor_type.ends_with(".updated") {
        payload::timestamp(entity, "updated_at")
    } else if vendor_type.ends_with(".deleted") {
        None
    } else {
        payload::timestamp(entity, "created_at")
    };
    let identity = Identity::event_id(&event_id)
        .and(Some(vendor_type.clone()))
        .and(payload::text(entity, "updated_at"));
    Ok(
        MappedEvent::new(vendor_type.clone(), vendor_type, data, identity)
            .vendor_event_id(Some(event_id))
            .occurred_at(occurred_at),
    )
}

fn contact(entity: &Map<String, Value>) -> Contact {
    Contact {
        id: payload::text(entity, "id"),
        name: payload::text(entity, "name").or_else(|| payload::text(entity, "username")),
        phone: payload::text(entity, "phone_number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(body: &str) -> Result<MappedEvent, MapError> {
        (PLUGIN.map_event)(&Request::from_body(body.as_bytes()))
    }

    const CREATED: Option<&str> = Some("1991-12-08T23:00:00Z");
    const UPDATED: Option<&str> = Some("1992-05-05T22:00:00Z");

    #[test]
    fn all_fifteen_types_keep_their_names() {
        let table = [
            ("contact.created", CREATED),
            ("contact.updated", UPDATED),
            ("contact.deleted", None),
            ("conversation.created", CREATED),
            ("conversation.updated", UPDATED),
            ("conversation.deleted", None),
            ("message.created", CREATED),
            ("message.updated", UPDATED),
            ("message.deleted", None),
            ("group.created", CREATED),
            ("group.updated", UPDATED),
            ("group.deleted", None),
            ("attachment.created", CREATED),
            ("attachment.updated", UPDATED),
            ("attachment.deleted", None),
        ];
        let entity = json!({"id":"p1","created_at":692233200,"updated_at":705103200});
        for (vendor_type, occurred_at) in table {
            let body = json!({"id":"evt_1","type":vendor_type,"payload":entity}).to_string();
            let event = map(&body).unwrap();
            assert_eq!(event.canonical_type, vendor_type);
            assert_eq!(event.vendor_type, vendor_type);
            assert_eq!(event.vendor_event_id.as_deref(), Some("evt_1"));
            assert_eq!(event.occurred_at.as_deref(), occurred_at, "{vendor_type}");
            let expected = if vendor_type == "contact.updated" {
                json!({"contact":{"id":"p1","name":null,"phone":null}})
            } else if vendor_type.starts_with("message.") {
                json!({"message_id":"p1","from":null,"to":null,"text":null,"media":null,"contact":null,
                       "conversation_id":null,"sent_at":"1991-12-08T23:00:00Z","history":null})
            } else {
                entity.clone()
            };
            assert_eq!(event.data, expected, "{vendor_type}");
        }
    }

    #[test]
    fn message_updated_from_the_seed_carries_the_canonical_message_fields() {
        let event = map(r#"{"id":"a056V7R7NmNRjl70","type":"message.updated","payload":{
            "id":"SIuAFUNKdSYHZF2w","conversation_id":"xgQQXg3hrtjh7AvZ",
            "contact":{"id":"WAz8eIbvDR60rouK","username":"KevinMcCallister","phone_number":"1-800-759-3000",
                       "avatar_url":"https://assets.DocsSmith Demo2.chat/avatars/kevin.jpg","last_active_at":705103200,"created_at":692233200},
            "message":"I’m traveling with my dad. He’s at a meeting. I hate meetings.",
            "reactions":[],"attachments":[],"read_at":705103200,"created_at":692233200,"updated_at":692233200}}"#)
        .unwrap();
        assert_eq!(event.canonical_type, "message.updated");
        assert_eq!(event.vendor_event_id.as_deref(), Some("a056V7R7NmNRjl70"));
        assert_eq!(event.occurred_at.as_deref(), Some("1991-12-08T23:00:00Z"));
        assert_eq!(
            event.data,
            json!({"message_id":"SIuAFUNKdSYHZF2w","from":null,"to":null,
                   "text":"I’m traveling with my dad. He’s at a meeting. I hate meetings.","media":null,
                   "contact":{"id":"WAz8eIbvDR60rouK","name":"KevinMcCallister","phone":"1-800-759-3000"},
                   "conversation_id":"xgQQXg3hrtjh7AvZ","sent_at":"1991-12-08T23:00:00Z","history":null})
        );
    }

    #[test]
    fn one_id_on_two_events_gives_two_identities() {
        // The document's two examples share `a056V7R7NmNRjl70`.
        let conversation = map(r#"{"id":"a056V7R7NmNRjl70","type":"conversation.updated","payload":{"id":"WAz8eIbvDR60rouK"}}"#).unwrap();
        let message = map(r#"{"id":"a056V7R7NmNRjl70","type":"message.updated","payload":{"id":"SIuAFUNKdSYHZF2w","updated_at":692233200}}"#).unwrap();
        assert_eq!(
            message.identity,
            Identity::event_id("a056V7R7NmNRjl70")
                .and(Some("message.updated".into()))
                .and(Some("692233200".into()))
        );
        assert_ne!(conversation.identity, message.identity);
        // The same entity updated again is another event too.
        let later = map(r#"{"id":"a056V7R7NmNRjl70","type":"message.updated","payload":{"id":"SIuAFUNKdSYHZF2w","updated_at":705103200}}"#).unwrap();
        assert_ne!(later.identity, message.identity);
    }

    #[test]
    fn contact_updated_is_the_canonical_contact() {
        let event = map(r#"{"id":"e2","type":"contact.updated","payload":{"id":"WAz8eIbvDR60rouK",
            "username":"KevinMcCallister","phone_number":"1-800-759-3000","updated_at":705103200}}"#)
        .unwrap();
        assert_eq!(
            event.data,
            json!({"contact":{"id":"WAz8eIbvDR60rouK","name":"KevinMcCallister","phone":"1-800-759-3000"}})
        );
        let event = map(
            r#"{"id":"e3","type":"contact.updated","payload":{"id":"c1","name":"Kevin","username":"kev"}}"#,
        )
        .unwrap();
        assert_eq!(
            event.data,
            json!({"contact":{"id":"c1","name":"Kevin","phone":null}})
        );
        assert_eq!(event.occurred_at, None);
    }

    #[test]
    fn unknown_types_pass_through_unchanged() {
        let event =
            map(r#"{"id":"e4","type":"workspace.archived","payload":{"id":"w1"}}"#).unwrap();
        assert_eq!(event.canonical_type, "workspace.archived");
        assert_eq!(event.vendor_type, "workspace.archived");
        assert_eq!(event.data, json!({"id":"w1"}));
    }

    #[test]
    fn missing_id_or_type_is_named() {
        assert_eq!(
            map(r#"{"type":"message.created"}"#).unwrap_err(),
            MapError::MissingField("id")
        );
        assert_eq!(
            map(r#"{"id":"e5"}"#).unwrap_err(),
            MapError::MissingField("type")
        );
        assert!(matches!(
            map("not json").unwrap_err(),
            MapError::InvalidJson(_)
        ));
    }

    #[test]
    fn the_test_vector_body_maps() {
        for vector in PLUGIN.test_vectors {
            map(vector.body).unwrap();
        }
    }
}
