//! A library's test vectors (a definition proves its own: `definition/prove.rs`), proved at load time: a body, a secret and the header value the
//! vendor would send, checked with the same code that checks deliveries.

use std::time::{Duration, UNIX_EPOCH};

use hyper::header::{HeaderMap, HeaderValue};

use super::{loader, VendorPlugin};
use crate::base::names::Secret;
use crate::event::verify::{SignatureScheme, Signed};

impl VendorPlugin {
    /// Proves one of the plugin's test vectors with the core's own HMAC code: the plugin and
    /// the core must agree on what a signature over its body is.
    pub(super) fn check_vector(
        &self,
        scheme: &SignatureScheme,
        v: &loader::LoadedVector,
    ) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&v.expected).map_err(|_| "not a header value")?;
        headers.insert(scheme.header.clone(), value);
        if let Signed::Template {
            timestamp_header: Some(name),
            ..
        } = &scheme.signed
        {
            let ts = HeaderValue::from_str(&v.timestamp).map_err(|_| "bad timestamp")?;
            headers.insert(name.clone(), ts);
        }
        // The vector's own timestamp is "now", so the tolerance check cannot reject it.
        let now = UNIX_EPOCH + Duration::from_secs(v.timestamp.parse().unwrap_or(0));
        let id = (!v.delivery_id.is_empty()).then_some(v.delivery_id.as_str());
        self.verify_with(
            Some(scheme),
            &headers,
            &v.body,
            id,
            &[Secret::new(&v.secret)],
            now,
        )
        .map_err(|e| e.to_string())
    }
}
