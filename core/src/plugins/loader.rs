//! The only unsafe code in the core: opening plugin libraries, reading their descriptors, and
//! lending them requests and writers. Everything leaving this file is owned, safe Rust.

use std::ffi::c_void;
use std::path::Path;

use hyper::header::HeaderMap;
use libloading::{Library, Symbol};
use switchyard_plugin::abi;

use super::PluginError;

/// A descriptor copied out of a loaded library into owned data.
pub(super) struct LoadedDescriptor {
    pub abi_minor: u32,
    pub vendor: String,
    pub version: String,
    pub signature: LoadedSignature,
    pub delivery_id_header: String,
    pub event_type_header: String,
    pub handshake: LoadedHandshake,
    pub test_vectors: Vec<LoadedVector>,
    pub entries: Entries,
}

pub(super) struct LoadedSignature {
    pub header: String,
    pub encoding: u32,
    pub prefix: String,
    pub signed: u32,
    pub template: String,
    pub timestamp_header: String,
    pub tolerance_secs: u64,
}

pub(super) struct LoadedHandshake {
    pub kind: u32,
    pub query_param: String,
    pub response_field: String,
    pub max_len: u32,
}

pub(super) struct LoadedVector {
    pub body: Vec<u8>,
    pub secret: Vec<u8>,
    pub timestamp: String,
    pub delivery_id: String,
    pub expected: String,
}

/// The plugin's functions. They stay callable for the life of the process because the library
/// is never unloaded.
#[derive(Clone, Copy)]
pub(super) struct Entries {
    pub map_event: abi::MapEventFn,
    pub verify: Option<abi::VerifyFn>,
    pub handshake: Option<abi::HandshakeFn>,
}

/// Opens the library at `path` and copies its descriptor out. The library is leaked on success:
/// its code must outlive every pointer we keep to it, and unloading a Rust cdylib is unsound
/// anyway (thread-locals, registered destructors).
pub(super) fn open(path: &Path) -> Result<LoadedDescriptor, PluginError> {
    let file = path.to_path_buf();
    // SAFETY: loading runs the library's initialisers. Plugins are code the operator installed in
    // plugins_dir, trusted like the server binary itself; a switchyard plugin has no initialisers
    // beyond Rust's standard ones.
    let library = unsafe { Library::new(path) }.map_err(|e| PluginError::Open {
        path: file.clone(),
        reason: e.to_string(),
    })?;
    // SAFETY: the symbol's type is fixed by ABI major 1, which its name carries; a library that
    // exports this name with another type is not a switchyard plugin and is outside our contract.
    let entry: Symbol<abi::EntryFn> = unsafe { library.get(abi::ENTRY_SYMBOL) }
        .map_err(|_| PluginError::MissingSymbol { path: file.clone() })?;
    let descriptor = entry();
    if descriptor.is_null() {
        return Err(PluginError::InvalidDescriptor {
            path: file,
            reason: "the entry point returned no descriptor (it panicked while building it)".into(),
        });
    }
    // SAFETY: every ABI version keeps `abi_major` as the descriptor's first field, so it can be
    // read before anything else about the layout is trusted.
    let major = unsafe { descriptor.cast::<u32>().read() };
    if major != abi::ABI_MAJOR {
        return Err(PluginError::WrongAbi {
            path: file,
            found: major,
        });
    }
    // SAFETY: ABI major 1 fixes the layout of `Descriptor`; the pointer is to a 'static in the
    // library, which is never unloaded. `struct_size` is checked before any field past it is used.
    let d = unsafe { &*descriptor };
    if d.struct_size < std::mem::size_of::<abi::Descriptor>() {
        return Err(PluginError::InvalidDescriptor {
            path: file,
            reason: format!(
                "struct_size {} is smaller than ABI 1.0's {}",
                d.struct_size,
                std::mem::size_of::<abi::Descriptor>()
            ),
        });
    }
    let text = |slice: abi::Slice, field: &str| -> Result<String, PluginError> {
        // SAFETY: descriptor slices point at 'static data in the never-unloaded library.
        String::from_utf8(unsafe { bytes(slice) }.to_vec()).map_err(|_| {
            PluginError::InvalidDescriptor {
                path: path.to_path_buf(),
                reason: format!("`{field}` is not UTF-8"),
            }
        })
    };
    let vectors: &[abi::TestVector] = if d.test_vectors_len == 0 {
        &[]
    } else {
        // SAFETY: the plugin declares `test_vectors_len` entries at `test_vectors`, 'static.
        unsafe { std::slice::from_raw_parts(d.test_vectors, d.test_vectors_len) }
    };
    let test_vectors = vectors
        .iter()
        .map(|v| {
            Ok(LoadedVector {
                // SAFETY: as for every descriptor slice above.
                body: unsafe { bytes(v.body) }.to_vec(),
                // SAFETY: as above.
                secret: unsafe { bytes(v.secret) }.to_vec(),
                timestamp: text(v.timestamp, "test_vectors.timestamp")?,
                delivery_id: text(v.delivery_id, "test_vectors.delivery_id")?,
                expected: text(v.expected, "test_vectors.expected")?,
            })
        })
        .collect::<Result<Vec<_>, PluginError>>()?;
    let loaded = LoadedDescriptor {
        abi_minor: d.abi_minor,
        vendor: text(d.vendor, "vendor")?,
        version: text(d.version, "version")?,
        signature: LoadedSignature {
            header: text(d.signature.header, "signature.header")?,
            encoding: d.signature.encoding,
            prefix: text(d.signature.prefix, "signature.prefix")?,
            signed: d.signature.signed,
            template: text(d.signature.template, "signature.template")?,
            timestamp_header: text(d.signature.timestamp_header, "signature.timestamp_header")?,
            tolerance_secs: d.signature.tolerance_secs,
        },
        delivery_id_header: text(d.delivery_id_header, "delivery_id_header")?,
        event_type_header: text(d.event_type_header, "event_type_header")?,
        handshake: LoadedHandshake {
            kind: d.handshake.kind,
            query_param: text(d.handshake.query_param, "handshake.query_param")?,
            response_field: text(d.handshake.response_field, "handshake.response_field")?,
            max_len: d.handshake.max_len,
        },
        test_vectors,
        entries: Entries {
            map_event: d.map_event,
            verify: d.verify,
            handshake: d.handshake_override,
        },
    };
    std::mem::forget(library);
    Ok(loaded)
}

