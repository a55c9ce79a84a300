//! Vendor plugins: loading them from `plugins_dir`, proving their test vectors, and the safe
//! wrapper ([`VendorPlugin`]) that is all the rest of the core sees of them. Deliveries are mapped
//! through [`VendorPlugin::map_event_async`]: off the async threads, within a time limit, and
//! behind a quarantine ([`runner`]) so that a plugin that hangs or keeps failing costs its own
//! vendor's deliveries a 503, not the server its threads.

mod elf;
mod loader;
mod runner;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use switchyard_plugin_abi as abi;

pub use self::runner::{MapOutcome, DEFAULT_TIME_LIMIT};
use crate::base::names::{Secret, VendorName};
use crate::event::dedupe::{Identity, IdentityError};
use crate::event::verify::{Encoding, SignatureScheme, Signed, VerifyError};

/// File names the loader considers: `libswitchyard_<vendor>.so` (or the platform's suffix).
const FILE_PREFIX: &str = "libswitchyard_";

/// Why a plugin was refused. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugins directory {}: {source}", path.display())]
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

/// The vendor-dependent envelope fields as the plugin wrote them, the event's identity, and the
/// request body. `data` and `raw` stay serialised: the core only embeds them.
#[derive(Debug)]
pub struct MappedEvent {
    pub vendor_type: String,
    pub canonical_type: String,
    pub vendor_event_id: Option<String>,
    pub occurred_at: Option<String>,
    pub data: Box<RawValue>,
    pub identity: Identity,
    /// The request body: its bytes, checked to be JSON, never re-serialised (see [`raw_json`]).
    pub raw: Box<RawValue>,
}

/// What `map_event` writes. A plugin's own `raw` (ABI 1.0 plugins still write one) is ignored:
/// the core keeps the request bytes itself.
#[derive(Deserialize)]
struct WireEvent {
    vendor_type: String,
    #[serde(rename = "type")]
    canonical_type: String,
    vendor_event_id: Option<String>,
    occurred_at: Option<String>,
    data: Box<RawValue>,
    /// Since ABI 1.1; absent from a 1.0 plugin's events.
    identity: Option<WireIdentity>,
}

#[derive(Deserialize)]
struct WireIdentity {
    basis: String,
    #[serde(default)]
    parts: Vec<Option<String>>,
}

