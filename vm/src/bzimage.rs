//! Reading the kernel release out of an x86 bzImage's setup header.
//!
//! The real-mode setup header starts at offset 0x1F1. A bzImage carries the
//! boot flag `0xAA55` at 0x1FE and the magic `HdrS` at 0x202; the 16-bit
//! field at 0x20E (`kernel_version`) points at a NUL-terminated string, at
//! that value plus 0x200, which begins with the release (`uname -r`).

/// Why a buffer is not a bzImage with a readable release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BzImageError {
    /// Shorter than a setup header.
    #[error("too short for a bzImage setup header ({0} bytes)")]
    TooShort(usize),
    /// No `0xAA55` boot flag / `HdrS` magic.
    #[error("no bzImage setup header (boot flag 0xAA55 and magic \"HdrS\" missing)")]
    NoHeader,
    /// The header has no usable `kernel_version` pointer or string.
    #[error("the setup header has no kernel version string")]
    NoVersion,
}

const BOOT_FLAG: usize = 0x1FE;
const MAGIC: usize = 0x202;
const VERSION_PTR: usize = 0x20E;

/// The full version string of a bzImage (`6.1.0-56-amd64 (debian-kernel@...) #1 SMP ...`).
pub fn version_string(image: &[u8]) -> Result<String, BzImageError> {
    if image.len() < VERSION_PTR + 2 {
        return Err(BzImageError::TooShort(image.len()));
    }
    if image[BOOT_FLAG..BOOT_FLAG + 2] != [0x55, 0xAA] || &image[MAGIC..MAGIC + 4] != b"HdrS" {
        return Err(BzImageError::NoHeader);
    }
    let ptr = u16::from_le_bytes([image[VERSION_PTR], image[VERSION_PTR + 1]]) as usize;
    if ptr == 0 {
        return Err(BzImageError::NoVersion);
    }
    let start = ptr + 0x200;
    let tail = image.get(start..).ok_or(BzImageError::NoVersion)?;
    let end = tail
        .iter()
        .take(512)
        .position(|&b| b == 0)
        .ok_or(BzImageError::NoVersion)?;
    let s = String::from_utf8_lossy(&tail[..end]).trim().to_string();
    if s.is_empty() {
        return Err(BzImageError::NoVersion);
    }
    Ok(s)
}

/// The release (`uname -r`) of a bzImage: the first word of its version string.
pub fn release(image: &[u8]) -> Result<String, BzImageError> {
    let v = version_string(image)?;
    Ok(v.split_whitespace().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(version: &str, ptr: u16) -> Vec<u8> {
        let mut b = vec![0u8; 0x4000];
        b[BOOT_FLAG..BOOT_FLAG + 2].copy_from_slice(&[0x55, 0xAA]);
        b[MAGIC..MAGIC + 4].copy_from_slice(b"HdrS");
        b[VERSION_PTR..VERSION_PTR + 2].copy_from_slice(&ptr.to_le_bytes());
        let at = ptr as usize + 0x200;
        b[at..at + version.len()].copy_from_slice(version.as_bytes());
        b
    }

    #[test]
    fn reads_release() {
        let img = synthetic(
            "6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP",
            0x3900,
        );
        assert_eq!(release(&img).unwrap(), "6.1.0-56-amd64");
        assert!(version_string(&img).unwrap().ends_with("#1 SMP"));
    }

    #[test]
    fn rejects_non_bzimage() {
        assert_eq!(release(b"\x7fELF"), Err(BzImageError::TooShort(4)));
        assert_eq!(release(&[0u8; 0x1000]), Err(BzImageError::NoHeader));
        let mut img = synthetic("x", 0x100);
        img[VERSION_PTR] = 0;
        img[VERSION_PTR + 1] = 0;
        assert_eq!(release(&img), Err(BzImageError::NoVersion));
        // pointer past the end
        let img = synthetic("", 0x100);
        let mut short = img[..0x300].to_vec();
        short[VERSION_PTR..VERSION_PTR + 2].copy_from_slice(&0x3000u16.to_le_bytes());
        assert_eq!(release(&short), Err(BzImageError::NoVersion));
    }
}
