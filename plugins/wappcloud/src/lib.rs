//! Wappcloud: one URL for both methods. A GET `?challenge=v` validates the URL and must be answered
//! 200 `{"challenge":"v"}` exactly; the core does that from the handshake declared here. A POST
//! carries the event name in `X-Wappcloud-Event` (`incoming_message`, `status_update`) and
//! `X-Wappcloud-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
//!
//! The document does not describe the body ("structure depends on the event type"), so this plugin
//! assumes as little as it can. The event type is the body's own top-level `event` when it has
//! one, because the signature covers the body and not the `X-Wappcloud-Event` header; else the
//! header; else a top-level `type`. A body and a header that disagree are refused: one of them
//! was altered. Message fields are read from the body's `data` object when it has one, else from
//! the body itself, and only from keys that exist: `message_id` (or `id`, for an incoming
//! message), `from`, `to`, `text`, `timestamp`, and `status` for a status update; everything else
//! is `null`. A top-level `id` is taken as the event id and identifies the event; without one the
//! identity is the hash of the body's canonical JSON.

use switchyard_plugin::canonical::{MessageReceived, MessageStatus};
use switchyard_plugin::prelude::*;

const EVENT_HEADER: &str = "X-Wappcloud-Event";

pub const PLUGIN: Plugin = Plugin::new(
    "wappcloud",
    env!("CARGO_PKG_VERSION"),
    Signature::hmac_sha256_hex("X-Wappcloud-Signature").with_prefix("sha256="),
    map_event,
)
.event_type_header(EVENT_HEADER)
.handshake(Handshake::EchoQuery {
    param: "challenge",
    field: "challenge",
    max_len: 1024,
})
.dedupe("event_id: id; else body_hash")
.test_vectors(&[TestVector::body(
    r#"{"id":"evt_1","from":"+15550001","text":"hi"}"#,
    "wappcloud-test-vector-secret",
    "sha256=a19079485cc226bd22c68a2eb8416f6552bd15a371a05ffd6f7ee6ebd749ebd7",
)]);

export_plugin!(PLUGIN);

fn map_event(request: &Request<'_>) -> Result<MappedEvent, MapError> {
    let body = payload::parse_object(request.body())?;
    let vendor_type = event_type(request, &body)?;
    let fields = payload::object(&body, "data").unwrap_or(&body);
    let (canonical_type, canonical_data) = match vendor_type.as_str() {
        "incoming_message" => (
            canonical::MESSAGE_RECEIVED,
            canonical::to_data(&MessageReceived {
                message_id: payload::text(fields, "message_id")
                    .or_else(|| payload::text(fields, "id")),
                from: payload::text(fields, "from"),
                to: payload::text(fields, "to"),
                text: payload::text(fields, "text"),
                media: None,
                contact: None,
                conversation_id: None,
                sent_at: payload::timestamp(fields, "timestamp"),
                history: None,
            }),
        ),
        "status_update" => (
            canonical::MESSAGE_STATUS,
            canonical::to_data(&MessageStatus {
                message_id: payload::text(fields, "message_id"),
                status: payload::text(fields, "status").map(|s| s.to_lowercase()),
                at: payload::timestamp(fields, "timestamp"),
            }),
        ),
        other => (other, canonical::unknown_type_data(other, fields)),
    };
    let occurred_at =
        payload::timestamp(fields, "timestamp").or_else(|| payload::timestamp(&body, "timestamp"));
    let vendor_event_id = payload::text(&body, "id");
    let identity = vendor_event_id
        .as_ref()
        .map_or_else(Identity::body_hash, Identity::event_id);
    Ok(MappedEvent::new(
        vendor_type.as_str(),
        canonical_type,
        canonical_data,
        identity,
    )
    .vendor_event_id(vendor_event_id)
    .occurred_at(occurred_at))
}

