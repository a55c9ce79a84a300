//! The vendor's GET handshake: declared as data (a library's descriptor or a definition's
//! `handshake`) and answered by the core, or answered by a library's own override.

use hyper::header::HeaderMap;
use switchyard_plugin_abi as abi;

use super::{loader, Form, VendorPlugin};

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

impl VendorPlugin {
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
}
