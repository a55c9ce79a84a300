//! WhatsSync: `X-Whatsync-Signature` is the hex HMAC-SHA256 of the raw body. The header keeps the
//! vendor's own spelling, `whatsync` with one "s" unlike the product's name; header names are
//! case-insensitive, so it matches the `x-whatsync-signature` the vendor sends. The MAC is checked
//! over the raw body bytes, never a re-serialised body: the vendor's sample verifies
//! `JSON.stringify(req.body)`, which stops matching as soon as spacing, key order or number
//! formatting differ from the bytes that were signed.
//!
//! The body is `{event, id, timestamp, data}`: `id` is the event id (the vendor retries, so it is
//! the identity, and a body without one is refused) and `timestamp` is when the event happened. `message.incoming`,
//! `message.status`, `contact.update` and `media.upload` map to `message.received`,
//! `message.status`, `contact.updated` and `media.uploaded`; other events pass through. `data`
//! is camelCase (`messageId`, `contactId`, `mediaUrl`, `mimeType`).
//!
//! The document only ever shows an incoming message's `media` as `null`. When it is an object,
//! its `url` (or `mediaUrl`), `mimeType` (or `mime_type`) and `caption` are read; an object with
//! none of them is `null`.

use switchyard_plugin::canonical::{ContactUpdated, MediaUploaded, MessageReceived, MessageStatus};
use switchyard_plugin::prelude::*;

pub const PLUGIN: Plugin = Plugin::new(
    "whatssync",
    env!("CARGO_PKG_VERSION"),
    Signature::hmac_sha256_hex("X-Whatsync-Signature"),
    map_event,
)
.dedupe("event_id: id")
.test_vectors(&[TestVector::body(
    r#"{"event":"message.incoming","id":"msg_123456789","timestamp":"2023-06-15T14:22:33Z","data":{"from":"+1234567890","to":"+0987654321","text":"Hello, how are you?","media":null,"timestamp":"2023-06-15T14:22:30Z"}}"#,
    "whatssync-test-vector-secret",
    "09048069ecbe44a0252ade169db0140d7b7c9533d10a0bb9c928e9bff91d4f55",
)]);

export_plugin!(PLUGIN);

fn map_event(request: &Request<'_>) -> Result<MappedEvent, MapError> {
    let body = payload::parse_object(request.body())?;
    let vendor_type = payload::required_str(&body, "event")?;
    let event_id = payload::required_str(&body, "id")?.to_owned();
    let data = payload::object_or_empty(&body, "data");
    let (canonical_type, canonical_data) = match vendor_type {
        "message.incoming" => (
            canonical::MESSAGE_RECEIVED,
            canonical::to_data(&MessageReceived {
                message_id: None,
                from: payload::text(data, "from"),
                to: payload::text(data, "to"),
                text: payload::text(data, "text"),
                media: incoming_media(data),
                contact: None,
                conversation_id: None,
                sent_at: payload::timestamp(data, "timestamp"),
                history: None,
            }),
        ),
        "message.status" => (
            canonical::MESSAGE_STATUS,
            canonical::to_data(&MessageStatus {
                message_id: payload::text(data, "messageId"),
                status: payload::text(data, "status").map(|s| s.to_lowercase()),
                at: payload::timestamp(data, "timestamp"),
            }),
        ),
        "contact.update" => (
            canonical::CONTACT_UPDATED,
            canonical::to_data(&ContactUpdated {
                contact: Contact {
                    id: payload::text(data, "contactId"),
                    name: payload::text(data, "name"),
                    phone: payload::text(data, "phone"),
                },
            }),
        ),
        "media.upload" => (
            canonical::MEDIA_UPLOADED,
            canonical::to_data(&MediaUploaded {
                message_id: payload::text(data, "messageId"),
                media: Media {
                    url: payload::text(data, "mediaUrl"),
                    mime_type: payload::text(data, "mimeType"),
                    caption: payload::text(data, "caption"),
                },
            }),
        ),
        other => (other, canonical::unknown_type_data(other, data)),
    };
    let identity = Identity::event_id(&event_id);
    Ok(
        MappedEvent::new(vendor_type, canonical_type, canonical_data, identity)
            .vendor_event_id(Some(event_id))
            .occurred_at(payload::timestamp(&body, "timestamp")),
    )
}

