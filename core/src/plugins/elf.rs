//! A plugin file's sanity check before the dynamic loader maps it. `dlopen` maps each loadable
//! segment of an ELF file as its headers describe it; in a truncated file a segment runs past the
//! end, the mapping succeeds, and the first touch of a page past the end kills the whole process
//! with SIGBUS. So every segment and table the headers name must lie inside the file. Safe code:
//! it only reads bytes.

use std::path::Path;

use super::PluginError;

/// Refuses a file that is not an ELF shared object for this machine's word size and byte order,
/// or whose program or section headers point past its end.
#[cfg(target_os = "linux")]
pub(super) fn check(path: &Path) -> Result<(), PluginError> {
    let bytes = std::fs::read(path).map_err(|e| PluginError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_bytes(&bytes).map_err(|reason| PluginError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

/// Other systems have other formats; their loaders are left to judge them.
#[cfg(not(target_os = "linux"))]
pub(super) fn check(_path: &Path) -> Result<(), PluginError> {
    Ok(())
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const ET_DYN: u16 = 3;

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn check_bytes(bytes: &[u8]) -> Result<(), String> {
    let len = bytes.len() as u64;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(format!(
            "not an ELF shared library ({len} bytes, no ELF header)"
        ));
    }
    if bytes[4] != 2 || bytes[5] != if cfg!(target_endian = "little") { 1 } else { 2 } {
        return Err("not a 64-bit ELF file of this machine's byte order".into());
    }
    let u16_at = |at: usize| read::<2>(bytes, at).map(u16::from_ne_bytes);
    let u32_at = |at: usize| read::<4>(bytes, at).map(u32::from_ne_bytes);
    let u64_at = |at: usize| read::<8>(bytes, at).map(u64::from_ne_bytes);
    if u16_at(16)? != ET_DYN {
        return Err("not a shared library (ELF type is not ET_DYN)".into());
    }
    let table = |offset: u64, size: u16, count: u16, what: &str| -> Result<(), String> {
        let end = u64::from(size)
            .checked_mul(u64::from(count))
            .and_then(|n| n.checked_add(offset));
        match end {
            Some(end) if end <= len => Ok(()),
            _ => Err(format!(
                "truncated or corrupt: its {what} end past the file's {len} bytes"
            )),
        }
    };
    let (phoff, shoff) = (u64_at(32)?, u64_at(40)?);
    let (phentsize, phnum) = (u16_at(54)?, u16_at(56)?);
    let (shentsize, shnum) = (u16_at(58)?, u16_at(60)?);
    if phnum == 0 || usize::from(phentsize) < 56 {
        return Err("corrupt: no program headers".into());
    }
    table(phoff, phentsize, phnum, "program headers")?;
    table(shoff, shentsize, shnum, "section headers")?;
    for i in 0..u64::from(phnum) {
        let at = (phoff + i * u64::from(phentsize)) as usize;
        let kind = u32_at(at)?;
        if kind != PT_LOAD && kind != PT_DYNAMIC {
            continue;
        }
        let (offset, size) = (u64_at(at + 8)?, u64_at(at + 32)?);
        let inside = matches!(offset.checked_add(size), Some(end) if end <= len);
        if !inside {
            return Err(format!(
                "truncated or corrupt: segment {i} needs bytes {offset}..{} of a {len}-byte file",
                offset.saturating_add(size)
            ));
        }
    }
    Ok(())
}

fn read<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!(
                "truncated: its headers end past the file's {} bytes",
                bytes.len()
            )
        })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// This test binary is itself a 64-bit ELF file of this machine, though an executable: good
    /// enough to see the checks pass on real headers and fail once the file is cut.
    fn own_image() -> Vec<u8> {
        let mut bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        bytes[16..18].copy_from_slice(&ET_DYN.to_ne_bytes());
        bytes
    }

    #[test]
    fn a_whole_file_passes_and_a_cut_one_is_refused() {
        let bytes = own_image();
        assert_eq!(check_bytes(&bytes), Ok(()));
        let cut = check_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(cut.contains("truncated"), "{cut}");
        let header_only = check_bytes(&bytes[..40]).unwrap_err();
        assert!(header_only.contains("no ELF header"), "{header_only}");
        let garbage = check_bytes(&[0x42; 4096]).unwrap_err();
        assert!(garbage.contains("not an ELF"), "{garbage}");
    }
}
