//! Realistic ~1 KB deliveries, one per vendor. Each is the sample its vendor's document shows
//! (/work/shared/seeds, the same shapes the end-to-end tests use), with the message text grown
//! to customer-support prose until the body is exactly [`TARGET_BYTES`] long (or the size a
//! scenario asks for).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The size every benchmark body is padded to.
pub const TARGET_BYTES: usize = 1024;

/// Where the event id goes in a template.
const ID: &str = "{ID}";
/// Where the padding prose goes in a template.
const TEXT: &str = "{TEXT}";

/// What a customer writes to a support line: no quotes or backslashes, so it is valid inside a
/// JSON string (and inside WhatsAble's JSON-in-a-JSON-string).
const PROSE: &str = "Hi, I ordered the blue running shoes last Tuesday and the tracking page \
    still says the parcel is waiting at the depot. Could you check whether it was sent to my \
    old address on Baker Street? I moved two weeks ago and updated my profile, but I am not \
    sure the change reached your warehouse in time. If it is easier, I can pick it up from the \
    depot myself this Saturday morning; just tell me which documents to bring. Also, the app \
    keeps asking me to confirm my phone number every time I open it, is that expected? Thanks \
    a lot for your help, and sorry for the long message. ";

/// One vendor's delivery: a body template with `{ID}` (the event id) and the headers it needs
/// besides the signature.
pub struct Template {
    pub vendor: &'static str,
    /// The signature header the vendor sends: hex HMAC-SHA256 of the raw body after `prefix`.
    pub signature_header: &'static str,
    pub signature_prefix: &'static str,
    /// Other headers the plugin reads (event type, delivery id).
    pub headers: &'static [(&'static str, &'static str)],
    /// The canonical type the plugin must map it to.
    pub canonical_type: &'static str,
    /// The body before `{ID}` and after it, already padded.
    before_id: String,
    after_id: String,
}

/// The five vendors' message deliveries, from their seed documents, [`TARGET_BYTES`] each.
pub fn templates() -> Vec<Template> {
    templates_of(TARGET_BYTES)
}

/// The five vendors' message deliveries, padded to `len` bytes (or as short as the sample
/// allows).
fn templates_of(len: usize) -> Vec<Template> {
    vec![
        // 000: Watsi, `{id, type, ...}`, `X-Watsi-Signature` = hex HMAC of the body.
        Template::new(
            "watsi",
            "X-Watsi-Signature",
            "",
            &[("X-Watsi-Delivery-Id", "dlv_01HXYZ7Q3N4B8V2C6D9F0G1H2J")],
            "message.received",
            len,
            r#"{"id":"{ID}","type":"message.received","created_at":"2024-03-23T21:41:44Z","data":{"message_id":"wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzQTk","from":"+15550001111","to":"+15550002222","text":"{TEXT}","conversation_id":"conv_01HXYZ5K3M","timestamp":"2024-03-23T21:41:40Z","media":{"url":"https://cdn.watsi.ai/m/01HXYZ5K3M.jpg","mime_type":"image/jpeg","caption":"the depot slip"},"contact":{"id":"c_01HXYZ5K3M","name":"Ada Lovelace","phone":"+15550001111"}}}"#,
        ),
        // 001: WhatsAble, `{event, data}`; `last_messages` is JSON inside a JSON string.
        Template::new(
            "whatsable",
            "X-WhatsAble-Signature",
            "",
            &[],
            "message.received",
            len,
            r#"{"event":"incoming_message","data":{"last_messages":"[{\"type\":\"user\",\"content\":\"Hello!\",\"timestamp\":\"2024-03-23T21:41:44.477Z\",\"content_type\":\"text\"}]","conversation_paragraph":"User (9:41:44 PM): {TEXT}","phone_number":"8801734363287","recipient_name":"John Doe","user_id":"{ID}","last_message_of_user":"Hello!","last_message_of_bot":"Hi there!","message_type":"text","user_timestamp":1711230104,"bot_timestamp":1711230100,"attachment_url":"https://api.insightssystem.com/vault/attachment.jpg"}}"#,
        ),
        // 002: WhatsSync, `{event, id, timestamp, data}`.
        Template::new(
            "whatssync",
            "X-Whatsync-Signature",
            "",
            &[],
            "message.received",
            len,
            r#"{"event":"message.incoming","id":"{ID}","timestamp":"2023-06-15T14:22:33Z","data":{"from":"+1234567890","to":"+0987654321","text":"{TEXT}","media":null,"timestamp":"2023-06-15T14:22:30Z"}}"#,
        ),
        // 004: Wappcloud, the event name in `X-Wappcloud-Event`, `sha256=<hex>`.
        Template::new(
            "wappcloud",
            "X-Wappcloud-Signature",
            "sha256=",
            &[("X-Wappcloud-Event", "incoming_message")],
            "message.received",
            len,
            r#"{"id":"{ID}","from":"+15550001","to":"+15550002","text":"{TEXT}","timestamp":1700000000}"#,
        ),
        // 003: DocsSmith, `{id, type, payload}`.
        Template::new(
            "docssmith",
            "X-DocsSmith-Signature",
            "",
            &[],
            "message.created",
            len,
            r#"{"id":"{ID}","type":"message.created","payload":{"id":"SIuAFUNKdSYHZF2w","conversation_id":"xgQQXg3hrtjh7AvZ","contact":{"id":"WAz8eIbvDR60rouK","username":"KevinMcCallister","phone_number":"1-800-759-3000","avatar_url":"https://assets.docssmith.chat/avatars/kevin.jpg","last_active_at":705103200,"created_at":692233200},"message":"{TEXT}","reactions":[],"attachments":[],"read_at":705103200,"created_at":692233200,"updated_at":692233200}}"#,
        ),
    ]
}

