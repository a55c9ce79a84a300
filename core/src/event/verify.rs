//! Signature verification: an HMAC over the raw bytes (SHA-256 for every library plugin; SHA-1 or
//! SHA-512 where a vendor definition says so), compared in constant time against every active
//! secret (rotation). The vendor's scheme arrives as data from its plugin; the cryptography lives
//! here, once, for every vendor.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use hyper::header::{HeaderMap, HeaderName};
use subtle::{Choice, ConstantTimeEq};

use crate::base::names::Secret;

/// The HMAC's hash function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The MAC's length in bytes.
    fn len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

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
    /// SHA-256 for every library plugin.
    pub algorithm: Algorithm,
    /// Several signatures in one header, separated by spaces (`v1,sig1 v1,sig2`, as Standard
    /// Webhooks sends while a secret is rotated): one matching is enough, and an item without
    /// the prefix (another scheme's version) is skipped.
    pub several: bool,
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
        let provided = self.decode_all(value.as_bytes())?;
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
            let mac = self.mac(secret.expose(), &signable);
            for signature in &provided {
                matched |= mac.as_slice().ct_eq(signature.as_slice());
            }
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

    fn mac(&self, secret: &[u8], signable: &Signable<'_>) -> Vec<u8> {
        match self.algorithm {
            Algorithm::Sha1 => self.mac_with::<Hmac<sha1::Sha1>>(secret, signable),
            Algorithm::Sha256 => self.mac_with::<Hmac<sha2::Sha256>>(secret, signable),
            Algorithm::Sha512 => self.mac_with::<Hmac<sha2::Sha512>>(secret, signable),
        }
    }

    fn mac_with<M: Mac + KeyInit>(&self, secret: &[u8], signable: &Signable<'_>) -> Vec<u8> {
        // HMAC accepts keys of any length: new_from_slice cannot fail for it.
        let mut mac = <M as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
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
        mac.finalize().into_bytes().to_vec()
    }

    /// The signatures in the header's value: one, or with `several` each item that has the
    /// prefix; the header is malformed when none can be read.
    fn decode_all(&self, value: &[u8]) -> Result<Vec<Vec<u8>>, VerifyError> {
        if !self.several {
            return Ok(vec![self.decode(value)?]);
        }
        let text = std::str::from_utf8(value).map_err(|_| self.malformed("not text"))?;
        let mut worst = self.malformed("expected prefix is missing");
        let mut found = Vec::new();
        for item in text.split_ascii_whitespace() {
            if !has_prefix(item, &self.prefix) {
                continue;
            }
            match self.decode(item.as_bytes()) {
                Ok(signature) => found.push(signature),
                Err(error) => worst = error,
            }
        }
        if found.is_empty() {
            return Err(worst);
        }
        Ok(found)
    }

    fn malformed(&self, reason: &'static str) -> VerifyError {
        VerifyError::Malformed {
            header: self.header.clone(),
            reason,
        }
    }

    fn decode(&self, value: &[u8]) -> Result<Vec<u8>, VerifyError> {
        let malformed = |reason| self.malformed(reason);
        let value = std::str::from_utf8(value)
            .map_err(|_| malformed("not text"))?
            .trim();
        let encoded = Some(value)
            .filter(|v| has_prefix(v, &self.prefix))
            .map(|_| &value[self.prefix.len()..])
            .ok_or_else(|| malformed("expected prefix is missing"))?;
        let decoded = match self.encoding {
            Encoding::Hex => hex::decode(encoded).map_err(|_| malformed("not hexadecimal"))?,
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| malformed("not base64"))?,
        };
        if decoded.len() != self.algorithm.len() {
            return Err(malformed("wrong length for the HMAC"));
        }
        Ok(decoded)
    }
}

/// Prefixes are matched without regard to case, as vendors differ (`sha256=`, `SHA256=`).
fn has_prefix(value: &str, prefix: &str) -> bool {
    value
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
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
mod tests;