/// The signed body's `event`, else the unsigned header, else the body's `type`; a body and a
/// header that name different types are refused.
fn event_type(request: &Request<'_>, body: &Map<String, Value>) -> Result<String, MapError> {
    let header = request.header(EVENT_HEADER).filter(|t| !t.is_empty());
    match (payload::text(body, "event"), header) {
        (Some(signed), Some(unsigned)) if signed != unsigned => Err(MapError::Other(format!(
            "the signed body's `event` is {signed:?} but the unsigned {EVENT_HEADER} header says \
             {unsigned:?}; refusing to guess which is true"
        ))),
        (Some(signed), _) => Ok(signed),
        (None, Some(unsigned)) => Ok(unsigned.to_owned()),
        (None, None) => payload::text(body, "type").ok_or(MapError::MissingField(EVENT_HEADER)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(event: &str, body: &str) -> Result<MappedEvent, MapError> {
        let headers = vec![(b"x-wappcloud-event".as_slice(), event.as_bytes())];
        (PLUGIN.map_event)(&Request::new(headers, b"", body.as_bytes()))
    }

    fn map_without_header(body: &str) -> Result<MappedEvent, MapError> {
        (PLUGIN.map_event)(&Request::from_body(body.as_bytes()))
    }

    #[test]
    fn incoming_message_takes_its_type_from_the_header() {
        let event = map(
            "incoming_message",
            r#"{"id":"evt_1","from":"+15550001","to":"+15550002","text":"hi","timestamp":1700000000}"#,
        )
        .unwrap();
        assert_eq!(event.canonical_type, "message.received");
        assert_eq!(event.vendor_type, "incoming_message");
        assert_eq!(event.vendor_event_id.as_deref(), Some("evt_1"));
        assert_eq!(event.identity, Identity::event_id("evt_1"));
        assert_eq!(event.occurred_at.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(
            event.data,
            json!({"message_id":"evt_1","from":"+15550001","to":"+15550002","text":"hi",
                   "media":null,"contact":null,"conversation_id":null,"sent_at":"2023-11-14T22:13:20Z","history":null})
        );
    }

    #[test]
    fn fields_are_read_from_a_data_object_when_there_is_one() {
        let event = map(
            "incoming_message",
            r#"{"timestamp":"2024-01-02T03:04:05Z","data":{"message_id":"m1","from":"+15550001","text":"hey"}}"#,
        )
        .unwrap();
        assert_eq!(event.vendor_event_id, None);
        assert_eq!(event.identity, Identity::body_hash());
        assert_eq!(event.occurred_at.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(
            event.data,
            json!({"message_id":"m1","from":"+15550001","to":null,"text":"hey",
                   "media":null,"contact":null,"conversation_id":null,"sent_at":null,"history":null})
        );
    }

    #[test]
    fn status_update_is_lower_cased_and_never_takes_the_event_id_as_message_id() {
        let event = map(
            "status_update",
            r#"{"id":"evt_2","message_id":"m1","status":"READ","timestamp":"2024-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        assert_eq!(event.canonical_type, "message.status");
        assert_eq!(
            event.data,
            json!({"message_id":"m1","status":"read","at":"2024-01-02T03:04:05Z"})
        );
        let event = map("status_update", r#"{"id":"evt_3","status":"sent"}"#).unwrap();
        assert_eq!(
            event.data,
            json!({"message_id":null,"status":"sent","at":null})
        );
    }

    #[test]
    fn the_signed_body_wins_and_a_disagreeing_header_is_refused() {
        let body = r#"{"event":"status_update","type":"other","status":"sent"}"#;
        let refused = map("incoming_message", body).unwrap_err().to_string();
        assert!(
            refused.contains(r#"`event` is "status_update""#)
                && refused.contains(r#"header says "incoming_message""#),
            "{refused}"
        );
        assert_eq!(
            map("status_update", body).unwrap().canonical_type,
            "message.status"
        );
        assert_eq!(
            map_without_header(body).unwrap().canonical_type,
            "message.status"
        );
        // A body `type` (a message type, perhaps) does not contradict the header.
        assert_eq!(
            map("incoming_message", r#"{"type":"text"}"#)
                .unwrap()
                .vendor_type,
            "incoming_message"
        );
        let event = map_without_header(r#"{"type":"incoming_message","text":"hi"}"#).unwrap();
        assert_eq!(event.canonical_type, "message.received");
        assert_eq!(
            map("", r#"{"event":"status_update"}"#).unwrap().vendor_type,
            "status_update"
        );
    }

    #[test]
    fn a_missing_event_type_names_the_header() {
        assert_eq!(
            map_without_header(r#"{"text":"hi"}"#).unwrap_err(),
            MapError::MissingField("X-Wappcloud-Event")
        );
        assert!(matches!(
            map("incoming_message", "not json").unwrap_err(),
            MapError::InvalidJson(_)
        ));
    }

    #[test]
    fn unknown_events_pass_through_with_the_payload_as_data() {
        let event = map("template_approved", r#"{"id":7,"template":"welcome"}"#).unwrap();
        assert_eq!(event.canonical_type, "template_approved");
        assert_eq!(event.vendor_type, "template_approved");
        // A numeric id is an id all the same.
        assert_eq!(event.vendor_event_id.as_deref(), Some("7"));
        assert_eq!(event.data, json!({"id":7,"template":"welcome"}));
    }

    #[test]
    fn the_handshake_echoes_the_challenge() {
        assert!(matches!(
            PLUGIN.handshake,
            Handshake::EchoQuery {
                param: "challenge",
                field: "challenge",
                ..
            }
        ));
    }

    #[test]
    fn the_test_vector_body_maps() {
        for vector in PLUGIN.test_vectors {
            map("incoming_message", vector.body).unwrap();
        }
    }
}
