//! Vendor plugins: loading them from `plugins_dir` (libraries, and vendor definitions: a vendor
//! as data, [`definition`]), proving their test vectors, and the safe wrapper ([`VendorPlugin`])
//! that is all the rest of the core sees of them, whichever form the vendor has. Requests call
//! into a plugin through [`VendorPlugin::map_event_async`], `verify_async` and
//! `handshake_async`: off the async threads, within a time limit, and behind a quarantine
//! ([`runner`]) so that a plugin that hangs or keeps failing costs its own vendor's deliveries
//! a 503, not the server its threads.

pub mod definition;
mod dir;
mod elf;
mod error;
mod handshake;
mod loader;
mod quarantine;
mod rescan;
mod runner;
mod summary;
mod vectors;
pub mod wire;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName};
use subtle::{Choice, ConstantTimeEq};
use switchyard_plugin_abi as abi;

use self::definition::Definition;
pub use self::dir::{plugins_dir, Plugins};
pub use self::error::{refusal_message, PluginError};
pub use self::handshake::{HandshakeOutcome, HandshakeSpec};
pub use self::rescan::Rescan;
pub use self::runner::{CallFault, MapOutcome, SignedDelivery, DEFAULT_TIME_LIMIT};
use crate::base::names::{Secret, VendorName};
use crate::event::envelope::MappedEvent;
use crate::event::verify::{Algorithm, Encoding, SignatureScheme, Signed, VerifyError};

/// Why `map_event` produced no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapFailure {
    /// The payload is wrong (answered 400).
    #[error("{0}")]
    InvalidPayload(String),
    /// The plugin panicked or broke its contract (answered 500).
    #[error("{0}")]
    PluginFailed(String),
}

/// One loaded vendor plugin: a library or a definition; nothing outside this module can tell
/// which but by asking ([`VendorPlugin::form`]).
pub struct VendorPlugin {
    pub path: PathBuf,
    pub vendor: VendorName,
    pub version: String,
    /// `None`: a definition's `signature: none`, served only behind `allow_ips`.
    pub scheme: Option<SignatureScheme>,
    pub delivery_id_header: Option<HeaderName>,
    pub event_type_header: Option<HeaderName>,
    pub handshake: HandshakeSpec,
    pub test_vector_count: usize,
    /// What identifies one event, as the plugin says (empty for ABI 1.0 plugins).
    pub dedupe: String,
    form: Form,
    guard: quarantine::Guard,
    /// The file as it was when loaded: a reload recognises it replaced.
    stamp: Option<rescan::FileStamp>,
}

/// What maps the vendor's deliveries.
enum Form {
    Library {
        abi_minor: u32,
        verify_override: bool,
        entries: loader::Entries,
    },
    /// Boxed: a definition is much larger than a library's entry points.
    Definition(Box<Definition>),
}

