//! WhatsAble: the body is `{event, data}`; `incoming_message` maps to `message.received` and
//! `message_status` to `message.status`. Other events pass through, as the vendor's own sample
//! handler tolerates them.
//!
//! The document asks receivers to verify signatures but names no scheme, so this plugin declares
//! the common one, `X-WhatsAble-Signature` = hex HMAC-SHA256 of the raw body. A deployment whose
//! account signs otherwise sets `signature: { header, encoding, prefix }` for the vendor in
//! routes.yaml, or `signature: none` together with `allow_ips`, which the document leans on.
//!
//! There is no event id, so `vendor_event_id` is always `None`, and the identity is a content key
//! of the fields that tell one event from another, which a re-serialised retry keeps:
//! - a status: `message_id`, `status` (lower case) and `timestamp`. `message_id` alone names a
//!   message, not an event: delivered, then read, share it.
//! - an incoming message: the user (`user_id`, else `phone_number`), `user_timestamp` and
//!   `last_message_of_user`.
//!
//! When those fields are missing (and for other events) it is the hash of the body's canonical
//! JSON.
//!
//! An incoming message's `last_messages` is a JSON string holding a JSON array (JSON inside
//! JSON); it is decoded into `history`. The field is optional and a consumer may never read it,
//! so an array sent as such is taken as it is, and anything else (empty, not JSON, another type)
//! is `null` rather than a reason to lose the message. `user_timestamp` is Unix seconds; a
//! status's `timestamp` is RFC 3339.

use switchyard_plugin::canonical::{MessageReceived, MessageStatus};
use switchyard_plugin::prelude::*;

pub const PLUGIN: Plugin = Plugin::new(
    "whatsable",
    env!("CARGO_PKG_VERSION"),
    Signature::hmac_sha256_hex("X-WhatsAble-Signature"),
    map_event,
)
.dedupe("content: message_id, status, timestamp (status) or user, user_timestamp, text (incoming); else body_hash")
.test_vectors(&[TestVector::body(
    r#"{"event":"message_status","data":{"message_id":"wamid.123456789","status":"delivered","timestamp":"2024-03-23T21:41:44.477Z"}}"#,
    "whatsable-test-vector-secret",
    "f997643ab64c86a2b10dab1b4a25d77425cea4a49f93feffc56d923c4c61cceb",
)]);

export_plugin!(PLUGIN);

fn map_event(request: &Request<'_>) -> Result<MappedEvent, MapError> {
    let body = payload::parse_object(request.body())?;
    let vendor_type = payload::required_str(&body, "event")?;
    let data = payload::object_or_empty(&body, "data");
    let (canonical_type, canonical_data, occurred_at, identity) = match vendor_type {
        "incoming_message" => {
            let sent_at = payload::timestamp(data, "user_timestamp");
            let user =
                payload::text(data, "user_id").or_else(|| payload::text(data, "phone_number"));
            let text = payload::text(data, "last_message_of_user");
            let at = payload::text(data, "user_timestamp");
            let identity = match (&user, &at) {
                (Some(_), Some(_)) => Identity::content([user, at, text.clone()]),
                _ => Identity::body_hash(),
            };
            let message = MessageReceived {
                message_id: None,
                from: payload::text(data, "phone_number"),
                to: None,
                text,
                media: payload::text(data, "attachment_url").map(|url| Media {
                    url: Some(url),
                    mime_type: None,
                    caption: None,
                }),
                contact: contact(data),
                conversation_id: None,
                sent_at: sent_at.clone(),
                history: history(data),
            };
            let data = canonical::to_data(&message);
            (canonical::MESSAGE_RECEIVED, data, sent_at, identity)
        }
        "message_status" => {
            let at = payload::timestamp(data, "timestamp");
            let status = MessageStatus {
                message_id: payload::text(data, "message_id"),
                status: payload::text(data, "status").map(|s| s.to_lowercase()),
                at: at.clone(),
            };
            let identity = match (&status.message_id, &status.status) {
                (Some(_), Some(_)) => Identity::content([
                    status.message_id.clone(),
                    status.status.clone(),
                    at.clone().or_else(|| payload::text(data, "timestamp")),
                ]),
                _ => Identity::body_hash(),
            };
            let data = canonical::to_data(&status);
            (canonical::MESSAGE_STATUS, data, at, identity)
        }
        other => {
            let data = canonical::unknown_type_data(other, data);
            (other, data, None, Identity::body_hash())
        }
    };
    Ok(
        MappedEvent::new(vendor_type, canonical_type, canonical_data, identity)
            .occurred_at(occurred_at),
    )
}