/// An incoming message's `media`, whose object form the document never shows.
fn incoming_media(data: &Map<String, Value>) -> Option<Media> {
    let m = payload::object(data, "media")?;
    let media = Media {
        url: payload::text(m, "url").or_else(|| payload::text(m, "mediaUrl")),
        mime_type: payload::text(m, "mimeType").or_else(|| payload::text(m, "mime_type")),
        caption: payload::text(m, "caption"),
    };
    (media != Media::default()).then_some(media)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(body: &str) -> Result<MappedEvent, MapError> {
        (PLUGIN.map_event)(&Request::from_body(body.as_bytes()))
    }

    #[test]
    fn message_incoming_from_the_seed_maps_to_the_canonical_type() {
        let event = map(r#"{"event":"message.incoming","id":"msg_123456789","timestamp":"2023-06-15T14:22:33Z",
            "data":{"from":"+1234567890","to":"+0987654321","text":"Hello, how are you?","media":null,"timestamp":"2023-06-15T14:22:30Z"}}"#)
        .unwrap();
        assert_eq!(event.canonical_type, "message.received");
        assert_eq!(event.vendor_type, "message.incoming");
        assert_eq!(event.vendor_event_id.as_deref(), Some("msg_123456789"));
        assert_eq!(event.occurred_at.as_deref(), Some("2023-06-15T14:22:33Z"));
        assert_eq!(
            event.data,
            json!({"message_id":null,"from":"+1234567890","to":"+0987654321","text":"Hello, how are you?",
                   "media":null,"contact":null,"conversation_id":null,"sent_at":"2023-06-15T14:22:30Z","history":null})
        );
        assert_eq!(event.identity, Identity::event_id("msg_123456789"));
    }

    #[test]
    fn media_objects_are_read_and_empty_ones_are_null() {
        let event = map(r#"{"event":"message.incoming","id":"e1",
            "data":{"media":{"url":"https://media.whatsync.io/1.jpg","mimeType":"image/jpeg","caption":"look"}}}"#)
        .unwrap();
        assert_eq!(
            event.data["media"],
            json!({"url":"https://media.whatsync.io/1.jpg","mime_type":"image/jpeg","caption":"look"})
        );
        let event =
            map(r#"{"event":"message.incoming","id":"e2","data":{"media":{"size":5}}}"#).unwrap();
        assert_eq!(event.data["media"], Value::Null);
        let event =
            map(r#"{"event":"message.incoming","id":"e3","data":{"media":"x.jpg"}}"#).unwrap();
        assert_eq!(event.data["media"], Value::Null);
    }

    #[test]
    fn message_status_from_the_seed_is_lower_cased() {
        let event = map(r#"{"event":"message.status","id":"status_123456789","timestamp":"2023-06-15T14:23:45Z",
            "data":{"messageId":"msg_987654321","status":"READ","timestamp":"2023-06-15T14:23:40Z"}}"#)
        .unwrap();
        assert_eq!(event.canonical_type, "message.status");
        assert_eq!(event.vendor_event_id.as_deref(), Some("status_123456789"));
        assert_eq!(event.occurred_at.as_deref(), Some("2023-06-15T14:23:45Z"));
        assert_eq!(
            event.data,
            json!({"message_id":"msg_987654321","status":"read","at":"2023-06-15T14:23:40Z"})
        );
    }

    #[test]
    fn contact_update_from_the_seed_maps_to_contact_updated() {
        let event = map(r#"{"event":"contact.update","id":"contact_update_123456789","timestamp":"2023-06-15T15:30:00Z",
            "data":{"contactId":"contact_123456","phone":"+1234567890","name":"John Doe","profileImage":"https://example.com/profile.jpg"}}"#)
        .unwrap();
        assert_eq!(event.canonical_type, "contact.updated");
        assert_eq!(event.vendor_type, "contact.update");
        assert_eq!(event.occurred_at.as_deref(), Some("2023-06-15T15:30:00Z"));
        assert_eq!(
            event.data,
            json!({"contact":{"id":"contact_123456","name":"John Doe","phone":"+1234567890"}})
        );
    }

    #[test]
    fn media_upload_from_the_seed_maps_to_media_uploaded() {
        let event = map(r#"{"event":"media.upload","id":"media_123456789","timestamp":"2023-06-15T16:45:20Z",
            "data":{"messageId":"msg_123456","mediaType":"image","mediaUrl":"https://media.whatsync.io/123456.jpg",
                    "mimeType":"image/jpeg","caption":"Check out this photo"}}"#)
        .unwrap();
        assert_eq!(event.canonical_type, "media.uploaded");
        assert_eq!(event.vendor_type, "media.upload");
        assert_eq!(event.vendor_event_id.as_deref(), Some("media_123456789"));
        assert_eq!(
            event.data,
            json!({"message_id":"msg_123456","media":{"url":"https://media.whatsync.io/123456.jpg",
                   "mime_type":"image/jpeg","caption":"Check out this photo"}})
        );
    }

    #[test]
    fn unknown_events_pass_through_unchanged() {
        let event = map(r#"{"event":"group.join","id":"e4","data":{"groupId":"g1"}}"#).unwrap();
        assert_eq!(event.canonical_type, "group.join");
        assert_eq!(event.vendor_type, "group.join");
        assert_eq!(event.data, json!({"groupId":"g1"}));
        assert_eq!(event.occurred_at, None);
    }

    #[test]
    fn optional_fields_of_another_type_are_null() {
        let event = map(r#"{"event":"message.status","id":"s1","data":{"messageId":["m"],"status":7,"timestamp":""}}"#)
            .unwrap();
        assert_eq!(
            event.data,
            json!({"message_id":null,"status":"7","at":null})
        );
        let event =
            map(r#"{"event":"message.incoming","id":"s2","data":"not an object"}"#).unwrap();
        assert_eq!(event.data["text"], Value::Null);
    }

    #[test]
    fn missing_event_or_id_is_named() {
        assert_eq!(
            map(r#"{"id":"e5"}"#).unwrap_err(),
            MapError::MissingField("event")
        );
        assert_eq!(
            map(r#"{"event":"message.status"}"#).unwrap_err(),
            MapError::MissingField("id")
        );
        assert!(matches!(
            map("not json").unwrap_err(),
            MapError::InvalidJson(_)
        ));
    }

    #[test]
    fn the_signature_header_keeps_the_vendors_spelling() {
        assert!(PLUGIN
            .signature
            .header
            .eq_ignore_ascii_case("x-whatsync-signature"));
    }

    #[test]
    fn the_test_vector_body_maps() {
        for vector in PLUGIN.test_vectors {
            map(vector.body).unwrap();
        }
    }
}
