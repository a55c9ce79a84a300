//! Watsi: `X-Watsi-Signature` is the hex HMAC-SHA256 of the raw body; `X-Watsi-Delivery-Id`
//! names the delivery attempt; the body is `{id, type, ...}` with `message.received` and
//! `message.status`. Unknown types are passed through, as the vendor asks.
//!
//! The vendor document shows only `id` and `type`; the message fields are read from the `data`
//! object (`message_id`, `from`, `to`, `text`, `conversation_id`, `timestamp`, `media`,
//! `contact`, `status`) when present and are `null` otherwise. `occurred_at` comes from the
//! top-level `created_at` or `timestamp`.
//!
//! Identity: the document says "use event.id or X-Watsi-Delivery-Id for deduplication", so the
//! event id when the body has one, else the delivery id; a delivery with neither is refused.

use switchyard_plugin::canonical::{MessageReceived, MessageStatus};
use switchyard_plugin::prelude::*;

const DELIVERY_HEADER: &str = "X-Watsi-Delivery-Id";
/// Why a delivery with neither an event id nor a delivery id is refused.
const UNIDENTIFIED: &str = "the body has no `id` and there is no X-Watsi-Delivery-Id header";

pub const PLUGIN: Plugin = Plugin::new(
    "watsi",
    env!("CARGO_PKG_VERSION"),
    Signature::hmac_sha256_hex("X-Watsi-Signature"),
    map_event,
)
.delivery_id_header(DELIVERY_HEADER)
.dedupe("event_id: id; delivery_id: X-Watsi-Delivery-Id when the body has no id")
.test_vectors(&[TestVector::body(
    r#"{"id":"evt_01HXYZ123456789","type":"message.received","data":{"text":"hi"}}"#,
    "watsi-test-vector-secret",
    "14b882fff1a63aec1bbd5631ab344f528e4920ed573a1a432088e3877eec16cc",
)]);

export_plugin!(PLUGIN);