/// The body as the envelope's `raw`: the request's own bytes, checked to be JSON, so key order,
/// number precision and string escapes survive. Line breaks are the one thing dropped: valid JSON
/// can only hold them between tokens, where they mean nothing, and a JSON-lines sink needs each
/// envelope on one line.
pub fn raw_json(body: &[u8]) -> Result<Box<RawValue>, String> {
    serde_json::from_slice::<&RawValue>(body)
        .map_err(|e| format!("body is not valid JSON: {e}"))?;
    let one_line: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    // Still valid UTF-8 and JSON: only whitespace bytes between tokens were removed.
    let text = String::from_utf8(one_line).map_err(|e| format!("body is not valid JSON: {e}"))?;
    RawValue::from_string(text).map_err(|e| format!("body is not valid JSON: {e}"))
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
    guard: runner::Guard,
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
            guard: runner::Guard::new(runner::Policy::default()),
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

    fn check_vector(&self, v: &loader::LoadedVector) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&v.expected).map_err(|_| "not a header value")?;
        headers.insert(self.scheme.header.clone(), value);
        if let Signed::Template {
            timestamp_header: Some(name),
            ..
        } = &self.scheme.signed
        {
            let ts = HeaderValue::from_str(&v.timestamp).map_err(|_| "bad timestamp")?;
            headers.insert(name.clone(), ts);
        }
        // The vector's own timestamp is "now", so the tolerance check cannot reject it.
        let now = UNIX_EPOCH + Duration::from_secs(v.timestamp.parse().unwrap_or(0));
        let id = (!v.delivery_id.is_empty()).then_some(v.delivery_id.as_str());
        self.verify_with(
            Some(&self.scheme),
            &headers,
            &v.body,
            id,
            &[Secret::new(&v.secret)],
            now,
        )
        .map_err(|e| e.to_string())
    }

    /// Checks a delivery's signature with the plugin's override if it has one, else the core's
    /// constant-time HMAC check using `scheme` (which routes.yaml may have changed). `None` is
    /// routes.yaml's `signature: none`, allowed only behind an IP allow-list: nothing to check.
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
        match self.entries.verify.filter(|_| self.verify_override) {
            None => scheme.verify(headers, body, delivery_id, secrets, now),
            Some(verify) => {
                let mut worst = VerifyError::Mismatch;
                for secret in secrets {
                    match loader::verify(verify, headers, body, secret.expose()) {
                        abi::VERIFY_OK => return Ok(()),
                        abi::VERIFY_MISSING => worst = VerifyError::Missing(scheme.header.clone()),
                        abi::VERIFY_MALFORMED => {
                            worst = VerifyError::Malformed {
                                header: scheme.header.clone(),
                                reason: "refused by the vendor plugin",
                            }
                        }
                        abi::VERIFY_STALE => {
                            worst = VerifyError::BadTimestamp(scheme.header.clone())
                        }
                        _ => {}
                    }
                }
                Err(worst)
            }
        }
    }

    /// Maps a verified delivery, inline on the calling thread: the body becomes `raw`, the plugin
    /// maps it, and what it reports identifies the event. [`VendorPlugin::map_event_async`] is
    /// what requests use.
    pub fn map_event(&self, headers: &HeaderMap, body: &[u8]) -> Result<MappedEvent, MapFailure> {
        // A body that is not JSON is refused before the plugin sees it.
        let raw = raw_json(body).map_err(MapFailure::InvalidPayload)?;
        let (status, out) = loader::map_event(self.entries, headers, body);
        let text = || String::from_utf8_lossy(&out).into_owned();
        match status {
            abi::MAP_OK => {}
            abi::MAP_INVALID_PAYLOAD => return Err(MapFailure::InvalidPayload(text())),
            abi::MAP_PANICKED => return Err(MapFailure::PluginFailed(text())),
            other => {
                return Err(MapFailure::PluginFailed(format!(
                    "plugin returned unknown status {other}"
                )))
            }
        }
        let event: WireEvent = serde_json::from_slice(&out).map_err(|e| {
            MapFailure::PluginFailed(format!("plugin wrote an invalid mapped event: {e}"))
        })?;
        if event.canonical_type.is_empty() || event.vendor_type.is_empty() {
            return Err(MapFailure::InvalidPayload("the event type is empty".into()));
        }
        let identity = match &event.identity {
            Some(wire) => {
                Identity::from_parts(&wire.basis, &wire.parts, &raw).map_err(|e| match e {
                    IdentityError::Empty(_) => MapFailure::InvalidPayload(e.to_string()),
                    IdentityError::UnknownBasis(_) => MapFailure::PluginFailed(e.to_string()),
                })?
            }
            None => {
                let delivery_id = (self.delivery_id_header.as_ref())
                    .and_then(|h| headers.get(h))
                    .and_then(|v| v.to_str().ok());
                Identity::implied(event.vendor_event_id.as_deref(), delivery_id, &raw)
            }
        };
        Ok(MappedEvent {
            vendor_type: event.vendor_type,
            canonical_type: event.canonical_type,
            vendor_event_id: event.vendor_event_id,
            occurred_at: event.occurred_at,
            data: event.data,
            identity,
            raw,
        })
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

/// Every loaded plugin, by vendor.
#[derive(Debug, Default)]
pub struct Plugins {
    by_vendor: BTreeMap<VendorName, Arc<VendorPlugin>>,
}

impl Plugins {
    /// Loads every `libswitchyard_*` library in `dir`, reporting every refusal, not just the first.
    pub fn load_dir(dir: &Path) -> Result<Plugins, Vec<PluginError>> {
        let entries = std::fs::read_dir(dir).map_err(|source| {
            vec![PluginError::Dir {
                path: dir.to_path_buf(),
                source,
            }]
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(FILE_PREFIX) && n.ends_with(std::env::consts::DLL_SUFFIX)
                })
            })
            .collect();
        paths.sort();
        Plugins::load_files(&paths)
    }

    /// Loads the given libraries.
    pub fn load_files(paths: &[PathBuf]) -> Result<Plugins, Vec<PluginError>> {
        let mut plugins = Plugins::default();
        let mut errors = Vec::new();
        for path in paths {
            match VendorPlugin::load(path) {
                Ok(plugin) => {
                    if let Some(other) = plugins.by_vendor.get(&plugin.vendor) {
                        errors.push(PluginError::DuplicateVendor {
                            path: path.clone(),
                            vendor: plugin.vendor.to_string(),
                            other: other.path.clone(),
                        });
                    } else {
                        plugins
                            .by_vendor
                            .insert(plugin.vendor.clone(), Arc::new(plugin));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(plugins)
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, vendor: &str) -> Option<&Arc<VendorPlugin>> {
        self.by_vendor.get(vendor)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<VendorPlugin>> {
        self.by_vendor.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_vendor.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_vendor.len()
    }
}
