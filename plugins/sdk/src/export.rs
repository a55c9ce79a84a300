//! The export macro and the runtime behind it: the only place on the plugin side where raw
//! pointers from the core are turned into safe Rust, and where panics are stopped before they
//! can unwind across the C boundary.

use std::any::Any;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::abi;
use crate::plugin::{Encoding, Handshake, HandshakeReply, Plugin, Request, Signed, Verdict};

/// Exports a [`Plugin`] as the `switchyard_plugin_v1` symbol of the cdylib being built.
///
/// ```ignore
/// pub const PLUGIN: Plugin = Plugin { vendor: "acme", /* ... */ };
/// switchyard_plugin::export_plugin!(PLUGIN);
/// ```
///
/// Every entry point runs inside `catch_unwind`: a panic in plugin code becomes an error status
/// the core answers with 500, never an unwind into the server. That only works when the plugin
/// is built with `panic = "unwind"`, so `panic = "abort"` is a compile error.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:expr) => {
        #[cfg(panic = "abort")]
        compile_error!(
            "switchyard plugins must be built with panic = \"unwind\": under \"abort\" a panic in \
             the plugin would kill the whole server instead of failing one request"
        );

        const _: () = {
            static SWITCHYARD_PLUGIN: $crate::Plugin = $plugin;
            static SWITCHYARD_EXPORTED: ::std::sync::OnceLock<$crate::export::Exported> =
                ::std::sync::OnceLock::new();

            extern "C" fn map_event(
                request: *const $crate::abi::Request,
                out: *const $crate::abi::Writer,
            ) -> u32 {
                // SAFETY: the core lends a request and writer valid for the whole call.
                unsafe { $crate::export::map_event_entry(&SWITCHYARD_PLUGIN, request, out) }
            }

            extern "C" fn verify(
                request: *const $crate::abi::Request,
                secret: $crate::abi::Slice,
            ) -> u32 {
                // SAFETY: the core lends a request and secret valid for the whole call.
                unsafe { $crate::export::verify_entry(&SWITCHYARD_PLUGIN, request, secret) }
            }

            extern "C" fn handshake(
                request: *const $crate::abi::Request,
                out: *const $crate::abi::Writer,
            ) -> u32 {
                // SAFETY: the core lends a request and writer valid for the whole call.
                unsafe { $crate::export::handshake_entry(&SWITCHYARD_PLUGIN, request, out) }
            }

            #[no_mangle]
            pub extern "C" fn switchyard_plugin_v1() -> *const $crate::abi::Descriptor {
                $crate::export::entry(
                    &SWITCHYARD_EXPORTED,
                    &SWITCHYARD_PLUGIN,
                    $crate::export::Entries {
                        map_event,
                        verify,
                        handshake,
                    },
                )
            }
        };
    };
}

/// The trampolines the macro generates for one plugin.
#[doc(hidden)]
pub struct Entries {
    pub map_event: abi::MapEventFn,
    pub verify: abi::VerifyFn,
    pub handshake: abi::HandshakeFn,
}

/// The descriptor together with the test-vector array it points into.
#[doc(hidden)]
pub struct Exported {
    descriptor: abi::Descriptor,
    _vectors: Box<[abi::TestVector]>,
}

// SAFETY: every pointer in the descriptor points at `'static` string literals of the plugin or at
// `_vectors`, which lives in the same never-dropped static and is never mutated after creation.
unsafe impl Sync for Exported {}
// SAFETY: as above; the pointed-to data is immutable and `'static`, so moving it is harmless.
unsafe impl Send for Exported {}

#[doc(hidden)]
pub fn entry(
    cell: &'static OnceLock<Exported>,
    plugin: &'static Plugin,
    entries: Entries,
) -> *const abi::Descriptor {
    let built = catch_unwind(AssertUnwindSafe(|| {
        &cell.get_or_init(|| build(plugin, entries)).descriptor as *const abi::Descriptor
    }));
    built.unwrap_or(std::ptr::null())
}

