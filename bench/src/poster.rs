//! What a load posts: unique deliveries of one vendor to one workspace, each request written
//! whole into a buffer the connection reuses, signed over the template's parts with a
//! pre-keyed HMAC (no allocation per request).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::payload::{Template, ID_LEN};

/// What a load posts: unique deliveries of one vendor to one workspace, signed with its secret.
pub struct Poster {
    path: String,
    /// A baseline server answers a bare 200 where switchyard answers `accepted` with an id.
    pub(crate) plain: bool,
    template: Template,
    /// Keyed once; cloned per request.
    mac: Hmac<Sha256>,
    /// Keeps ids unique across bench processes (the pid) and across the loads that share this
    /// poster (a count).
    base: u32,
    loads: AtomicU32,
}

impl Poster {
    pub fn new(workspace: &str, template: Template, secret: &str) -> Poster {
        static POSTERS: AtomicU32 = AtomicU32::new(0);
        let poster = POSTERS.fetch_add(1, Ordering::Relaxed);
        Poster {
            path: format!("/hooks/{workspace}/{}", template.vendor),
            plain: false,
            mac: Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length")),
            template,
            base: (std::process::id() << 12) ^ (poster << 6),
            loads: AtomicU32::new(0),
        }
    }

    /// Posts to `path` of a baseline server, where any 200 counts as taken.
    pub fn baseline(mut self, path: &str) -> Poster {
        self.path = path.to_owned();
        self.plain = true;
        self
    }

    /// The body size every delivery of this poster has.
    pub fn body_len(&self) -> usize {
        let (before, after) = self.template.parts();
        before.len() + ID_LEN + after.len()
    }

    /// A number no other load of this poster uses, for the event ids.
    pub(crate) fn next_load(&self) -> u32 {
        self.base ^ self.loads.fetch_add(1, Ordering::Relaxed)
    }

    /// Everything of a request before its signature: request line, host, fixed headers.
    pub(crate) fn head(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            self.path,
            self.body_len()
        );
        for (name, value) in self.template.headers {
            // The delivery id is each request's own (see `write`).
            if !is_delivery_id(name) {
                head += &format!("{name}: {value}\r\n");
            }
        }
        head.into_bytes()
    }

    /// Writes one whole request for event `id` into `out`.
    pub(crate) fn write(&self, head: &[u8], id: &[u8; ID_LEN], out: &mut Vec<u8>) {
        let (before, after) = self.template.parts();
        let mut mac = self.mac.clone();
        mac.update(before);
        mac.update(id);
        mac.update(after);
        let mut signature = [0u8; 64];
        // 32 bytes of HMAC-SHA256 are exactly 64 hex digits.
        let _ = hex::encode_to_slice(mac.finalize().into_bytes(), &mut signature);
        out.clear();
        out.extend_from_slice(head);
        out.extend_from_slice(self.template.signature_header.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(self.template.signature_prefix.as_bytes());
        out.extend_from_slice(&signature);
        out.extend_from_slice(b"\r\n");
        if let Some((name, _)) = self
            .template
            .headers
            .iter()
            .find(|(n, _)| is_delivery_id(n))
        {
            // A real vendor gives each delivery its own id.
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": dlv_");
            out.extend_from_slice(id);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(before);
        out.extend_from_slice(id);
        out.extend_from_slice(after);
    }
}

fn is_delivery_id(header: &str) -> bool {
    header.eq_ignore_ascii_case("X-Watsi-Delivery-Id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload;

    #[test]
    fn a_request_carries_the_body_and_its_signature() {
        let template = payload::watsi_of(600);
        let id = payload::event_id(1, 2, 3);
        let body = template.body(&id);
        let signature = template.signature(b"s3cret", &body);
        let poster = Poster::new("ws", payload::watsi_of(600), "s3cret");
        let head = poster.head(SocketAddr::from(([127, 0, 0, 1], 9)));
        let mut out = Vec::new();
        poster.write(&head, id.as_bytes().try_into().unwrap(), &mut out);
        let text = String::from_utf8(out).unwrap();
        let (head, sent) = text.split_once("\r\n\r\n").unwrap();
        // Every header line ends in CRLF; the split took the last one's.
        let head = format!("{head}\r\n");
        assert_eq!(sent.as_bytes(), body.as_slice());
        assert!(head.starts_with("POST /hooks/ws/watsi HTTP/1.1\r\n"));
        assert!(head.contains("content-length: 600\r\n"));
        assert!(head.contains(&format!("X-Watsi-Signature: {signature}\r\n")));
        assert!(head.contains(&format!("X-Watsi-Delivery-Id: dlv_{id}\r\n")));
    }
}