fn map_event(request: &Request<'_>) -> Result<MappedEvent, MapError> {
    let body = payload::parse_object(request.body())?;
    let vendor_type = payload::required_str(&body, "type")?;
    let event_id = payload::text(&body, "id");
    let identity =
        request.event_id_or_header(event_id.as_deref(), DELIVERY_HEADER, UNIDENTIFIED)?;
    let data = payload::object_or_empty(&body, "data");
    let (canonical_type, data) = match vendor_type {
        "message.received" => (
            canonical::MESSAGE_RECEIVED,
            canonical::to_data(&MessageReceived {
                message_id: payload::text(data, "message_id"),
                from: payload::text(data, "from"),
                to: payload::text(data, "to"),
                text: payload::text(data, "text"),
                media: payload::object(data, "media").map(|m| Media {
                    url: payload::text(m, "url"),
                    mime_type: payload::text(m, "mime_type"),
                    caption: payload::text(m, "caption"),
                }),
                contact: payload::object(data, "contact").map(|c| Contact {
                    id: payload::text(c, "id"),
                    name: payload::text(c, "name"),
                    phone: payload::text(c, "phone"),
                }),
                conversation_id: payload::text(data, "conversation_id"),
                sent_at: payload::timestamp(data, "timestamp"),
                history: None,
            }),
        ),
        "message.status" => (
            canonical::MESSAGE_STATUS,
            canonical::to_data(&MessageStatus {
                message_id: payload::text(data, "message_id"),
                status: payload::text(data, "status").map(|s| s.to_lowercase()),
                at: payload::timestamp(data, "timestamp"),
            }),
        ),
        other => (other, canonical::unknown_type_data(other, data)),
    };
    let occurred_at =
        payload::timestamp(&body, "created_at").or_else(|| payload::timestamp(&body, "timestamp"));
    Ok(
        MappedEvent::new(vendor_type, canonical_type, data, identity)
            .vendor_event_id(event_id)
            .occurred_at(occurred_at),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(body: &str) -> Result<MappedEvent, MapError> {
        (PLUGIN.map_event)(&Request::from_body(body.as_bytes()))
    }

    #[test]
    fn message_received_from_the_seed_maps_to_the_canonical_type() {
        let event = map(r#"{"id":"evt_01HXYZ123456789","type":"message.received","created_at":"2024-03-23T21:41:44Z",
            "data":{"message_id":"m1","from":"+15550001","to":"+15550002","text":"Hello","timestamp":"2024-03-23T21:41:40Z"}}"#)
        .unwrap();
        assert_eq!(event.canonical_type, "message.received");
        assert_eq!(event.vendor_type, "message.received");
        assert_eq!(
            event.vendor_event_id.as_deref(),
            Some("evt_01HXYZ123456789")
        );
        assert_eq!(event.occurred_at.as_deref(), Some("2024-03-23T21:41:44Z"));
        assert_eq!(
            event.data,
            json!({"message_id":"m1","from":"+15550001","to":"+15550002","text":"Hello",
                   "media":null,"contact":null,"conversation_id":null,"sent_at":"2024-03-23T21:41:40Z","history":null})
        );
        assert_eq!(event.identity, Identity::event_id("evt_01HXYZ123456789"));
    }

    #[test]
    fn status_is_lower_cased() {
        let event = map(r#"{"id":"evt_2","type":"message.status","data":{"message_id":"m1","status":"DELIVERED"}}"#)
            .unwrap();
        assert_eq!(event.canonical_type, "message.status");
        assert_eq!(
            event.data,
            json!({"message_id":"m1","status":"delivered","at":null})
        );
        assert_eq!(event.occurred_at, None);
    }

    #[test]
    fn unknown_types_pass_through_unchanged() {
        let event = map(r#"{"id":"evt_3","type":"call.missed","data":{"who":"x"}}"#).unwrap();
        assert_eq!(event.canonical_type, "call.missed");
        assert_eq!(event.vendor_type, "call.missed");
        assert_eq!(event.data, json!({"who":"x"}));
    }

    #[test]
    fn without_an_id_the_delivery_id_identifies_the_event() {
        let body = br#"{"type":"message.received","data":{"text":"hi"}}"#;
        let headers = vec![(b"x-watsi-delivery-id".as_slice(), b"dlv_1".as_slice())];
        let event = (PLUGIN.map_event)(&Request::new(headers, b"", body)).unwrap();
        assert_eq!(event.identity, Identity::delivery_id("dlv_1"));
        assert_eq!(event.vendor_event_id, None);
        // The body's id wins when there is one: it is stable across deliveries.
        let body = br#"{"id":"evt_9","type":"message.received"}"#;
        let headers = vec![(b"X-Watsi-Delivery-Id".as_slice(), b"dlv_2".as_slice())];
        let event = (PLUGIN.map_event)(&Request::new(headers, b"", body)).unwrap();
        assert_eq!(event.identity, Identity::event_id("evt_9"));
    }

    #[test]
    fn unknown_message_types_still_carry_the_message_fields() {
        let event =
            map(r#"{"id":"e","type":"message.deleted","data":{"message_id":"m9"}}"#).unwrap();
        assert_eq!(event.canonical_type, "message.deleted");
        assert_eq!(event.data["message_id"], "m9");
        assert_eq!(event.data["text"], Value::Null);
    }

    #[test]
    fn missing_identity_or_type_is_named() {
        assert_eq!(
            map(r#"{"type":"message.received"}"#).unwrap_err().to_string(),
            "the event cannot be identified: the body has no `id` and there is no X-Watsi-Delivery-Id header"
        );
        assert_eq!(
            map(r#"{"id":"e"}"#).unwrap_err(),
            MapError::MissingField("type")
        );
        assert_eq!(
            map(r#"{"id":"e","type":""}"#).unwrap_err(),
            MapError::MissingField("type")
        );
        assert!(matches!(
            map("not json").unwrap_err(),
            MapError::InvalidJson(_)
        ));
    }
}