fn build(plugin: &'static Plugin, entries: Entries) -> Exported {
    let vectors: Box<[abi::TestVector]> = plugin
        .test_vectors
        .iter()
        .map(|v| abi::TestVector {
            body: abi::Slice::from_str(v.body),
            secret: abi::Slice::from_str(v.secret),
            timestamp: abi::Slice::from_str(v.timestamp),
            delivery_id: abi::Slice::from_str(v.delivery_id),
            expected: abi::Slice::from_str(v.expected),
        })
        .collect();
    let (signed, template, timestamp_header, tolerance_secs) = match plugin.signature.signed {
        Signed::Body => (abi::SIGNED_BODY, "", "", 0),
        Signed::Template {
            template,
            timestamp_header,
            tolerance_secs,
        } => (
            abi::SIGNED_TEMPLATE,
            template,
            timestamp_header,
            tolerance_secs,
        ),
    };
    let handshake = match plugin.handshake {
        Handshake::None => abi::HandshakeSpec {
            kind: abi::HANDSHAKE_KIND_NONE,
            query_param: abi::Slice::EMPTY,
            response_field: abi::Slice::EMPTY,
            max_len: 0,
        },
        Handshake::EchoQuery {
            param,
            field,
            max_len,
        } => abi::HandshakeSpec {
            kind: abi::HANDSHAKE_KIND_ECHO_QUERY,
            query_param: abi::Slice::from_str(param),
            response_field: abi::Slice::from_str(field),
            max_len,
        },
    };
    let descriptor = abi::Descriptor {
        abi_major: abi::ABI_MAJOR,
        abi_minor: abi::ABI_MINOR,
        struct_size: std::mem::size_of::<abi::Descriptor>(),
        vendor: abi::Slice::from_str(plugin.vendor),
        version: abi::Slice::from_str(plugin.version),
        signature: abi::SignatureScheme {
            header: abi::Slice::from_str(plugin.signature.header),
            encoding: match plugin.signature.encoding {
                Encoding::Hex => abi::ENCODING_HEX,
                Encoding::Base64 => abi::ENCODING_BASE64,
            },
            prefix: abi::Slice::from_str(plugin.signature.prefix),
            signed,
            template: abi::Slice::from_str(template),
            timestamp_header: abi::Slice::from_str(timestamp_header),
            tolerance_secs,
        },
        delivery_id_header: abi::Slice::from_str(plugin.delivery_id_header.unwrap_or("")),
        event_type_header: abi::Slice::from_str(plugin.event_type_header.unwrap_or("")),
        handshake,
        test_vectors: vectors.as_ptr(),
        test_vectors_len: vectors.len(),
        map_event: Some(entries.map_event),
        verify: plugin.verify.map(|_| entries.verify),
        handshake_override: plugin.handshake_override.map(|_| entries.handshake),
        dedupe: abi::Slice::from_str(plugin.dedupe),
    };
    Exported {
        descriptor,
        _vectors: vectors,
    }
}

/// # Safety
/// `request` (and `out`, where taken) must be null or valid for the whole call, as the core
/// guarantees for every call through the descriptor.
#[doc(hidden)]
pub unsafe fn map_event_entry(
    plugin: &Plugin,
    request: *const abi::Request,
    out: *const abi::Writer,
) -> u32 {
    // SAFETY: the core passes a writer that stays valid for the whole call (null is refused).
    let Some(out) = (unsafe { out.as_ref() }) else {
        return abi::MAP_PANICKED;
    };
    let mut out = Output(out);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the core passes a request whose slices stay valid for the whole call.
        let request = unsafe { request_from_abi(request) }?;
        Some(match (plugin.map_event)(&request) {
            Ok(event) => match serde_json::to_writer(&mut out, &event) {
                Ok(()) => abi::MAP_OK,
                Err(e) => {
                    let _ = write!(out, "mapped event could not be serialised: {e}");
                    abi::MAP_INVALID_PAYLOAD
                }
            },
            Err(e) => {
                let _ = write!(out, "{e}");
                abi::MAP_INVALID_PAYLOAD
            }
        })
    }));
    match outcome {
        Ok(Some(status)) => status,
        Ok(None) => abi::MAP_PANICKED,
        Err(panic) => {
            let _ = out.write_all(panic_message(&*panic).as_bytes());
            abi::MAP_PANICKED
        }
    }
}

