//! AcmeChat, a template: `X-Acmechat-Signature` is the hex HMAC-SHA256 of the raw body; the body
//! is `{id, event, created_at, data}` with `message.new` and `message.read`; other events pass
//! through. `id` identifies an event, else the `X-Acmechat-Delivery` header does.

use switchyard_plugin::canonical::{MessageReceived, MessageStatus};
use switchyard_plugin::prelude::*;

pub const PLUGIN: Plugin = Plugin::new(
    "acmechat",
    env!("CARGO_PKG_VERSION"),
    Signature::hmac_sha256_hex("X-Acmechat-Signature"),
    map_event,
)
.delivery_id_header("X-Acmechat-Delivery")
.dedupe("event_id: id; delivery_id: X-Acmechat-Delivery when the body has no id")
.test_vectors(&[TestVector::body(
    r#"{"id":"evt_1","event":"message.new","data":{"text":"hi"}}"#,
    "acmechat-test-vector-secret",
    "bb68948e34930f32b93dfd26aa5fa46a6ed26e4a7e8737b77c0921bb9d9a1785",
)]);

export_plugin!(PLUGIN);

fn map_event(request: &Request<'_>) -> Result<MappedEvent, MapError> {
    let body = payload::parse_object(request.body())?;
    let vendor_type = payload::required_str(&body, "event")?;
    let event_id = payload::text(&body, "id");
    let identity = request.event_id_or_header(
        event_id.as_deref(),
        "X-Acmechat-Delivery",
        "no `id` and no X-Acmechat-Delivery",
    )?;
    let data = payload::object_or_empty(&body, "data");
    let (canonical_type, data) = match vendor_type {
        "message.new" => (
            canonical::MESSAGE_RECEIVED,
            canonical::to_data(&MessageReceived {
                message_id: payload::text(data, "id"),
                from: payload::text(data, "from"),
                text: payload::text(data, "text"),
                conversation_id: payload::text(data, "chat_id"),
                sent_at: payload::timestamp(data, "sent_at"),
                ..MessageReceived::default()
            }),
        ),
        "message.read" => (
            canonical::MESSAGE_STATUS,
            canonical::to_data(&MessageStatus {
                message_id: payload::text(data, "id"),
                status: Some("read".to_owned()),
                at: payload::timestamp(data, "read_at"),
            }),
        ),
        other => (other, canonical::unknown_type_data(other, data)),
    };
    Ok(MappedEvent::new(vendor_type, canonical_type, data, identity)
        .vendor_event_id(event_id)
        .occurred_at(payload::timestamp(&body, "created_at")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(body: &str) -> Result<MappedEvent, MapError> {
        (PLUGIN.map_event)(&Request::from_body(body.as_bytes()))
    }

    #[test]
    fn message_new_maps_to_message_received() {
        let event = map(
            r#"{"id":"evt_1","event":"message.new","created_at":1700000000,
            "data":{"id":"m1","from":"+15550001","text":"hi","sent_at":1700000000}}"#,
        )
        .unwrap();
        assert_eq!(event.canonical_type, "message.received");
        assert_eq!(event.identity, Identity::event_id("evt_1"));
        assert_eq!(event.occurred_at.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(
            event.data,
            json!({"message_id":"m1","from":"+15550001","to":null,"text":"hi","media":null,
                   "contact":null,"conversation_id":null,"sent_at":"2023-11-14T22:13:20Z","history":null})
        );
    }

    #[test]
    fn an_event_nothing_identifies_is_refused() {
        assert!(matches!(
            map(r#"{"event":"message.new"}"#),
            Err(MapError::MissingIdentity(_))
        ));
    }
}
