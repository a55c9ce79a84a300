//! Signature verification: HMAC-SHA256 over the raw bytes, compared in constant time against
//! every active secret (rotation). The vendor's scheme arrives as data from its plugin; the
//! cryptography lives here, once, for every vendor.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use hyper::header::{HeaderMap, HeaderName};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::base::names::Secret;

type HmacSha256 = Hmac<Sha256>;

/// How the MAC is written in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// What the MAC covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signed {
    Body,
    /// `{body}`, `{timestamp}` and `{id}` are substituted.
    Template {
        template: String,
        timestamp_header: Option<HeaderName>,
        /// `None` = the timestamp's age is not checked.
        tolerance: Option<Duration>,
    },
}

/// A vendor's signature scheme, as its plugin describes it (and routes.yaml may rename the header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureScheme {
    pub header: HeaderName,
    pub encoding: Encoding,
    pub prefix: String,
    pub signed: Signed,
}

/// Why a delivery's signature was refused. The text names what is wrong, never a secret or the
/// expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature header `{0}` is missing")]
    Missing(HeaderName),
    #[error("signature header `{header}` is malformed: {reason}")]
    Malformed {
        header: HeaderName,
        reason: &'static str,
    },
    #[error("timestamp header `{0}` is missing or not Unix seconds")]
    BadTimestamp(HeaderName),
    #[error(
        "signature timestamp is {age_secs}s away from now, over the {tolerance_secs}s tolerance"
    )]
    Stale { age_secs: u64, tolerance_secs: u64 },
    #[error("signature does not match any active secret")]
    Mismatch,
}

impl VerifyError {
    /// The stable code in the 401 body.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Missing(_) => "signature_missing",
            VerifyError::Malformed { .. } => "signature_malformed",
            VerifyError::BadTimestamp(_) | VerifyError::Stale { .. } => "signature_stale",
            VerifyError::Mismatch => "signature_mismatch",
        }
    }
}

/// The parts of a delivery a signature can cover.
pub struct Signable<'a> {
    pub body: &'a [u8],
    pub timestamp: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
}

impl SignatureScheme {
    /// Checks the delivery's signature against every secret; succeeds if any matches.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        delivery_id: Option<&str>,
        secrets: &[Secret],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let value = headers
            .get(&self.header)
            .ok_or_else(|| VerifyError::Missing(self.header.clone()))?;
        let provided = self.decode(value.as_bytes())?;
        let timestamp = match &self.signed {
            Signed::Body => None,
            Signed::Template {
                timestamp_header: Some(name),
                tolerance,
                ..
            } => {
                let ts = headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| v.parse::<u64>().is_ok())
                    .ok_or_else(|| VerifyError::BadTimestamp(name.clone()))?;
                if let Some(tolerance) = tolerance {
                    check_age(ts, *tolerance, now)?;
                }
                Some(ts)
            }
            Signed::Template { .. } => None,
        };
        let signable = Signable {
            body,
            timestamp,
            delivery_id,
        };
        let mut matched = Choice::from(0);
        // Every secret is tried, so the time taken does not say which one matched.
        for secret in secrets {
            matched |= self.mac(secret.expose(), &signable).ct_eq(&provided);
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// The header value a vendor would send: used by `switchyard sign` and the test vectors.
    pub fn sign(&self, secret: &[u8], signable: &Signable<'_>) -> String {
        let mac = self.mac(secret, signable);
        let encoded = match self.encoding {
            Encoding::Hex => hex::encode(mac),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(mac),
        };
        format!("{}{}", self.prefix, encoded)
    }

    fn mac(&self, secret: &[u8], signable: &Signable<'_>) -> [u8; 32] {
        // HMAC accepts keys of any length: new_from_slice cannot fail for it.
        let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        match &self.signed {
            Signed::Body => mac.update(signable.body),
            Signed::Template { template, .. } => {
                for part in TemplateParts::new(template) {
                    mac.update(match part {
                        TemplatePart::Literal(text) => text.as_bytes(),
                        TemplatePart::Body => signable.body,
                        TemplatePart::Timestamp => signable.timestamp.unwrap_or("").as_bytes(),
                        TemplatePart::Id => signable.delivery_id.unwrap_or("").as_bytes(),
                    });
                }
            }
        }
        mac.finalize().into_bytes().into()
    }

    fn decode(&self, value: &[u8]) -> Result<Vec<u8>, VerifyError> {
        let malformed = |reason| VerifyError::Malformed {
            header: self.header.clone(),
            reason,
        };
        let value = std::str::from_utf8(value)
            .map_err(|_| malformed("not text"))?
            .trim();
        let encoded = value
            .get(..self.prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(&self.prefix))
            .map(|_| &value[self.prefix.len()..])
            .ok_or_else(|| malformed("expected prefix is missing"))?;
        let decoded = match self.encoding {
            Encoding::Hex => hex::decode(encoded).map_err(|_| malformed("not hexadecimal"))?,
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| malformed("not base64"))?,
        };
        if decoded.len() != 32 {
            return Err(malformed("wrong length for HMAC-SHA256"));
        }
        Ok(decoded)
    }
}