/// # Safety
/// `request` (and `out`, where taken) must be null or valid for the whole call, as the core
/// guarantees for every call through the descriptor.
#[doc(hidden)]
pub unsafe fn verify_entry(
    plugin: &Plugin,
    request: *const abi::Request,
    secret: abi::Slice,
) -> u32 {
    let Some(verify) = plugin.verify else {
        return abi::VERIFY_PANICKED;
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the core passes a request and secret valid for the whole call.
        let request = unsafe { request_from_abi(request) }?;
        // SAFETY: as above.
        let secret = unsafe { slice(secret) };
        Some(verify(&request, secret))
    }));
    match outcome {
        Ok(Some(Verdict::Verified)) => abi::VERIFY_OK,
        Ok(Some(Verdict::Missing)) => abi::VERIFY_MISSING,
        Ok(Some(Verdict::Malformed)) => abi::VERIFY_MALFORMED,
        Ok(Some(Verdict::Stale)) => abi::VERIFY_STALE,
        Ok(Some(Verdict::Mismatch)) => abi::VERIFY_MISMATCH,
        Ok(None) | Err(_) => abi::VERIFY_PANICKED,
    }
}

/// # Safety
/// `request` (and `out`, where taken) must be null or valid for the whole call, as the core
/// guarantees for every call through the descriptor.
#[doc(hidden)]
pub unsafe fn handshake_entry(
    plugin: &Plugin,
    request: *const abi::Request,
    out: *const abi::Writer,
) -> u32 {
    let Some(handshake) = plugin.handshake_override else {
        return abi::HANDSHAKE_NONE;
    };
    // SAFETY: the core passes a writer that stays valid for the whole call (null is refused).
    let Some(out) = (unsafe { out.as_ref() }) else {
        return abi::HANDSHAKE_PANICKED;
    };
    let mut out = Output(out);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the core passes a request whose slices stay valid for the whole call.
        let request = unsafe { request_from_abi(request) }?;
        Some(match handshake(&request) {
            None => abi::HANDSHAKE_NONE,
            Some(HandshakeReply { status, body }) => match serde_json::to_writer(&mut out, &body) {
                Ok(()) if (100..=599).contains(&status) => u32::from(status),
                _ => abi::HANDSHAKE_PANICKED,
            },
        })
    }));
    match outcome {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => abi::HANDSHAKE_PANICKED,
    }
}

/// Borrows the core's request as safe Rust; `None` for a null pointer.
///
/// # Safety
/// `request`, its header array and every slice in it must be valid for `'a`.
unsafe fn request_from_abi<'a>(request: *const abi::Request) -> Option<Request<'a>> {
    // SAFETY: the caller guarantees the pointer is valid or null.
    let request = unsafe { request.as_ref() }?;
    let pairs: &[abi::HeaderPair] = if request.headers_len == 0 || request.headers.is_null() {
        &[]
    } else {
        // SAFETY: the core passes `headers_len` initialised pairs at `headers`.
        unsafe { std::slice::from_raw_parts(request.headers, request.headers_len) }
    };
    let headers = pairs
        .iter()
        // SAFETY: each pair's slices are valid for the call, per the caller's guarantee.
        .map(|h| unsafe { (slice(h.name), slice(h.value)) })
        .collect();
    // SAFETY: as above.
    let (query, body) = unsafe { (slice(request.query), slice(request.body)) };
    Some(Request::new(headers, query, body))
}

/// # Safety
/// `s` must point at `s.len` readable bytes valid for `'a`, or have `len == 0`.
unsafe fn slice<'a>(s: abi::Slice) -> &'a [u8] {
    if s.len == 0 || s.ptr.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
    }
}

/// `io::Write` over the core's writer callback.
struct Output<'a>(&'a abi::Writer);

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.0.write)(self.0.ctx, buf.as_ptr(), buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload");
    format!("plugin panicked: {text}")
}
