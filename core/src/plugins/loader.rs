//! The only unsafe code in the core: opening plugin libraries, reading their descriptors, and
//! lending them requests and writers. Everything leaving this file is owned, safe Rust.

use std::ffi::c_void;
use std::path::Path;

use hyper::header::HeaderMap;
use libloading::{Library, Symbol};
use switchyard_plugin_abi as abi;

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
    pub dedupe: String,
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

/// The plugin's functions, `map_event` checked non-NULL. They stay callable for the life of the
/// process because the library is never unloaded.
#[derive(Clone, Copy)]
pub(super) struct Entries {
    pub map_event: abi::MapEventFn,
    pub verify: Option<abi::VerifyFn>,
    pub handshake: Option<abi::HandshakeFn>,
}

/// Opens the library at `path` and copies its descriptor out. The library is leaked on success:
/// its code must outlive every pointer we keep to it, and unloading a Rust cdylib is unsound
/// anyway (thread-locals, registered destructors).
///
/// Nothing of the descriptor is trusted before it is checked: first the pointer, then the major
/// version (the one field every version keeps first), then the minor version and `struct_size`,
/// and only then the fields `struct_size` covers; each slice and array pointer is checked before
/// it is read.
pub(super) fn open(path: &Path) -> Result<LoadedDescriptor, PluginError> {
    let file = path.to_path_buf();
    let invalid = |reason: String| PluginError::InvalidDescriptor {
        path: file.clone(),
        reason,
    };
    // A file cut short would be mapped past its end, and the first touch of such a page kills the
    // process (SIGBUS): refuse it before the dynamic loader sees it.
    super::elf::check(path)?;
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
        return Err(invalid(
            "the entry point returned no descriptor (it panicked while building it)".into(),
        ));
    }
    if !descriptor.is_aligned() {
        return Err(invalid("the descriptor pointer is misaligned".into()));
    }
    // SAFETY: non-null and aligned (checked above), pointing at the plugin's 'static descriptor;
    // every ABI version keeps `abi_major` as the first field, so it can be read before anything
    // else about the layout is trusted.
    let major = unsafe { descriptor.cast::<u32>().read() };
    if major != abi::ABI_MAJOR {
        return Err(PluginError::WrongAbi {
            path: file,
            found: major,
        });
    }
    // SAFETY: ABI major 1 starts every descriptor with `DescriptorHeader`'s three fields.
    let header = unsafe { descriptor.cast::<abi::DescriptorHeader>().read() };
    if header.abi_minor > abi::ABI_MINOR {
        return Err(PluginError::NewerMinor {
            path: file,
            found: header.abi_minor,
        });
    }
    if header.struct_size < abi::DESCRIPTOR_SIZE_1_0 {
        return Err(invalid(format!(
            "struct_size {} is smaller than ABI 1.0's {}",
            header.struct_size,
            abi::DESCRIPTOR_SIZE_1_0
        )));
    }
    // Copy the part of the descriptor the plugin has; a plugin of an older minor has fewer fields
    // and the rest keep their zero value (empty slices, `None`).
    let covered = header
        .struct_size
        .min(std::mem::size_of::<abi::Descriptor>());
    let mut d = std::mem::MaybeUninit::<abi::Descriptor>::zeroed();
    // SAFETY: the plugin declares `struct_size` readable bytes at `descriptor` (at least ABI
    // 1.0's, checked above) and we copy no more than that nor more than our own struct holds.
    // All-zero bytes are a valid `Descriptor` (null pointers, zero lengths, `None` functions), so
    // after the copy every byte is initialised with a valid value for its field.
    let d = unsafe {
        std::ptr::copy_nonoverlapping(
            descriptor.cast::<u8>(),
            d.as_mut_ptr().cast::<u8>(),
            covered,
        );
        d.assume_init()
    };
    let text = |slice: abi::Slice, field: &str| -> Result<String, PluginError> {
        // SAFETY: descriptor slices point at 'static data in the never-unloaded library;
        // `checked` refuses a null or oversized one.
        let bytes = unsafe { checked(slice) }.map_err(|why| invalid(format!("`{field}` {why}")))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| invalid(format!("`{field}` is not UTF-8")))
    };
    let bytes = |slice: abi::Slice, field: &str| -> Result<Vec<u8>, PluginError> {
        // SAFETY: as for `text`.
        let bytes = unsafe { checked(slice) }.map_err(|why| invalid(format!("`{field}` {why}")))?;
        Ok(bytes.to_vec())
    };
    let vectors: &[abi::TestVector] = if d.test_vectors_len == 0 {
        &[]
    } else if d.test_vectors.is_null() || !d.test_vectors.is_aligned() {
        return Err(invalid(format!(
            "`test_vectors` is null or misaligned but `test_vectors_len` is {}",
            d.test_vectors_len
        )));
    } else if d.test_vectors_len > 1024 {
        return Err(invalid(format!(
            "`test_vectors_len` {} is not believable (at most 1024)",
            d.test_vectors_len
        )));
    } else {
        // SAFETY: non-null, aligned, and the plugin declares `test_vectors_len` 'static entries.
        unsafe { std::slice::from_raw_parts(d.test_vectors, d.test_vectors_len) }
    };
    let test_vectors = vectors
        .iter()
        .map(|v| {
            Ok(LoadedVector {
                body: bytes(v.body, "test_vectors.body")?,
                secret: bytes(v.secret, "test_vectors.secret")?,
                timestamp: text(v.timestamp, "test_vectors.timestamp")?,
                delivery_id: text(v.delivery_id, "test_vectors.delivery_id")?,
                expected: text(v.expected, "test_vectors.expected")?,
            })
        })
        .collect::<Result<Vec<_>, PluginError>>()?;
    let Some(map_event) = d.map_event else {
        return Err(invalid(
            "`map_event` is NULL; it is the one function every plugin must have".into(),
        ));
    };
    let loaded = LoadedDescriptor {
        abi_minor: header.abi_minor,
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
        dedupe: text(d.dedupe, "dedupe")?,
        entries: Entries {
            map_event,
            verify: d.verify,
            handshake: d.handshake_override,
        },
    };
    std::mem::forget(library);
    Ok(loaded)
}

/// A descriptor slice, refused when it cannot be one: null or misplaced with a length, or longer
/// than any descriptor string should be.
///
/// # Safety
/// A non-null `s.ptr` must point at `s.len` readable bytes that live as long as the library.
unsafe fn checked(s: abi::Slice) -> Result<&'static [u8], &'static str> {
    const MAX: usize = 1 << 20;
    if s.len == 0 {
        Ok(&[])
    } else if s.ptr.is_null() {
        Err("is a null pointer with a non-zero length")
    } else if s.len > MAX {
        Err("is longer than 1 MiB")
    } else {
        // SAFETY: guaranteed by the caller; non-null and of a sane length, checked above.
        Ok(unsafe { std::slice::from_raw_parts(s.ptr, s.len) })
    }
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
