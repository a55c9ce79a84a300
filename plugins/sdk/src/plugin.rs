//! The safe description of a vendor plugin: what a plugin author fills in.

use crate::event::{Identity, MapError, MappedEvent};

/// One vendor plugin. Declare it as a `const` and hand it to [`export_plugin!`](crate::export_plugin).
pub struct Plugin {
    /// Lower-case vendor name, used in URLs (`/hooks/{workspace}/{vendor}`) and routes.yaml.
    pub vendor: &'static str,
    /// The plugin's own version, usually `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    pub signature: Signature,
    /// Header naming the delivery attempt (a dedupe basis when the payload carries no event id).
    pub delivery_id_header: Option<&'static str>,
    /// Header naming the event type, where the vendor sends one.
    pub event_type_header: Option<&'static str>,
    pub handshake: Handshake,
    /// Known-good signatures, checked by the core at load time.
    pub test_vectors: &'static [TestVector],
    /// Turns a verified delivery into the envelope's vendor-dependent fields.
    pub map_event: fn(&Request<'_>) -> Result<MappedEvent, MapError>,
    /// Replaces the core's signature check, for schemes [`Signature`] cannot express. Leave `None`
    /// whenever possible: the core's check is constant-time and shared by every vendor.
    pub verify: Option<fn(&Request<'_>, &[u8]) -> Verdict>,
    /// Replaces the data-form handshake for GET requests.
    pub handshake_override: Option<fn(&Request<'_>) -> Option<HandshakeReply>>,
    /// For people (`switchyard plugins`): what identifies one event, i.e. which [`Identity`]
    /// `map_event` returns, such as `event_id: id; delivery_id when the body has none`.
    ///
    /// [`Identity`]: crate::Identity
    pub dedupe: &'static str,
}

impl Plugin {
    /// A plugin with the required parts; the rest default to none (no delivery-id or event-type
    /// header, no handshake, no test vectors, the core's own verification).
    pub const fn new(
        vendor: &'static str,
        version: &'static str,
        signature: Signature,
        map_event: fn(&Request<'_>) -> Result<MappedEvent, MapError>,
    ) -> Plugin {
        Plugin {
            vendor,
            version,
            signature,
            delivery_id_header: None,
            event_type_header: None,
            handshake: Handshake::None,
            test_vectors: &[],
            map_event,
            verify: None,
            handshake_override: None,
            dedupe: "",
        }
    }

    pub const fn dedupe(self, dedupe: &'static str) -> Plugin {
        Plugin { dedupe, ..self }
    }

    pub const fn delivery_id_header(self, header: &'static str) -> Plugin {
        Plugin {
            delivery_id_header: Some(header),
            ..self
        }
    }

    pub const fn event_type_header(self, header: &'static str) -> Plugin {
        Plugin {
            event_type_header: Some(header),
            ..self
        }
    }

    pub const fn handshake(self, handshake: Handshake) -> Plugin {
        Plugin { handshake, ..self }
    }

    pub const fn test_vectors(self, test_vectors: &'static [TestVector]) -> Plugin {
        Plugin {
            test_vectors,
            ..self
        }
    }

    pub const fn verify(self, verify: fn(&Request<'_>, &[u8]) -> Verdict) -> Plugin {
        Plugin {
            verify: Some(verify),
            ..self
        }
    }

    pub const fn handshake_override(
        self,
        handshake: fn(&Request<'_>) -> Option<HandshakeReply>,
    ) -> Plugin {
        Plugin {
            handshake_override: Some(handshake),
            ..self
        }
    }
}

/// How the vendor signs: HMAC-SHA256, in a header, encoded hex or base64.
#[derive(Clone, Copy, Debug)]
pub struct Signature {
    pub header: &'static str,
    pub encoding: Encoding,
    pub prefix: &'static str,
    pub signed: Signed,
}

impl Signature {
    /// `header: <hex of HMAC-SHA256(secret, raw body)>`, the most common scheme.
    pub const fn hmac_sha256_hex(header: &'static str) -> Signature {
        Signature {
            header,
            encoding: Encoding::Hex,
            prefix: "",
            signed: Signed::Body,
        }
    }

    /// The same MAC, base64-encoded.
    pub const fn base64(self) -> Signature {
        Signature {
            encoding: Encoding::Base64,
            ..self
        }
    }

    /// Text before the MAC in the header value, such as `sha256=`.
    pub const fn with_prefix(self, prefix: &'static str) -> Signature {
        Signature { prefix, ..self }
    }

    /// Sign a template instead of the bare body (see [`Signed::Template`]).
    pub const fn signing(self, signed: Signed) -> Signature {
        Signature { signed, ..self }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// What the MAC covers.
#[derive(Clone, Copy, Debug)]
pub enum Signed {
    /// The raw body bytes, exactly as received.
    Body,
    /// A template such as `{timestamp}.{body}`: `{body}` is the raw body, `{timestamp}` the value
    /// of `timestamp_header`, `{id}` the delivery id. A timestamp further than `tolerance_secs`
    /// from now is refused as stale (0 = not checked).
    Template {
        template: &'static str,
        timestamp_header: &'static str,
        tolerance_secs: u64,
    },
}

/// The vendor's URL-validation handshake.
#[derive(Clone, Copy, Debug)]
pub enum Handshake {
    /// GET is answered 405.
    None,
    /// GET `?<param>=v` is answered 200 `{"<field>":"v"}`; a missing parameter or one longer
    /// than `max_len` bytes is answered 400.
    EchoQuery {
        param: &'static str,
        field: &'static str,
        max_len: u32,
    },
}

/// A known-good signature the core checks at load time.
#[derive(Clone, Copy, Debug)]
pub struct TestVector {
    pub body: &'static str,
    pub secret: &'static str,
    /// The full header value the vendor sends for `body` signed with `secret`.
    pub expected: &'static str,
    /// For template schemes: the timestamp and delivery id the template was filled with.
    pub timestamp: &'static str,
    pub delivery_id: &'static str,
}

impl TestVector {
    /// A vector for a scheme that signs the bare body.
    pub const fn body(body: &'static str, secret: &'static str, expected: &'static str) -> Self {
        TestVector {
            body,
            secret,
            expected,
            timestamp: "",
            delivery_id: "",
        }
    }
}

/// The result of a plugin's own signature check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Verified,
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

/// A handshake answer from [`Plugin::handshake_override`].
#[derive(Clone, Debug)]
pub struct HandshakeReply {
    pub status: u16,
    pub body: serde_json::Value,
}

/// One delivery, borrowed from the core for the duration of a call.
pub struct Request<'a> {
    headers: Vec<(&'a [u8], &'a [u8])>,
    query: &'a [u8],
    body: &'a [u8],
}

impl<'a> Request<'a> {
    /// Builds a request from parts; the export macro does this for the core's calls, and plugin
    /// tests use it directly.
    pub fn new(headers: Vec<(&'a [u8], &'a [u8])>, query: &'a [u8], body: &'a [u8]) -> Self {
        Request {
            headers,
            query,
            body,
        }
    }

    /// A request with only a body, for tests.
    pub fn from_body(body: &'a [u8]) -> Self {
        Request::new(Vec::new(), b"", body)
    }

    /// The raw body bytes, exactly as received.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The raw query string, without the `?`.
    pub fn query(&self) -> &'a [u8] {
        self.query
    }

    /// The first header named `name` (case-insensitive, as HTTP says), if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The event's identity for a vendor whose body may carry an event id and whose delivery
    /// id header names the event otherwise: the event id when there is one, else the header's
    /// value; neither is [`MapError::MissingIdentity`] with `missing` (what was looked for).
    pub fn event_id_or_header(
        &self,
        event_id: Option<&str>,
        header: &str,
        missing: &'static str,
    ) -> Result<Identity, MapError> {
        match (event_id, self.header(header)) {
            (Some(id), _) => Ok(Identity::event_id(id)),
            (None, Some(delivery)) if !delivery.is_empty() => Ok(Identity::delivery_id(delivery)),
            _ => Err(MapError::MissingIdentity(missing)),
        }
    }
}