fn check_age(timestamp: &str, tolerance: Duration, now: SystemTime) -> Result<(), VerifyError> {
    let sent = timestamp.parse::<u64>().unwrap_or(0);
    let now = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let age_secs = now.abs_diff(sent);
    if age_secs > tolerance.as_secs() {
        return Err(VerifyError::Stale {
            age_secs,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(())
}

enum TemplatePart<'a> {
    Literal(&'a str),
    Body,
    Timestamp,
    Id,
}

/// Splits `{timestamp}.{body}` into literals and placeholders; unknown `{...}` stay literal.
struct TemplateParts<'a> {
    rest: &'a str,
}

impl<'a> TemplateParts<'a> {
    fn new(template: &'a str) -> Self {
        TemplateParts { rest: template }
    }
}

impl<'a> Iterator for TemplateParts<'a> {
    type Item = TemplatePart<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        for (token, part) in [
            ("{body}", TemplatePart::Body),
            ("{timestamp}", TemplatePart::Timestamp),
            ("{id}", TemplatePart::Id),
        ] {
            if let Some(rest) = self.rest.strip_prefix(token) {
                self.rest = rest;
                return Some(part);
            }
        }
        // A literal runs up to the next '{' that is not at the very start.
        let end = self.rest[1..].find('{').map_or(self.rest.len(), |i| i + 1);
        let (literal, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(TemplatePart::Literal(literal))
    }
}

/// Changes to a plugin's signature scheme (`signature: { header, encoding, prefix }`, or the
/// older `signature_header`), for a vendor account that signs differently from what its
/// document suggests. Unset parts keep the plugin's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemeChange {
    /// A valid header name, in lower case.
    pub header: Option<String>,
    pub encoding: Option<Encoding>,
    pub prefix: Option<String>,
}

impl SchemeChange {
    pub fn apply(&self, scheme: &SignatureScheme) -> SignatureScheme {
        let mut scheme = scheme.clone();
        if let Some(header) = &self.header {
            // Validated as a header name when the configuration was read.
            if let Ok(header) = hyper::header::HeaderName::from_bytes(header.as_bytes()) {
                scheme.header = header;
            }
        }
        if let Some(encoding) = self.encoding {
            scheme.encoding = encoding;
        }
        if let Some(prefix) = &self.prefix {
            scheme.prefix = prefix.clone();
        }
        scheme
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn hex_scheme() -> SignatureScheme {
        SignatureScheme {
            header: HeaderName::from_static("x-sig"),
            encoding: Encoding::Hex,
            prefix: String::new(),
            signed: Signed::Body,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    // Reference value: python3 -c "import hmac,hashlib;print(hmac.new(b'key',b'body',hashlib.sha256).hexdigest())"
    const KEY_BODY_HEX: &str = "515aae133b435d4000956731f68ae5cf5eb85d4f0dc6a546d2bfcd3595ec1ae1";

    #[test]
    fn hex_signature_matches_an_independent_hmac() {
        let scheme = hex_scheme();
        let expected = scheme.sign(
            b"key",
            &Signable {
                body: b"body",
                timestamp: None,
                delivery_id: None,
            },
        );
        assert_eq!(expected, KEY_BODY_HEX);
        let secrets = [Secret::new("key")];
        let h = headers(&[("x-sig", &expected)]);
        assert_eq!(
            scheme.verify(&h, b"body", None, &secrets, SystemTime::now()),
            Ok(())
        );
    }

    #[test]
    fn any_active_secret_verifies_and_others_do_not() {
        let scheme = hex_scheme();
        let sig = scheme.sign(
            b"old",
            &Signable {
                body: b"{}",
                timestamp: None,
                delivery_id: None,
            },
        );
        let h = headers(&[("x-sig", &sig)]);
        let now = SystemTime::now();
        let rotated = [Secret::new("new"), Secret::new("old")];
        assert_eq!(scheme.verify(&h, b"{}", None, &rotated, now), Ok(()));
        assert_eq!(
            scheme.verify(&h, b"{}", None, &[Secret::new("new")], now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            scheme.verify(&h, b"{ }", None, &rotated, now),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let scheme = SignatureScheme {
            prefix: "sha256=".into(),
            ..hex_scheme()
        };
        let now = SystemTime::now();
        let s = [Secret::new("k")];
        assert_eq!(
            scheme.verify(&HeaderMap::new(), b"", None, &s, now),
            Err(VerifyError::Missing(HeaderName::from_static("x-sig")))
        );
        for (value, reason) in [
            ("abcd", "expected prefix is missing"),
            ("sha256=zz", "not hexadecimal"),
            ("sha256=abcd", "wrong length for HMAC-SHA256"),
        ] {
            let err = scheme
                .verify(&headers(&[("x-sig", value)]), b"", None, &s, now)
                .unwrap_err();
            assert_eq!(
                err,
                VerifyError::Malformed {
                    header: HeaderName::from_static("x-sig"),
                    reason
                }
            );
            assert_eq!(err.code(), "signature_malformed");
        }
    }

    #[test]
    fn templates_cover_timestamp_and_id_and_refuse_stale_ones() {
        let scheme = SignatureScheme {
            header: HeaderName::from_static("webhook-signature"),
            encoding: Encoding::Base64,
            prefix: "v1,".into(),
            signed: Signed::Template {
                template: "{id}.{timestamp}.{body}".into(),
                timestamp_header: Some(HeaderName::from_static("webhook-timestamp")),
                tolerance: Some(Duration::from_secs(300)),
            },
        };
        // Reference: the Standard Webhooks example secret and message.
        let secret = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let signable = Signable {
            body: br#"{"test": 2432232314}"#,
            timestamp: Some("1614265330"),
            delivery_id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        };
        assert_eq!(
            scheme.sign(&secret, &signable),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let h = headers(&[
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            ("webhook-timestamp", "1614265330"),
        ]);
        let secrets = [Secret::new(&secret)];
        let at = UNIX_EPOCH + Duration::from_secs(1614265330 + 10);
        let id = Some("msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(scheme.verify(&h, signable.body, id, &secrets, at), Ok(()));
        let late = UNIX_EPOCH + Duration::from_secs(1614265330 + 301);
        assert_eq!(
            scheme.verify(&h, signable.body, id, &secrets, late),
            Err(VerifyError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
    }
}
