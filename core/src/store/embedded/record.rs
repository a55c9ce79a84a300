//! The byte layout of what the embedded store keeps: the event index entry (where each
//! envelope is in the log; in the index files beside the log, see [`super::index`], and in
//! sled for events that outlive their segment), dedupe claims and their expiry entries,
//! records that carry their envelope, each behind the format version of
//! [`crate::store::codec`].

use std::cell::RefCell;

use super::dictionary;
use crate::base::id::EventId;
use crate::store::codec::{payload, put_bytes16, put_bytes32, Reader, RecordError, VERSION};

/// The store's layout, recorded in sled's `meta` tree. Version 1 kept queue entries and
/// envelopes in sled; version 2 makes the log the queue; version 3 moves the event index out
/// of sled into files beside the log's segments; version 4 compresses envelopes with a
/// dictionary ([`compress`]). Stores of versions 2 and 3 are taken up in place.
pub const STORE_FORMAT: u8 = 4;

/// The layout of a log frame, written at its start: unchanged since store format 2.
pub const FRAME_FORMAT: u8 = 2;

/// Where an envelope's bytes are in the log: zstd-compressed, in the frame that made it
/// durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSpan {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

/// An accepted event's index entry, for lookup: the sink queues it went to, where its
/// envelope is, and the fields event search filters on (see [`super::search`]), so a search
/// reads no envelope. Entries written before search have none.
pub struct StoredEvent<'a> {
    pub queues: Vec<&'a [u8]>,
    pub span: LogSpan,
    pub search: &'a [u8],
}

impl<'a> StoredEvent<'a> {
    pub fn encode(queues: &[&[u8]], span: LogSpan, search: &[u8]) -> Vec<u8> {
        let mut out = vec![VERSION];
        let count = u8::try_from(queues.len()).unwrap_or(u8::MAX);
        out.push(count);
        for q in queues.iter().take(usize::from(count)) {
            put_bytes16(&mut out, q);
        }
        out.extend_from_slice(&span.segment.to_be_bytes());
        out.extend_from_slice(&span.offset.to_be_bytes());
        out.extend_from_slice(&span.len.to_be_bytes());
        out.extend_from_slice(search);
        out
    }

    pub fn decode(bytes: &'a [u8]) -> Result<StoredEvent<'a>, RecordError> {
        let mut r = Reader(payload(bytes)?);
        let count = r.u8()?;
        let queues = (0..count)
            .map(|_| r.bytes16())
            .collect::<Result<Vec<_>, _>>()?;
        let span = LogSpan {
            segment: r.u64()?,
            offset: r.u64()?,
            len: r.u32()?,
        };
        Ok(StoredEvent {
            queues,
            span,
            search: r.0,
        })
    }
}

/// A record that needs its event's envelope wherever the log is (attempts of an event that
/// failed, a dead letter): the record, then the compressed envelope, copied once at the first
/// failure so that no log segment is held for it.
pub struct Kept<'a> {
    pub record: &'a [u8],
    pub envelope: &'a [u8],
}

impl<'a> Kept<'a> {
    pub fn encode(record: &[u8], envelope: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + record.len() + envelope.len());
        out.push(VERSION);
        put_bytes32(&mut out, record);
        out.extend_from_slice(envelope);
        out
    }

    pub fn decode(bytes: &'a [u8]) -> Result<Kept<'a>, RecordError> {
        let mut r = Reader(payload(bytes)?);
        let record = r.bytes32()?;
        Ok(Kept {
            record,
            envelope: r.0,
        })
    }
}

/// Envelopes are JSON that repeats itself (`data` restates `raw`): zstd's fastest level
/// roughly halves them for a few microseconds, and with [`dictionary::ENVELOPES_V1`] as its
/// history takes a further quarter off a small one.
const ZSTD_LEVEL: i32 = 1;

/// The first byte of a compressed envelope compressed with [`dictionary::ENVELOPES_V1`]; one
/// compressed without a dictionary (before store format 4) starts with zstd's magic number.
const WITH_DICTIONARY_V1: u8 = 1;
const ZSTD_MAGIC_FIRST: u8 = 0x28;

thread_local! {
    // One context per thread, reused: making one costs a large allocation (and its release a
    // munmap on every core), far more than compressing an envelope. A context keeps the
    // dictionary it was made with.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static PLAIN_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

pub fn compress(envelope: &[u8]) -> Vec<u8> {
    let compressed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match cell.as_mut() {
            Some(compressor) => compressor,
            None => cell.insert(zstd::bulk::Compressor::with_dictionary(
                ZSTD_LEVEL,
                dictionary::ENVELOPES_V1.as_bytes(),
            )?),
        };
        compressor.compress(envelope)
    });
    match compressed {
        Ok(mut out) => {
            out.insert(0, WITH_DICTIONARY_V1);
            out
        }
        // Compressing a byte slice into memory cannot fail but for allocation.
        Err(_) => envelope.to_vec(),
    }
}

/// Envelopes are at most `max_body_bytes` of raw plus what is derived from it: a bound on what
/// a damaged frame may ask to allocate.
const MAX_ENVELOPE: usize = 64 * 1024 * 1024;