/// The Watsi template: what the server scenarios post.
pub fn watsi() -> Template {
    watsi_of(TARGET_BYTES)
}

/// The Watsi template padded to `len` bytes (the issue's sustained-load figures use 600).
pub fn watsi_of(len: usize) -> Template {
    templates_of(len)
        .into_iter()
        .find(|t| t.vendor == "watsi")
        .unwrap_or_else(|| unreachable!("templates() has watsi"))
}

impl Template {
    fn new(
        vendor: &'static str,
        signature_header: &'static str,
        signature_prefix: &'static str,
        headers: &'static [(&'static str, &'static str)],
        canonical_type: &'static str,
        len: usize,
        json: &str,
    ) -> Template {
        let (before_id, after_id) = json
            .split_once(ID)
            .unwrap_or_else(|| unreachable!("every template has {ID}"));
        let padding = len.saturating_sub(json.len() - ID.len() - TEXT.len() + ID_LEN);
        let text = prose(padding);
        Template {
            vendor,
            signature_header,
            signature_prefix,
            headers,
            canonical_type,
            before_id: before_id.replace(TEXT, &text),
            after_id: after_id.replace(TEXT, &text),
        }
    }

    /// The body around the event id: what comes before it and what comes after.
    pub fn parts(&self) -> (&[u8], &[u8]) {
        (self.before_id.as_bytes(), self.after_id.as_bytes())
    }

    /// The body with `id` in place: the template's size when `id` is [`ID_LEN`] long.
    pub fn body(&self, id: &str) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.before_id.len() + id.len() + self.after_id.len());
        body.extend_from_slice(self.before_id.as_bytes());
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(self.after_id.as_bytes());
        body
    }

    /// The signature header's value for `body` under `secret`, computed here, independently of
    /// the server's code.
    pub fn signature(&self, secret: &[u8], body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("any length"));
        mac.update(body);
        format!(
            "{}{}",
            self.signature_prefix,
            hex::encode(mac.finalize().into_bytes())
        )
    }
}

/// Every event id the bench makes has this length, so every body has the same size.
pub const ID_LEN: usize = 28;

/// A unique event id of [`ID_LEN`] characters: `evt_` + run + client + sequence number.
pub fn event_id(run: u32, client: u32, seq: u64) -> String {
    let mut id = [0; ID_LEN];
    write_event_id(&mut id, run, client, seq);
    String::from_utf8_lossy(&id).into_owned()
}

/// [`event_id`] written in place, for the load client's hot loop (no allocation).
pub fn write_event_id(out: &mut [u8; ID_LEN], run: u32, client: u32, seq: u64) {
    use std::io::Write;
    let mut rest: &mut [u8] = out;
    // Exactly ID_LEN bytes: the numbers are reduced to their field widths.
    let _ = write!(
        rest,
        "evt_{run:08x}{:04}{:012}",
        client % 10_000,
        seq % 1_000_000_000_000
    );
    debug_assert!(rest.is_empty());
}

/// `len` bytes of [`PROSE`], repeated as needed.
pub fn prose(len: usize) -> String {
    PROSE.chars().cycle().take(len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_1_kib_of_json() {
        for t in templates() {
            let body = t.body(&event_id(7, 3, 42));
            assert_eq!(body.len(), TARGET_BYTES, "{}", t.vendor);
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(value.is_object(), "{}", t.vendor);
        }
    }

    #[test]
    fn watsi_comes_in_the_sustained_load_size() {
        let body = watsi_of(600).body(&event_id(1, 2, 3));
        assert_eq!(body.len(), 600);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    }

    #[test]
    fn ids_have_a_fixed_length() {
        assert_eq!(event_id(0, 0, 0).len(), ID_LEN);
        assert_eq!(event_id(u32::MAX, 9999, 999_999_999_999).len(), ID_LEN);
    }
}