/// A request lent to the plugin: the header pairs point into `headers`, which outlives the call.
fn with_request<R>(
    headers: &HeaderMap,
    query: &[u8],
    body: &[u8],
    call: impl FnOnce(&abi::Request) -> R,
) -> R {
    let pairs: Vec<abi::HeaderPair> = headers
        .iter()
        .map(|(name, value)| abi::HeaderPair {
            name: abi::Slice::from_bytes(name.as_str().as_bytes()),
            value: abi::Slice::from_bytes(value.as_bytes()),
        })
        .collect();
    let request = abi::Request {
        headers: pairs.as_ptr(),
        headers_len: pairs.len(),
        query: abi::Slice::from_bytes(query),
        body: abi::Slice::from_bytes(body),
    };
    call(&request)
}

/// Calls `map_event`, collecting what the plugin writes.
pub(super) fn map_event(entries: Entries, headers: &HeaderMap, body: &[u8]) -> (u32, Vec<u8>) {
    let mut out = Vec::new();
    let status = with_request(headers, b"", body, |request| {
        let writer = writer(&mut out);
        (entries.map_event)(request, &writer)
    });
    (status, out)
}

/// Calls the plugin's own signature check for one secret.
pub(super) fn verify(
    verify: abi::VerifyFn,
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> u32 {
    with_request(headers, b"", body, |request| {
        verify(request, abi::Slice::from_bytes(secret))
    })
}

/// Calls the plugin's own handshake.
pub(super) fn handshake(
    handshake: abi::HandshakeFn,
    headers: &HeaderMap,
    query: &[u8],
) -> (u32, Vec<u8>) {
    let mut out = Vec::new();
    let status = with_request(headers, query, b"", |request| {
        let writer = writer(&mut out);
        handshake(request, &writer)
    });
    (status, out)
}

fn writer(out: &mut Vec<u8>) -> abi::Writer {
    abi::Writer {
        ctx: (out as *mut Vec<u8>).cast::<c_void>(),
        write: append,
    }
}

extern "C" fn append(ctx: *mut c_void, data: *const u8, len: usize) {
    if ctx.is_null() || (data.is_null() && len > 0) {
        return;
    }
    // SAFETY: `ctx` is the `&mut Vec<u8>` lent by `writer` for the duration of one call, and no
    // other reference to it is live while the plugin runs.
    let out = unsafe { &mut *ctx.cast::<Vec<u8>>() };
    // SAFETY: the plugin passes `len` readable bytes at `data`, valid for this call.
    out.extend_from_slice(unsafe { bytes(abi::Slice { ptr: data, len }) });
}

/// # Safety
/// `s` must point at `s.len` readable bytes that outlive `'a`, or have `len == 0`.
unsafe fn bytes<'a>(s: abi::Slice) -> &'a [u8] {
    if s.len == 0 || s.ptr.is_null() {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
    }
}
