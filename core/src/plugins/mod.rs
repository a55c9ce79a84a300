//! Vendor plugins: loading them from `plugins_dir`, proving their test vectors, and the safe
//! wrapper ([`VendorPlugin`]) that is all the rest of the core sees of them. Requests call into a
//! plugin through [`VendorPlugin::map_event_async`], `verify_async` and `handshake_async`: off
//! the async threads, within a time limit, and behind a quarantine ([`runner`]) so that a plugin
//! that hangs or keeps failing costs its own vendor's deliveries a 503, not the server its
//! threads.

mod dir;
mod elf;
mod loader;
mod quarantine;
mod rescan;
mod runner;
mod vectors;
pub mod wire;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName};
use subtle::{Choice, ConstantTimeEq};
use switchyard_plugin_abi as abi;

pub use self::dir::{plugins_dir, Plugins};
pub use self::rescan::Rescan;
pub use self::runner::{CallFault, MapOutcome, SignedDelivery, DEFAULT_TIME_LIMIT};
use crate::base::names::{Secret, VendorName};
use crate::event::envelope::MappedEvent;
use crate::event::verify::{Encoding, SignatureScheme, Signed, VerifyError};

/// Why a plugin was refused. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{}", dir_problem(path, source))]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot be loaded: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error("{}: does not export `switchyard_plugin_v1` (build it with switchyard_plugin::export_plugin!)", path.display())]
    MissingSymbol { path: PathBuf },
    #[error("{}: built for plugin ABI {found}.x, this server speaks {}.{}; rebuild it against this server's switchyard-plugin", path.display(), abi::ABI_MAJOR, abi::ABI_MINOR)]
    WrongAbi { path: PathBuf, found: u32 },
    #[error("{}: built for plugin ABI {}.{found}, newer than this server's {}.{}; upgrade the server or build the plugin against an older switchyard-plugin", path.display(), abi::ABI_MAJOR, abi::ABI_MAJOR, abi::ABI_MINOR)]
    NewerMinor { path: PathBuf, found: u32 },
    #[error("{}: refused before loading: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: invalid descriptor: {reason}", path.display())]
    InvalidDescriptor { path: PathBuf, reason: String },
    #[error("{}: test vector {index} fails: the core's HMAC of its body does not match the declared header value ({reason})", path.display())]
    TestVector {
        path: PathBuf,
        index: usize,
        reason: String,
    },
    #[error("{}: vendor `{vendor}` is already provided by {}", path.display(), other.display())]
    DuplicateVendor {
        path: PathBuf,
        vendor: String,
        other: PathBuf,
    },
}

fn dir_problem(path: &Path, source: &std::io::Error) -> String {
    match source.kind() {
        std::io::ErrorKind::NotFound => {
            format!("the plugins directory {} does not exist", path.display())
        }
        _ => format!(
            "cannot read the plugins directory {}: {source}",
            path.display()
        ),
    }
}

/// Why [`Plugins::load_dir`] failed, in one message: the directory's own problem, or every
/// library refused.
pub fn refusal_message(errors: &[PluginError]) -> String {
    match errors {
        [only @ PluginError::Dir { .. }] => only.to_string(),
        _ => {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            format!("{} plugin(s) refused:\n{}", errors.len(), lines.join("\n"))
        }
    }
}

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

/// A GET handshake's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// This vendor has no handshake (405).
    NotSupported,
    /// The request is not a valid handshake (400), with why.
    Invalid(String),
    /// Answer `status` with this JSON body.
    Reply { status: u16, body: Vec<u8> },
    /// The plugin panicked (500).
    Failed,
}

/// The vendor's handshake, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeSpec {
    None,
    EchoQuery {
        param: String,
        field: String,
        max_len: usize,
    },
}

