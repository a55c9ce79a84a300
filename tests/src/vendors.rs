//! How each vendor signs a delivery, with HMAC-SHA256 computed here rather than by the server,
//! and the secrets the standard workspaces give the vendors.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How a vendor signs a delivery, as its document (and plugin) says: hex HMAC-SHA256 of the raw
/// body in `header`, after `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorScheme {
    pub name: &'static str,
    pub header: &'static str,
    pub prefix: &'static str,
}

pub const WATSI: VendorScheme = VendorScheme {
    name: "watsi",
    header: "X-Watsi-Signature",
    prefix: "",
};
pub const WHATSABLE: VendorScheme = VendorScheme {
    name: "whatsable",
    header: "X-WhatsAble-Signature",
    prefix: "",
};
pub const WHATSSYNC: VendorScheme = VendorScheme {
    name: "whatssync",
    header: "X-Whatsync-Signature",
    prefix: "",
};
pub const WAPPCLOUD: VendorScheme = VendorScheme {
    name: "wappcloud",
    header: "X-Wappcloud-Signature",
    prefix: "sha256=",
};
pub const DOCSSMITH: VendorScheme = VendorScheme {
    name: "docssmith",
    header: "X-DocsSmith-Signature",
    prefix: "",
};
/// The `panics` loader fixture: loads fine, panics in `map_event`.
pub const PANICS: VendorScheme = VendorScheme {
    name: "panics",
    header: "X-Panics-Signature",
    prefix: "",
};

/// The five real vendors.
pub const VENDORS: [VendorScheme; 5] = [WATSI, WHATSABLE, WHATSSYNC, WAPPCLOUD, DOCSSMITH];

impl VendorScheme {
    /// The signature header's value for `body` under `secret`.
    pub fn signature(&self, secret: &str, body: &[u8]) -> String {
        format!(
            "{}{}",
            self.prefix,
            hmac_sha256_hex(secret.as_bytes(), body)
        )
    }
}

/// Hex HMAC-SHA256, computed here rather than by the server's code.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The secrets the standard workspaces give a vendor: `n` is 1 (current) or 2 (rotated).
pub fn secret(workspace: &str, vendor: &str, n: u32) -> String {
    format!("{workspace}-{vendor}-secret-{n}")
}
