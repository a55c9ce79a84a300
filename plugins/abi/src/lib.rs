//! The C ABI between the switchyard core and a vendor plugin: the single source of truth.
//!
//! A plugin is a shared library exporting one symbol, [`ENTRY_SYMBOL`], a function returning a
//! pointer to a `'static` [`Descriptor`]. Everything crosses the boundary as `#[repr(C)]` data and
//! borrowed byte slices; nothing allocated on one side is freed on the other. Outputs go through a
//! [`Writer`] callback the core lends for the duration of one call.
//!
//! Versioning: the major version is part of the symbol name and repeated in the descriptor's first
//! field; a minor bump may only append fields to [`Descriptor`], and `struct_size` tells the core
//! how many of them this plugin filled in. The core loads a plugin of its own major and any minor
//! up to its own, reading only the bytes `struct_size` covers; fields past them take their
//! zero value (empty slice, `None`). Enumerations are plain `u32` constants rather than Rust
//! enums, so that an unexpected value from a foreign library is an error, not undefined behaviour.
//! Every function pointer is an `Option`, so a NULL one is a value the core can check, not
//! undefined behaviour.
//!
//! This crate holds the ABI and nothing else, so that a change to it is visible as one: the safe
//! SDK (`switchyard-plugin`) and the core both build on it.
//!
//! History: 1.0 first release. 1.1 appended [`Descriptor::dedupe`]; the mapped event's JSON gained
//! `identity` (a 1.0 plugin's events are keyed the 1.0 way), and the core stopped reading `raw`
//! from it (the core keeps the request bytes itself).

use std::ffi::c_void;

/// Incompatible layout changes bump this, and the symbol name with it.
pub const ABI_MAJOR: u32 = 1;
/// Appended descriptor fields bump this.
pub const ABI_MINOR: u32 = 1;
/// The symbol every plugin exports, NUL-terminated for the loader.
pub const ENTRY_SYMBOL: &[u8] = b"switchyard_plugin_v1\0";

/// The entry point's type: returns the plugin's descriptor, or null if it could not be built.
pub type EntryFn = extern "C" fn() -> *const Descriptor;

/// A borrowed byte slice. For descriptor fields it points at `'static` data inside the plugin;
/// for call arguments it is valid only for the duration of the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Slice {
    pub ptr: *const u8,
    pub len: usize,
}

impl Slice {
    pub const EMPTY: Slice = Slice {
        ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
        len: 0,
    };

    pub const fn from_bytes(bytes: &[u8]) -> Slice {
        Slice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    pub const fn from_str(s: &str) -> Slice {
        Slice::from_bytes(s.as_bytes())
    }
}

/// One request header, as received (names are compared case-insensitively).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HeaderPair {
    pub name: Slice,
    pub value: Slice,
}

/// One delivery as the core received it: headers, the raw query string, and the raw body bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub headers: *const HeaderPair,
    pub headers_len: usize,
    pub query: Slice,
    pub body: Slice,
}

/// An output channel the core lends to the plugin: each call appends `len` bytes to the output.
#[repr(C)]
pub struct Writer {
    pub ctx: *mut c_void,
    pub write: extern "C" fn(ctx: *mut c_void, bytes: *const u8, len: usize),
}

/// Statuses returned by [`MapEventFn`].
pub const MAP_OK: u32 = 0;
/// The payload cannot be mapped; the writer holds a UTF-8 reason (answered as 400).
pub const MAP_INVALID_PAYLOAD: u32 = 1;
/// The plugin panicked; the writer may hold the panic message (answered as 500).
pub const MAP_PANICKED: u32 = 2;

/// Verdicts returned by [`VerifyFn`].
pub const VERIFY_OK: u32 = 0;
pub const VERIFY_MISSING: u32 = 1;
pub const VERIFY_MALFORMED: u32 = 2;
pub const VERIFY_STALE: u32 = 3;
pub const VERIFY_MISMATCH: u32 = 4;
pub const VERIFY_PANICKED: u32 = 255;

/// Returned by [`HandshakeFn`] when the request is not a handshake (answered as 405).
pub const HANDSHAKE_NONE: u32 = 0;
/// Returned by [`HandshakeFn`] when the plugin panicked (answered as 500).
pub const HANDSHAKE_PANICKED: u32 = 1;

/// Maps one verified delivery. On [`MAP_OK`] the writer holds one JSON object with the fields of
/// `switchyard_plugin::MappedEvent` (`vendor_type`, `type`, `vendor_event_id`, `occurred_at`,
/// `data`, and since 1.1 `identity`); otherwise it holds the reason.
pub type MapEventFn = extern "C" fn(request: *const Request, out: *const Writer) -> u32;

/// Optional override of the core's signature check for one secret, for schemes the data form
/// cannot express. Returns one of the `VERIFY_*` constants.
pub type VerifyFn = extern "C" fn(request: *const Request, secret: Slice) -> u32;

/// Optional override of the data-form handshake for a GET. Returns the HTTP status to answer
/// (100..=599) with the JSON body written to `out`, or [`HANDSHAKE_NONE`] / [`HANDSHAKE_PANICKED`].
pub type HandshakeFn = extern "C" fn(request: *const Request, out: *const Writer) -> u32;

