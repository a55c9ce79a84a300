//! A workspace's vendors: their secrets, signature scheme changes and source addresses.

use serde_yaml::Value;

use super::{Checker, DEFAULT_TIMEOUT};
use crate::base::names::Secret;
use crate::config::locate::KeyPath;
use crate::config::raw::RawVendor;
use crate::config::{DefaultSecret, SignatureConfig, VendorConfig};
use crate::event::verify::{Encoding, SchemeChange};

/// Shorter secrets can be guessed or brute-forced offline from one signed delivery.
const MIN_SECRET_BYTES: usize = 16;

impl Checker<'_> {
    pub(super) fn vendor(&mut self, at: &KeyPath, raw: RawVendor) -> VendorConfig {
        let allow_ips: Vec<_> = (raw.allow_ips.unwrap_or_default().into_iter().enumerate())
            .filter_map(|(i, text)| self.ip_net(&at.key("allow_ips").index(i), &text?))
            .collect();
        let header_at = at.key("signature_header");
        let signature_header = raw
            .signature_header
            .and_then(|header| self.header_name(&header_at, &header));
        let signature = self.signature(&at.key("signature"), raw.signature, signature_header);
        let secrets = match (&signature, raw.secrets) {
            (SignatureConfig::None, None) => Vec::new(),
            (SignatureConfig::None, Some(_)) => {
                let message = "secrets are not used with `signature: none`: remove them, or the \
                               `signature: none`";
                self.problems.add(&at.key("secrets"), message);
                Vec::new()
            }
            (SignatureConfig::Plugin(_), secrets) => self.secrets(&at.key("secrets"), secrets),
        };
        if signature == SignatureConfig::None && allow_ips.is_empty() {
            let message = "`signature: none` turns the signature check off, so `allow_ips` must \
                           list the addresses the vendor sends from";
            self.problems.add(&at.key("signature"), message);
        }
        let plugin_timeout = (raw.plugin_timeout.filter(|t| !t.is_null()))
            .map(|t| self.duration(&at.key("plugin_timeout"), Some(t), DEFAULT_TIMEOUT));
        VendorConfig {
            secrets,
            signature,
            allow_ips,
            plugin_timeout,
        }
    }

    /// `signature:` (`none`, or `{ header, encoding, prefix }`), with the older
    /// `signature_header` folded in.
    pub(super) fn signature(
        &mut self,
        at: &KeyPath,
        raw: Option<Value>,
        signature_header: Option<String>,
    ) -> SignatureConfig {
        const SHAPE: &str = "expected `none` or a mapping such as \
                             { header: X-Signature, encoding: base64, prefix: \"sha256=\" }";
        let mut change = SchemeChange {
            header: signature_header.clone(),
            ..SchemeChange::default()
        };
        let fields = match raw {
            None | Some(Value::Null) => return SignatureConfig::Plugin(change),
            Some(Value::String(text)) if text == "none" => {
                if signature_header.is_some() {
                    let message = "`signature_header` has no effect with `signature: none`";
                    self.problems.add(at, message);
                }
                return SignatureConfig::None;
            }
            Some(Value::Mapping(fields)) => fields,
            Some(_) => {
                self.problems.add(at, SHAPE);
                return SignatureConfig::Plugin(change);
            }
        };
        for (key, value) in fields {
            let key = key.as_str().unwrap_or_default().to_owned();
            let field_at = at.key(&key);
            let Value::String(text) = value else {
                self.problems.add(&field_at, "expected a string");
                continue;
            };
            match key.as_str() {
                "header" if signature_header.is_some() => {
                    let message = "the header is also set by `signature_header`: keep one";
                    self.problems.add(&field_at, message);
                }
                "header" => change.header = self.header_name(&field_at, &text),
                "encoding" => match text.as_str() {
                    "hex" => change.encoding = Some(Encoding::Hex),
                    "base64" => change.encoding = Some(Encoding::Base64),
                    _ => {
                        let message = format!("unknown encoding {text:?}: expected hex or base64");
                        self.problems.add(&field_at, message);
                    }
                },
                "prefix" => change.prefix = Some(text),
                _ => {
                    let message =
                        format!("unknown key `{key}`: expected `header`, `encoding` or `prefix`");
                    self.problems.add(&field_at, message);
                }
            }
        }
        SignatureConfig::Plugin(change)
    }

    pub(super) fn secrets(&mut self, at: &KeyPath, raw: Option<Value>) -> Vec<Secret> {
        const EXAMPLE: &str = "such as secrets: [\"${ACME_WATSI_SECRET}\"]";
        match raw {
            Some(Value::Sequence(items)) if !items.is_empty() => (items.iter().enumerate())
                .filter_map(|(i, item)| self.secret(&at.index(i), item))
                .collect(),
            None | Some(Value::Null | Value::Sequence(_)) => {
                self.problems
                    .add(at, format!("at least one secret is required, {EXAMPLE}"));
                Vec::new()
            }
            Some(_) => {
                self.problems
                    .add(at, format!("expected a list of secrets, {EXAMPLE}"));
                Vec::new()
            }
        }
    }

    /// A secret: a string of at least [`MIN_SECRET_BYTES`], unless it is (or contains) a
    /// development default, which the server warns about at every start. Messages say what is
    /// wrong, never what was written.
    pub(super) fn secret(&mut self, at: &KeyPath, raw: &Value) -> Option<Secret> {
        match raw {
            Value::String(text) if !text.is_empty() => {
                let key = at.to_string();
                let defaulted = self.defaulted.get(&key);
                for var in defaulted.into_iter().flatten() {
                    let secret = DefaultSecret {
                        key: key.clone(),
                        var: var.clone(),
                    };
                    self.default_secrets.push(secret);
                }
                if text.len() < MIN_SECRET_BYTES && defaulted.is_none() {
                    let message = format!(
                        "the secret is shorter than {MIN_SECRET_BYTES} bytes: use a random one \
                         of {MIN_SECRET_BYTES} or more, such as `openssl rand -hex 32` prints"
                    );
                    self.problems.add(at, message);
                    return None;
                }
                Some(Secret::new(text))
            }
            Value::String(_) | Value::Null => {
                self.problems.add(at, "the secret is empty");
                None
            }
            _ => {
                self.problems.add(
                    at,
                    "expected a string: quote the secret so YAML keeps it as written",
                );
                None
            }
        }
    }
}