impl std::fmt::Debug for VendorPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorPlugin")
            .field("vendor", &self.vendor)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl VendorPlugin {
    /// Loads one plugin file, a definition or a library, and proves its test vectors; every
    /// problem of a definition, a library's first.
    pub fn load(path: &Path) -> Result<VendorPlugin, Vec<PluginError>> {
        if definition::is_definition(path) {
            return VendorPlugin::from_definition(path);
        }
        VendorPlugin::load_library(path).map_err(|e| vec![e])
    }

    fn from_definition(path: &Path) -> Result<VendorPlugin, Vec<PluginError>> {
        let d = Definition::load(path)?;
        Ok(VendorPlugin {
            path: path.to_path_buf(),
            vendor: VendorName::new(d.vendor.as_str()),
            version: d.version.clone(),
            scheme: d.signature.clone(),
            delivery_id_header: d.delivery_id_header.clone(),
            event_type_header: d.event_type_header.clone(),
            handshake: d.handshake.clone(),
            test_vector_count: d.vector_count(),
            dedupe: d.dedupe.clone(),
            form: Form::Definition(Box::new(d)),
            guard: quarantine::Guard::new(quarantine::Policy::default()),
            // A definition knows its own text: a reload compares that.
            stamp: None,
        })
    }

    /// Loads one library and proves its test vectors with the core's own HMAC code.
    fn load_library(path: &Path) -> Result<VendorPlugin, PluginError> {
        let stamp = rescan::FileStamp::of(path);
        let d = loader::open(path)?;
        let invalid = |reason: String| PluginError::InvalidDescriptor {
            path: path.to_path_buf(),
            reason,
        };
        if d.vendor.is_empty()
            || !d
                .vendor
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(invalid(format!(
                "vendor name {:?} must be lower-case letters, digits, '-' or '_'",
                d.vendor
            )));
        }
        let header = |name: &str, field: &str| -> Result<Option<HeaderName>, PluginError> {
            if name.is_empty() {
                return Ok(None);
            }
            HeaderName::from_bytes(name.as_bytes())
                .map(Some)
                .map_err(|_| invalid(format!("`{field}` {name:?} is not a valid header name")))
        };
        let s = &d.signature;
        let scheme = SignatureScheme {
            header: header(&s.header, "signature.header")?
                .ok_or_else(|| invalid("`signature.header` is empty".into()))?,
            encoding: match s.encoding {
                abi::ENCODING_HEX => Encoding::Hex,
                abi::ENCODING_BASE64 => Encoding::Base64,
                other => return Err(invalid(format!("unknown signature encoding {other}"))),
            },
            prefix: s.prefix.clone(),
            signed: match s.signed {
                abi::SIGNED_BODY => Signed::Body,
                abi::SIGNED_TEMPLATE => Signed::Template {
                    template: s.template.clone(),
                    timestamp_header: header(&s.timestamp_header, "signature.timestamp_header")?,
                    tolerance: (s.tolerance_secs > 0)
                        .then(|| Duration::from_secs(s.tolerance_secs)),
                },
                other => return Err(invalid(format!("unknown signed-content kind {other}"))),
            },
            algorithm: Algorithm::Sha256,
            several: false,
        };
        let handshake = match d.handshake.kind {
            abi::HANDSHAKE_KIND_NONE => HandshakeSpec::None,
            abi::HANDSHAKE_KIND_ECHO_QUERY if !d.handshake.query_param.is_empty() => {
                HandshakeSpec::EchoQuery {
                    param: d.handshake.query_param.clone(),
                    field: d.handshake.response_field.clone(),
                    max_len: d.handshake.max_len as usize,
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown or incomplete handshake kind {other}"
                )))
            }
        };
        let plugin = VendorPlugin {
            path: path.to_path_buf(),
            vendor: VendorName::new(d.vendor.as_str()),
            version: d.version.clone(),
            scheme: Some(scheme.clone()),
            delivery_id_header: header(&d.delivery_id_header, "delivery_id_header")?,
            event_type_header: header(&d.event_type_header, "event_type_header")?,
            handshake,
            test_vector_count: d.test_vectors.len(),
            dedupe: d.dedupe,
            form: Form::Library {
                abi_minor: d.abi_minor,
                verify_override: d.entries.verify.is_some(),
                entries: d.entries,
            },
            guard: quarantine::Guard::new(quarantine::Policy::default()),
            stamp,
        };
        for (index, vector) in d.test_vectors.iter().enumerate() {
            plugin
                .check_vector(&scheme, vector)
                .map_err(|reason| PluginError::TestVector {
                    path: path.to_path_buf(),
                    index,
                    reason,
                })?;
        }
        Ok(plugin)
    }

    /// Checks a delivery's signature with the plugin's override if it has one, else the core's
    /// constant-time HMAC check using `scheme` (which routes.yaml may have changed). `None` is
    /// routes.yaml's `signature: none`, allowed only behind an IP allow-list: nothing to check.
    /// Inline on the calling thread; requests use [`VendorPlugin::verify_async`]. A plugin that
    /// panics in its check is a mismatch here.
    pub fn verify_with(
        &self,
        scheme: Option<&SignatureScheme>,
        headers: &HeaderMap,
        body: &[u8],
        delivery_id: Option<&str>,
        secrets: &[Secret],
        now: std::time::SystemTime,
    ) -> Result<(), VerifyError> {
        let Some(scheme) = scheme else {
            return Ok(());
        };
        match self.own_verify() {
            Some(verify) => Self::plugin_verify(verify, &scheme.header, headers, body, secrets)
                .unwrap_or(Err(VerifyError::Mismatch)),
            None => scheme.verify(headers, body, delivery_id, secrets, now),
        }
    }

    /// The plugin's own signature check, when it has one.
    fn own_verify(&self) -> Option<abi::VerifyFn> {
        match &self.form {
            Form::Library {
                verify_override: true,
                entries,
                ..
            } => entries.verify,
            _ => None,
        }
    }

    /// The plugin's own check, run for every secret whatever an earlier one answered, so the
    /// time taken does not say which secret matched (as the core's own check does). `Err`: the
    /// plugin panicked and no secret matched.
    fn plugin_verify(
        verify: abi::VerifyFn,
        header: &HeaderName,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[Secret],
    ) -> Result<Result<(), VerifyError>, String> {
        let mut verified = Choice::from(0);
        let mut worst = VerifyError::Mismatch;
        let mut panicked = false;
        for secret in secrets {
            let answer = loader::verify(verify, headers, body, secret.expose());
            verified |= answer.ct_eq(&abi::VERIFY_OK);
            match answer {
                abi::VERIFY_MISSING => worst = VerifyError::Missing(header.clone()),
                abi::VERIFY_MALFORMED => {
                    worst = VerifyError::Malformed {
                        header: header.clone(),
                        reason: "refused by the vendor plugin",
                    }
                }
                abi::VERIFY_STALE => worst = VerifyError::BadTimestamp(header.clone()),
                abi::VERIFY_PANICKED => panicked = true,
                _ => {}
            }
        }
        if bool::from(verified) {
            Ok(Ok(()))
        } else if panicked {
            Err("the plugin failed in its signature check".into())
        } else {
            Ok(Err(worst))
        }
    }

    /// Whether GET handshakes call into the plugin (its own handshake entry).
    fn has_own_handshake(&self) -> bool {
        matches!(&self.form, Form::Library { entries, .. } if entries.handshake.is_some())
    }

    /// Maps a verified delivery, inline on the calling thread: the body becomes `raw`, the plugin
    /// maps it, and what it reports identifies the event. [`VendorPlugin::map_event_async`] is
    /// what requests use.
    pub fn map_event(&self, headers: &HeaderMap, body: &[u8]) -> Result<MappedEvent, MapFailure> {
        // A body that is not JSON is refused before the plugin sees it.
        let raw = wire::raw_json(body).map_err(MapFailure::InvalidPayload)?;
        let delivery_id = (self.delivery_id_header.as_ref())
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok());
        match &self.form {
            Form::Library { entries, .. } => {
                let (status, out) = loader::map_event(*entries, headers, body);
                wire::mapped(status, &out, raw, delivery_id)
            }
            Form::Definition(d) => d.map(headers, body, raw, delivery_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    /// A plugin's own check that accepts every secret, counting its calls.
    extern "C" fn accepting(_request: *const abi::Request, _secret: abi::Slice) -> u32 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        abi::VERIFY_OK
    }

    #[test]
    fn a_plugins_own_verify_is_called_for_every_secret_even_when_the_first_matches() {
        let secrets = [Secret::new("one"), Secret::new("two"), Secret::new("three")];
        let header = HeaderName::from_static("x-signature");
        let answer =
            VendorPlugin::plugin_verify(accepting, &header, &HeaderMap::new(), b"{}", &secrets);
        assert!(matches!(answer, Ok(Ok(()))));
        assert_eq!(CALLS.load(Ordering::SeqCst), secrets.len());
    }
}
