//! Byte primitives both stores write with. Every value starts with a format version, so a
//! future release can tell an old record from damage and migrate it instead of guessing; fields
//! are length-prefixed and read back by [`Reader`], which never panics on damage.

/// The format version written by this release.
pub const VERSION: u8 = 1;

/// Why a stored value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record is empty")]
    Empty,
    #[error("record has format version {0}; this release reads version {VERSION}")]
    Version(u8),
    #[error("record is truncated or damaged")]
    Damaged,
}

/// `value` behind the version byte.
pub fn versioned(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 1);
    out.push(VERSION);
    out.extend_from_slice(value);
    out
}

/// The payload of a versioned value.
pub fn payload(bytes: &[u8]) -> Result<&[u8], RecordError> {
    match bytes.split_first() {
        None => Err(RecordError::Empty),
        Some((&VERSION, rest)) => Ok(rest),
        Some((&other, _)) => Err(RecordError::Version(other)),
    }
}

pub fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

pub fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// Reads fields front to back; every read checks its length, so damage is an error, never a
/// panic.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Damaged);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, RecordError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, RecordError> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| RecordError::Damaged)?;
        Ok(u32::from_be_bytes(b))
    }

    pub fn u64(&mut self) -> Result<u64, RecordError> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| RecordError::Damaged)?;
        Ok(u64::from_be_bytes(b))
    }

    pub fn bytes16(&mut self) -> Result<&'a [u8], RecordError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    pub fn bytes32(&mut self) -> Result<&'a [u8], RecordError> {
        let n = self.u32()?;
        self.take(n as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