pub fn decompress(compressed: &[u8]) -> Result<Vec<u8>, RecordError> {
    let (dictionary, frame) = match compressed.split_first() {
        Some((&WITH_DICTIONARY_V1, frame)) => (Some(dictionary::ENVELOPES_V1), frame),
        Some((&ZSTD_MAGIC_FIRST, _)) => (None, compressed),
        _ => return Err(RecordError::Damaged),
    };
    // Sized from the frame header, which `compress` always writes: a buffer of the bound
    // instead would be a 64 MiB mapping made and unmapped for every envelope read.
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_ENVELOPE as u64 => size as usize,
        _ => return Err(RecordError::Damaged),
    };
    let contexts = match dictionary {
        Some(_) => &DECOMPRESSOR,
        None => &PLAIN_DECOMPRESSOR,
    };
    contexts
        .with(|cell| {
            let mut cell = cell.borrow_mut();
            let decompressor = match (cell.as_mut(), dictionary) {
                (Some(decompressor), _) => decompressor,
                (None, Some(dictionary)) => cell.insert(zstd::bulk::Decompressor::with_dictionary(
                    dictionary.as_bytes(),
                )?),
                (None, None) => cell.insert(zstd::bulk::Decompressor::new()?),
            };
            decompressor.decompress(frame, size)
        })
        .map_err(|_| RecordError::Damaged)
}

/// A dedupe index entry: when the claim ends and which event made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub expires_at_ms: u64,
    pub event_id: EventId,
}

impl Claim {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.event_id.to_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Claim, RecordError> {
        let mut r = Reader(payload(bytes)?);
        let expires_at_ms = r.u64()?;
        let id: [u8; 16] = r.take(16)?.try_into().map_err(|_| RecordError::Damaged)?;
        Ok(Claim {
            expires_at_ms,
            event_id: EventId::from_bytes(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_events_and_kept_records_round_trip_and_damage_is_an_error() {
        let span = LogSpan {
            segment: 3,
            offset: 77,
            len: 12,
        };
        let bytes = StoredEvent::encode(&[b"acme/crm\0", b"acme/audit\0"], span, b"fields");
        let event = StoredEvent::decode(&bytes).unwrap();
        assert_eq!(event.queues, vec![&b"acme/crm\0"[..], &b"acme/audit\0"[..]]);
        assert_eq!(event.span, span);
        assert_eq!(event.search, b"fields");
        assert!(StoredEvent::decode(&bytes[..5]).is_err());
        let mut future = bytes.clone();
        future[0] = 9;
        assert_eq!(
            StoredEvent::decode(&future).err(),
            Some(RecordError::Version(9))
        );
        let kept = Kept::encode(b"{\"attempts\":[]}", b"zstd");
        let read = Kept::decode(&kept).unwrap();
        assert_eq!(
            (read.record, read.envelope),
            (&b"{\"attempts\":[]}"[..], &b"zstd"[..])
        );
        assert!(Kept::decode(&kept[..3]).is_err());
    }

    #[test]
    fn claims_round_trip() {
        let claim = Claim {
            expires_at_ms: 42,
            event_id: EventId::generate(),
        };
        assert_eq!(Claim::decode(&claim.encode()), Ok(claim.clone()));
        assert!(Claim::decode(b"\x01junk").is_err());
    }

    #[test]
    fn envelopes_compressed_before_the_dictionary_are_read_back_and_new_ones_are_smaller() {
        let envelope = br#"{"id":"01J","workspace":"acme","vendor":"watsi","type":"message.received","vendor_type":"message.received","vendor_event_id":"evt_1","dedupe_key":"acme/watsi/event_id:evt_1","dedupe_basis":"event_id","occurred_at":null,"received_at":"2026-12-03T08:00:00.000Z","data":{"message_id":"m1","from":"+1","to":"+2","text":"hi"},"raw":{"id":"evt_1"}}"#;
        let plain = zstd::bulk::compress(envelope, ZSTD_LEVEL).unwrap();
        assert_eq!(decompress(&plain).unwrap(), envelope);
        let compressed = compress(envelope);
        assert_eq!(compressed[0], WITH_DICTIONARY_V1);
        assert_eq!(decompress(&compressed).unwrap(), envelope);
        assert!(
            compressed.len() < plain.len() * 3 / 4,
            "{} against {}",
            compressed.len(),
            plain.len()
        );
        assert_eq!(decompress(&[WITH_DICTIONARY_V1]), Err(RecordError::Damaged));
        assert_eq!(decompress(&[7, 1, 2]), Err(RecordError::Damaged));
    }

    #[test]
    fn envelopes_round_trip_through_compression_and_damage_is_named() {
        for envelope in [&b""[..], b"{}", &br#"{"raw":"x"}"#.repeat(50_000)] {
            let compressed = compress(envelope);
            assert_eq!(decompress(&compressed).unwrap(), envelope);
        }
        let compressed = compress(&b"{\"text\":\"hello\"}".repeat(100));
        assert_eq!(
            decompress(&compressed[..compressed.len() / 2]),
            Err(RecordError::Damaged)
        );
        assert_eq!(decompress(b"not zstd at all"), Err(RecordError::Damaged));
    }
}
