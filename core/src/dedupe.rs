//! Repeat detection: which key a delivery is known by, and the first-seen decision over the
//! dedupe index. The index lives in the store; this module decides what its entries mean.
//!
//! Index entry: dedupe key -> `expires_at` (u64 ms, big-endian) + the first event's id.
//! Expiry index: `expires_at` (big-endian) + dedupe key -> (), so the sweeper walks only what
//! has expired, oldest first, without scanning the whole index.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::envelope::EventId;
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

/// The first-seen decision for one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstSeen {
    New,
    /// Seen inside the window; the first delivery's event id.
    Duplicate(EventId),
}

/// An index entry: when it expires and which event first claimed the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub expires_at_ms: u64,
    pub event_id: EventId,
}

impl Claim {
    pub fn new(event_id: EventId, window: Duration, now: SystemTime) -> Claim {
        Claim {
            expires_at_ms: millis(now).saturating_add(window.as_millis() as u64),
            event_id,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.expires_at_ms.to_be_bytes().to_vec();
        out.extend_from_slice(self.event_id.to_string().as_bytes());
        out
    }

    /// `None` for an entry this version cannot read (treated as absent, so the key is reclaimed).
    pub fn decode(bytes: &[u8]) -> Option<Claim> {
        let (at, id) = bytes.split_first_chunk::<8>()?;
        Some(Claim {
            expires_at_ms: u64::from_be_bytes(*at),
            event_id: EventId::parse(std::str::from_utf8(id).ok()?)?,
        })
    }

    /// What an existing entry means for a new delivery at `now`.
    pub fn decide(existing: Option<&[u8]>, now: SystemTime) -> FirstSeen {
        match existing.and_then(Claim::decode) {
            Some(claim) if claim.expires_at_ms > millis(now) => {
                FirstSeen::Duplicate(claim.event_id)
            }
            _ => FirstSeen::New,
        }
    }

    /// The expiry-index key for this claim.
    pub fn expiry_key(&self, key: &DedupeKey) -> Vec<u8> {
        let mut out = self.expires_at_ms.to_be_bytes().to_vec();
        out.extend_from_slice(key.as_bytes());
        out
    }
}

/// Milliseconds since the Unix epoch.
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Splits an expiry-index key into its expiry and dedupe key.
pub fn split_expiry_key(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (at, key) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*at), key))
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

    #[test]
    fn a_claim_is_a_duplicate_until_it_expires() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let id = EventId::generate();
        let claim = Claim::new(id.clone(), Duration::from_secs(60), now);
        let bytes = claim.encode();
        assert_eq!(Claim::decode(&bytes), Some(claim));
        assert_eq!(Claim::decide(Some(&bytes), now), FirstSeen::Duplicate(id));
        assert_eq!(
            Claim::decide(Some(&bytes), now + Duration::from_secs(61)),
            FirstSeen::New
        );
        assert_eq!(Claim::decide(None, now), FirstSeen::New);
        assert_eq!(Claim::decide(Some(b"junk"), now), FirstSeen::New);
    }
}