/// The sender as a contact; `None` when the payload names none of its fields.
fn contact(data: &Map<String, Value>) -> Option<Contact> {
    let contact = Contact {
        id: payload::text(data, "user_id"),
        name: payload::text(data, "recipient_name"),
        phone: payload::text(data, "phone_number"),
    };
    (contact != Contact::default()).then_some(contact)
}

/// `last_messages`: the array its JSON string holds, or the array itself; else `None`.
fn history(data: &Map<String, Value>) -> Option<Value> {
    match data.get("last_messages")? {
        array @ Value::Array(_) => Some(array.clone()),
        Value::String(encoded) => match encoded.parse::<Value>() {
            Ok(array @ Value::Array(_)) => Some(array),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(body: &str) -> Result<MappedEvent, MapError> {
        (PLUGIN.map_event)(&Request::from_body(body.as_bytes()))
    }

    const SEED_INCOMING: &str = r#"{"event":"incoming_message","data":{
        "last_messages":"[{\"type\":\"user\",\"content\":\"Hello!\",\"timestamp\":\"2024-03-23T21:41:44.477Z\",\"content_type\":\"text\"}]",
        "conversation_paragraph":"User (9:41:44 PM): Hello!","phone_number":"8801734363287","recipient_name":"John Doe",
        "user_id":"6fb11ff2-d9b2-4560-8437-0fe58ec9f4a6","last_message_of_user":"Hello!","last_message_of_bot":"Hi there!",
        "message_type":"text","user_timestamp":1234567890,"bot_timestamp":1234567890,
        "attachment_url":"https://api.insightssystem.com/vault/attachment.jpg"}}"#;

    #[test]
    fn incoming_message_from_the_seed_maps_to_the_canonical_type() {
        let event = map(SEED_INCOMING).unwrap();
        assert_eq!(event.canonical_type, "message.received");
        assert_eq!(event.vendor_type, "incoming_message");
        assert_eq!(event.vendor_event_id, None);
        assert_eq!(event.occurred_at.as_deref(), Some("2009-02-13T23:31:30Z"));
        assert_eq!(
            event.data,
            json!({"message_id":null,"from":"8801734363287","to":null,"text":"Hello!",
                   "media":{"url":"https://api.insightssystem.com/vault/attachment.jpg","mime_type":null,"caption":null},
                   "contact":{"id":"6fb11ff2-d9b2-4560-8437-0fe58ec9f4a6","name":"John Doe","phone":"8801734363287"},
                   "conversation_id":null,"sent_at":"2009-02-13T23:31:30Z",
                   "history":[{"type":"user","content":"Hello!","timestamp":"2024-03-23T21:41:44.477Z","content_type":"text"}]})
        );
    }

    #[test]
    fn absent_attachment_history_and_sender_are_null() {
        let event =
            map(r#"{"event":"incoming_message","data":{"last_message_of_user":"hi"}}"#).unwrap();
        assert_eq!(
            event.data,
            json!({"message_id":null,"from":null,"to":null,"text":"hi","media":null,"contact":null,
                   "conversation_id":null,"sent_at":null,"history":null})
        );
        assert_eq!(event.occurred_at, None);
    }

    #[test]
    fn last_messages_of_an_unexpected_form_is_null_or_taken_as_the_array_it_is() {
        for last_messages in [
            r#""""#,
            r#""not json""#,
            r#""{\"type\":\"user\"}""#,
            "42",
            "{}",
        ] {
            let body = format!(
                r#"{{"event":"incoming_message","data":{{"last_messages":{last_messages},"last_message_of_user":"hi"}}}}"#
            );
            let event = map(&body).unwrap();
            assert_eq!(event.data["history"], Value::Null, "{last_messages}");
            assert_eq!(event.data["text"], "hi", "{last_messages}");
        }
        let event = map(
            r#"{"event":"incoming_message","data":{"last_messages":[{"type":"user","content":"Hello!"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            event.data["history"],
            json!([{"type":"user","content":"Hello!"}])
        );
    }

    #[test]
    fn optional_fields_of_another_type_are_null() {
        let event = map(
            r#"{"event":"incoming_message","data":{"phone_number":8801734363287,"recipient_name":["x"],"user_timestamp":"soon","attachment_url":""}}"#,
        )
        .unwrap();
        assert_eq!(event.data["from"], "8801734363287");
        assert_eq!(event.data["contact"]["name"], Value::Null);
        assert_eq!(event.data["sent_at"], Value::Null);
        assert_eq!(event.data["media"], Value::Null);
    }

    #[test]
    fn identity_is_a_content_key_of_the_identifying_fields() {
        let status = |status: &str, at: &str| {
            format!(
                r#"{{"event":"message_status","data":{{"message_id":"wamid.1","status":"{status}","timestamp":"{at}"}}}}"#
            )
        };
        let delivered = map(&status("delivered", "2024-03-23T21:41:44.477Z")).unwrap();
        assert_eq!(
            delivered.identity,
            Identity::content([
                Some("wamid.1".into()),
                Some("delivered".into()),
                Some("2024-03-23T21:41:44.477Z".into())
            ])
        );
        // Another status of the same message is another event.
        let read = map(&status("read", "2024-03-23T21:41:44.477Z")).unwrap();
        assert_ne!(read.identity, delivered.identity);
        // Key order, spacing and the status's case do not matter.
        let resent = map(r#"{"data": {"timestamp": "2024-03-23T21:41:44.477Z", "status": "DELIVERED", "message_id": "wamid.1"}, "event": "message_status"}"#).unwrap();
        assert_eq!(resent.identity, delivered.identity);

        let incoming = map(SEED_INCOMING).unwrap();
        assert_eq!(
            incoming.identity,
            Identity::content([
                Some("6fb11ff2-d9b2-4560-8437-0fe58ec9f4a6".into()),
                Some("1234567890".into()),
                Some("Hello!".into())
            ])
        );
        // Without a user and a time, nothing but the whole body tells it apart.
        let bare =
            map(r#"{"event":"incoming_message","data":{"last_message_of_user":"hi"}}"#).unwrap();
        assert_eq!(bare.identity, Identity::body_hash());
        let unknown = map(r#"{"event":"message_reaction","data":{"emoji":"+1"}}"#).unwrap();
        assert_eq!(unknown.identity, Identity::body_hash());
    }

    #[test]
    fn message_status_from_the_seed_is_lower_cased() {
        let event = map(r#"{"event":"message_status","data":{"message_id":"wamid.123456789","status":"DELIVERED","timestamp":"2024-03-23T21:41:44.477Z"}}"#)
            .unwrap();
        assert_eq!(event.canonical_type, "message.status");
        assert_eq!(event.vendor_type, "message_status");
        assert_eq!(
            event.data,
            json!({"message_id":"wamid.123456789","status":"delivered","at":"2024-03-23T21:41:44.477Z"})
        );
        assert_eq!(
            event.occurred_at.as_deref(),
            Some("2024-03-23T21:41:44.477Z")
        );
    }

    #[test]
    fn no_event_ever_carries_a_vendor_event_id() {
        // Two transitions of one message share `message_id`: it must not become the event id.
        for status in ["delivered", "read"] {
            let body = format!(
                r#"{{"event":"message_status","data":{{"message_id":"wamid.1","status":"{status}"}}}}"#
            );
            assert_eq!(map(&body).unwrap().vendor_event_id, None);
        }
        assert_eq!(map(SEED_INCOMING).unwrap().vendor_event_id, None);
    }

    #[test]
    fn unknown_events_pass_through_unchanged() {
        let event = map(r#"{"event":"message_reaction","data":{"emoji":"+1"}}"#).unwrap();
        assert_eq!(event.canonical_type, "message_reaction");
        assert_eq!(event.vendor_type, "message_reaction");
        assert_eq!(event.data, json!({"emoji":"+1"}));
    }

    #[test]
    fn missing_event_is_named() {
        assert_eq!(
            map(r#"{"data":{}}"#).unwrap_err(),
            MapError::MissingField("event")
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