/// How the signature header's value encodes the MAC.
pub const ENCODING_HEX: u32 = 0;
pub const ENCODING_BASE64: u32 = 1;

/// What the MAC covers.
pub const SIGNED_BODY: u32 = 0;
/// A template in which `{body}`, `{timestamp}` and `{id}` (the delivery id) are substituted.
pub const SIGNED_TEMPLATE: u32 = 1;

/// The vendor's signature scheme, as data: the core does the cryptography (HMAC-SHA256, constant
/// time comparison) so every vendor gets the same check.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SignatureScheme {
    /// Header carrying the signature, e.g. `X-Watsi-Signature`.
    pub header: Slice,
    /// [`ENCODING_HEX`] or [`ENCODING_BASE64`].
    pub encoding: u32,
    /// Text before the encoded MAC in the header value, e.g. `sha256=`; may be empty.
    pub prefix: Slice,
    /// [`SIGNED_BODY`] or [`SIGNED_TEMPLATE`].
    pub signed: u32,
    /// The template when `signed` is [`SIGNED_TEMPLATE`]; empty otherwise.
    pub template: Slice,
    /// Header carrying the Unix timestamp (seconds) for templates; empty when none.
    pub timestamp_header: Slice,
    /// Largest accepted distance between that timestamp and now, in seconds; 0 = not checked.
    pub tolerance_secs: u64,
}

/// No handshake: a GET is answered 405.
pub const HANDSHAKE_KIND_NONE: u32 = 0;
/// Echo a query parameter back as `{"<field>": "<value>"}` with 200.
pub const HANDSHAKE_KIND_ECHO_QUERY: u32 = 1;

/// The vendor's URL-validation handshake, as data.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HandshakeSpec {
    pub kind: u32,
    /// The query parameter to echo, e.g. `challenge`.
    pub query_param: Slice,
    /// The JSON field to answer it in, e.g. `challenge`.
    pub response_field: Slice,
    /// Longest value accepted, in bytes (longer is answered 400).
    pub max_len: u32,
}

/// A known-good signature: the loader recomputes `expected` with the core's own HMAC code and
/// refuses the plugin if it differs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TestVector {
    pub body: Slice,
    pub secret: Slice,
    /// For template schemes; empty otherwise.
    pub timestamp: Slice,
    /// For template schemes that sign the delivery id; empty otherwise.
    pub delivery_id: Slice,
    /// The full header value the vendor would send.
    pub expected: Slice,
}

/// The first three fields of every descriptor, of every version: what the core reads before it
/// trusts anything else about the layout.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DescriptorHeader {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub struct_size: usize,
}

/// Everything the core needs to know about one vendor. `abi_major`, `abi_minor` and `struct_size`
/// must stay the first fields (they are [`DescriptorHeader`]); new fields are only ever appended.
#[repr(C)]
pub struct Descriptor {
    pub abi_major: u32,
    pub abi_minor: u32,
    /// `size_of::<Descriptor>()` as the plugin was compiled.
    pub struct_size: usize,
    /// Lower-case vendor name, used in URLs and routes.yaml.
    pub vendor: Slice,
    pub version: Slice,
    pub signature: SignatureScheme,
    /// Header naming this delivery attempt's id (a dedupe basis); empty when none.
    pub delivery_id_header: Slice,
    /// Header naming the event type, where the vendor sends one; empty when none.
    pub event_type_header: Slice,
    pub handshake: HandshakeSpec,
    /// Null only when `test_vectors_len` is 0.
    pub test_vectors: *const TestVector,
    pub test_vectors_len: usize,
    /// Required: a descriptor with `None` here is refused.
    pub map_event: Option<MapEventFn>,
    pub verify: Option<VerifyFn>,
    pub handshake_override: Option<HandshakeFn>,
    // ---- 1.1 ----
    /// UTF-8, for people (`switchyard plugins`): what identifies one event of this vendor, and so
    /// what its repeats are recognised by, e.g. `event_id: id`. Empty when not said.
    pub dedupe: Slice,
}

/// `struct_size` of an ABI 1.0 descriptor: the smallest the core accepts.
pub const DESCRIPTOR_SIZE_1_0: usize = std::mem::offset_of!(Descriptor, dedupe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_a_prefix_of_the_descriptor() {
        assert_eq!(std::mem::offset_of!(Descriptor, abi_major), 0);
        assert_eq!(
            std::mem::offset_of!(Descriptor, abi_minor),
            std::mem::offset_of!(DescriptorHeader, abi_minor)
        );
        assert_eq!(
            std::mem::offset_of!(Descriptor, struct_size),
            std::mem::offset_of!(DescriptorHeader, struct_size)
        );
        assert!(DESCRIPTOR_SIZE_1_0 < std::mem::size_of::<Descriptor>());
    }

    #[test]
    fn optional_function_pointers_are_pointer_sized() {
        // NULL is `None`: the layout of an `Option<extern "C" fn>` is that of a C function pointer.
        assert_eq!(
            std::mem::size_of::<Option<MapEventFn>>(),
            std::mem::size_of::<*const c_void>()
        );
    }
}
