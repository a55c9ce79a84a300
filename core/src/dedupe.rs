//! Repeat detection: which key a delivery is known by. The first-seen decision is the store's
//! commit writer's, made atomically for a whole batch (see [`crate::store`]).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::names::{VendorName, WorkspaceId};

/// What a repeat check keyed the delivery on, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DedupeBasis {
    /// The vendor's own event id from the payload: stable across every retry.
    EventId,
    /// The vendor's delivery-id header: stable across retries of one delivery.
    DeliveryId,
    /// SHA-256 of the raw body: vendors retry with the same bytes.
    BodyHash,
}

impl DedupeBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            DedupeBasis::EventId => "event_id",
            DedupeBasis::DeliveryId => "delivery_id",
            DedupeBasis::BodyHash => "body_hash",
        }
    }
}

/// `workspace/vendor/basis:value`: scoped so one workspace's events never collide with another's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DedupeKey(String);

impl DedupeKey {
    /// Picks the best basis the delivery offers.
    pub fn derive(
        workspace: &WorkspaceId,
        vendor: &VendorName,
        vendor_event_id: Option<&str>,
        delivery_id: Option<&str>,
        body: &[u8],
    ) -> (DedupeKey, DedupeBasis) {
        let (basis, value) = match (
            vendor_event_id.filter(|s| !s.is_empty()),
            delivery_id.filter(|s| !s.is_empty()),
        ) {
            (Some(id), _) => (DedupeBasis::EventId, id.to_owned()),
            (None, Some(id)) => (DedupeBasis::DeliveryId, id.to_owned()),
            (None, None) => (DedupeBasis::BodyHash, hex::encode(Sha256::digest(body))),
        };
        let key = format!("{workspace}/{vendor}/{}:{value}", basis.as_str());
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

/// Milliseconds since the Unix epoch.
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (WorkspaceId, VendorName) {
        (WorkspaceId::new("acme"), VendorName::new("watsi"))
    }

    #[test]
    fn basis_prefers_event_id_then_delivery_id_then_body_hash() {
        let (ws, v) = names();
        let (k, b) = DedupeKey::derive(&ws, &v, Some("evt_1"), Some("d1"), b"{}");
        assert_eq!(
            (k.as_str(), b),
            ("acme/watsi/event_id:evt_1", DedupeBasis::EventId)
        );
        let (k, b) = DedupeKey::derive(&ws, &v, None, Some("d1"), b"{}");
        assert_eq!(
            (k.as_str(), b),
            ("acme/watsi/delivery_id:d1", DedupeBasis::DeliveryId)
        );
        let (k, b) = DedupeKey::derive(&ws, &v, Some(""), None, b"{}");
        assert_eq!(b, DedupeBasis::BodyHash);
        assert_eq!(
            k.as_str(),
            "acme/watsi/body_hash:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn workspaces_do_not_share_keys() {
        let v = VendorName::new("watsi");
        let a = DedupeKey::derive(&WorkspaceId::new("a"), &v, Some("e"), None, b"").0;
        let b = DedupeKey::derive(&WorkspaceId::new("b"), &v, Some("e"), None, b"").0;
        assert_ne!(a, b);
    }
}
