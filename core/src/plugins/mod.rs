//! Vendor plugins: loading them from `plugins_dir` (libraries, and vendor definitions: a vendor
//! as data, [`definition`]), proving their test vectors, and the safe wrapper ([`VendorPlugin`])
//! that is all the rest of the core sees of them, whichever form the vendor has. Deliveries are mapped
//! through [`VendorPlugin::map_event_async`]: off the async threads, within a time limit, and
//! behind a quarantine ([`runner`]) so that a plugin that hangs or keeps failing costs its own
//! vendor's deliveries a 503, not the server its threads.

pub mod definition;
mod dir;
mod elf;
mod loader;
mod rescan;
mod runner;
mod vectors;
pub mod wire;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName};
use switchyard_plugin_abi as abi;

use self::definition::Definition;
pub use self::dir::{plugins_dir, Plugins};
pub use self::rescan::Rescan;
pub use self::runner::{MapOutcome, DEFAULT_TIME_LIMIT};
use crate::base::names::{Secret, VendorName};
use crate::event::envelope::MappedEvent;
use crate::event::verify::{Algorithm, Encoding, SignatureScheme, Signed, VerifyError};

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
    /// One problem of a vendor definition, on its line.
    #[error("{}:{line}: {}{message}", path.display(), if key.is_empty() { String::new() } else { format!("{key}: ") })]
    Definition {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
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
    /// Answer `status` with this body, of this content type.
    Reply {
        status: u16,
        body: Vec<u8>,
        content_type: &'static str,
    },
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
    /// The parameter's value as the whole body, as text (definitions only).
    EchoText {
        param: String,
        max_len: usize,
    },
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
    guard: runner::Guard,
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
    Definition(Definition),
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
            form: Form::Definition(d),
            guard: runner::Guard::new(runner::Policy::default()),
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
            guard: runner::Guard::new(runner::Policy::default()),
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
        let verify = match &self.form {
            Form::Library {
                verify_override: true,
                entries,
                ..
            } => entries.verify,
            _ => None,
        };
        match verify {
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
            None => scheme.verify(headers, body, delivery_id, secrets, now),
        }
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

    /// Answers a GET on the hook URL.
    pub fn handshake(&self, headers: &HeaderMap, query: &str) -> HandshakeOutcome {
        if let Form::Library {
            entries:
                loader::Entries {
                    handshake: Some(handshake),
                    ..
                },
            ..
        } = &self.form
        {
            return match loader::handshake(*handshake, headers, query.as_bytes()) {
                (abi::HANDSHAKE_NONE, _) => HandshakeOutcome::NotSupported,
                (status @ 100..=599, body) => HandshakeOutcome::Reply {
                    status: status as u16,
                    body,
                    content_type: "application/json",
                },
                _ => HandshakeOutcome::Failed,
            };
        }
        let (param, max_len) = match &self.handshake {
            HandshakeSpec::None => return HandshakeOutcome::NotSupported,
            HandshakeSpec::EchoQuery { param, max_len, .. }
            | HandshakeSpec::EchoText { param, max_len } => (param, *max_len),
        };
        let value = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == param.as_str())
            .map(|(_, v)| v);
        let value = match value {
            None => {
                return HandshakeOutcome::Invalid(format!("query parameter `{param}` is required"))
            }
            Some(v) if v.len() > max_len => {
                return HandshakeOutcome::Invalid(format!(
                    "query parameter `{param}` is longer than {max_len} bytes"
                ))
            }
            Some(v) => v.into_owned(),
        };
        match &self.handshake {
            HandshakeSpec::EchoQuery { field, .. } => {
                let mut body = serde_json::Map::new();
                body.insert(field.clone(), serde_json::Value::String(value));
                HandshakeOutcome::Reply {
                    status: 200,
                    body: serde_json::to_vec(&body).unwrap_or_default(),
                    content_type: "application/json",
                }
            }
            _ => HandshakeOutcome::Reply {
                status: 200,
                body: value.into_bytes(),
                content_type: "text/plain; charset=utf-8",
            },
        }
    }

    /// `library` or `definition`, for people.
    pub fn form(&self) -> &'static str {
        match self.form {
            Form::Library { .. } => "library",
            Form::Definition(_) => "definition",
        }
    }

    /// The plugin ABI a library was built for (`1.2`); `None` for a definition.
    pub fn abi(&self) -> Option<String> {
        match self.form {
            Form::Library { abi_minor, .. } => Some(format!("{}.{abi_minor}", abi::ABI_MAJOR)),
            Form::Definition(_) => None,
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
        let Some(scheme) = &self.scheme else {
            return "none: served only behind allow_ips".to_owned();
        };
        let encoding = match scheme.encoding {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        };
        let signed = match &scheme.signed {
            Signed::Body => "body".to_owned(),
            Signed::Template { template, .. } => format!("template {template:?}"),
        };
        let custom = match self.form {
            Form::Library {
                verify_override: true,
                ..
            } => " (plugin's own verify)",
            _ => "",
        };
        format!(
            "HMAC-{} {encoding}{}{} of {signed}{custom}",
            scheme.algorithm.as_str().to_uppercase(),
            if scheme.prefix.is_empty() {
                String::new()
            } else {
                format!(" after {:?}", scheme.prefix)
            },
            if scheme.several {
                ", several per header"
            } else {
                ""
            },
        )
    }

    /// The definition a vendor is defined by, for `switchyard vendor test`.
    pub fn definition(&self) -> Option<&Definition> {
        match &self.form {
            Form::Definition(d) => Some(d),
            Form::Library { .. } => None,
        }
    }
}