/// One loaded vendor plugin.
pub struct VendorPlugin {
    pub path: PathBuf,
    pub vendor: VendorName,
    pub version: String,
    pub abi_minor: u32,
    pub scheme: SignatureScheme,
    pub delivery_id_header: Option<HeaderName>,
    pub event_type_header: Option<HeaderName>,
    pub handshake: HandshakeSpec,
    pub test_vector_count: usize,
    /// What identifies one event, as the plugin says (empty for ABI 1.0 plugins).
    pub dedupe: String,
    verify_override: bool,
    entries: loader::Entries,
    guard: quarantine::Guard,
    /// The file as it was when loaded: a reload recognises it replaced.
    stamp: Option<rescan::FileStamp>,
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
    /// Loads one library and proves its test vectors with the core's own HMAC code.
    pub fn load(path: &Path) -> Result<VendorPlugin, PluginError> {
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
            abi_minor: d.abi_minor,
            scheme,
            delivery_id_header: header(&d.delivery_id_header, "delivery_id_header")?,
            event_type_header: header(&d.event_type_header, "event_type_header")?,
            handshake,
            test_vector_count: d.test_vectors.len(),
            dedupe: d.dedupe,
            verify_override: d.entries.verify.is_some(),
            entries: d.entries,
            guard: quarantine::Guard::new(quarantine::Policy::default()),
            stamp,
        };
        for (index, vector) in d.test_vectors.iter().enumerate() {
            plugin
                .check_vector(vector)
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
            Some(verify) => self
                .plugin_verify(verify, &scheme.header, headers, body, secrets)
                .unwrap_or(Err(VerifyError::Mismatch)),
            None => scheme.verify(headers, body, delivery_id, secrets, now),
        }
    }

    /// The plugin's own signature check, when it has one.
    fn own_verify(&self) -> Option<abi::VerifyFn> {
        self.entries.verify.filter(|_| self.verify_override)
    }

    /// The plugin's own check, run for every secret whatever an earlier one answered, so the
    /// time taken does not say which secret matched (as the core's own check does). `Err`: the
    /// plugin panicked and no secret matched.
    fn plugin_verify(
        &self,
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
        self.entries.handshake.is_some()
    }

    /// Maps a verified delivery, inline on the calling thread: the body becomes `raw`, the plugin
    /// maps it, and what it reports identifies the event. [`VendorPlugin::map_event_async`] is
    /// what requests use.
    pub fn map_event(&self, headers: &HeaderMap, body: &[u8]) -> Result<MappedEvent, MapFailure> {
        // A body that is not JSON is refused before the plugin sees it.
        let raw = wire::raw_json(body).map_err(MapFailure::InvalidPayload)?;
        let (status, out) = loader::map_event(self.entries, headers, body);
        let delivery_id = (self.delivery_id_header.as_ref())
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok());
        wire::mapped(status, &out, raw, delivery_id)
    }

    /// Answers a GET on the hook URL.
    pub fn handshake(&self, headers: &HeaderMap, query: &str) -> HandshakeOutcome {
        if let Some(handshake) = self.entries.handshake {
            return match loader::handshake(handshake, headers, query.as_bytes()) {
                (abi::HANDSHAKE_NONE, _) => HandshakeOutcome::NotSupported,
                (status @ 100..=599, body) => HandshakeOutcome::Reply {
                    status: status as u16,
                    body,
                },
                _ => HandshakeOutcome::Failed,
            };
        }
        match &self.handshake {
            HandshakeSpec::None => HandshakeOutcome::NotSupported,
            HandshakeSpec::EchoQuery {
                param,
                field,
                max_len,
            } => {
                let value = form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == param.as_str())
                    .map(|(_, v)| v);
                match value {
                    None => {
                        HandshakeOutcome::Invalid(format!("query parameter `{param}` is required"))
                    }
                    Some(v) if v.len() > *max_len => HandshakeOutcome::Invalid(format!(
                        "query parameter `{param}` is longer than {max_len} bytes"
                    )),
                    Some(v) => {
                        let mut body = serde_json::Map::new();
                        body.insert(field.clone(), serde_json::Value::String(v.into_owned()));
                        HandshakeOutcome::Reply {
                            status: 200,
                            body: serde_json::to_vec(&body).unwrap_or_default(),
                        }
                    }
                }
            }
        }
    }

    /// What identifies one event, for `switchyard plugins`.
    pub fn dedupe_summary(&self) -> &str {
        if self.dedupe.is_empty() {
            "not stated (ABI 1.0): event_id when the event has one, else delivery_id, else body_hash"
        } else {
            &self.dedupe
        }
    }

    /// How the signature scheme reads, for `switchyard plugins`.
    pub fn scheme_summary(&self) -> String {
        let encoding = match self.scheme.encoding {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        };
        let signed = match &self.scheme.signed {
            Signed::Body => "body".to_owned(),
            Signed::Template { template, .. } => format!("template {template:?}"),
        };
        let custom = if self.verify_override {
            " (plugin's own verify)"
        } else {
            ""
        };
        format!(
            "HMAC-SHA256 {encoding}{} of {signed}{custom}",
            if self.scheme.prefix.is_empty() {
                String::new()
            } else {
                format!(" after {:?}", self.scheme.prefix)
            }
        )
    }
}
