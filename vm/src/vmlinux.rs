//! The uncompressed kernel inside a bzImage, for a fast PVH boot.
//!
//! Under TCG, decompressing a bzImage's xz payload takes seconds of emulated time before the
//! kernel runs at all. QEMU boots an uncompressed `vmlinux` directly when it carries a PVH
//! entry note (`CONFIG_PVH=y`, true of Debian's kernels), which skips that. The payload is
//! found by its compression magic and unpacked with the host's tool once, then cached.

use crate::command::{Cmd, CommandError};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Compression formats a bzImage payload may use, by magic, with the tool that unpacks it.
const FORMATS: &[(&[u8], &str, &[&str])] = &[
    (b"\xfd7zXZ\x00", "xz", &["-dc"]),
    (b"\x28\xb5\x2f\xfd", "zstd", &["-dc"]),
    (b"\x1f\x8b\x08", "gzip", &["-dc"]),
];

/// Where a compressed payload may start, and its format: the first place of each magic,
/// earliest first. Short magics (gzip's) can also occur by chance in the setup code, so
/// each candidate is tried until one unpacks into an ELF.
pub fn payload_candidates(image: &[u8]) -> Vec<(usize, &'static str, &'static [&'static str])> {
    let mut found: Vec<_> = FORMATS
        .iter()
        .filter_map(|(magic, tool, args)| {
            image
                .windows(magic.len())
                .position(|w| w == *magic)
                .map(|at| (at, *tool, *args))
        })
        .collect();
    found.sort_by_key(|(at, _, _)| *at);
    found
}

/// True when `elf` is a 64-bit ELF with a Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY).
pub fn has_pvh_note(elf: &[u8]) -> bool {
    const PT_NOTE: u32 = 4;
    const PHYS32_ENTRY: u32 = 18;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if elf.get(0..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    for i in 0..phnum as usize {
        let ph = phoff as usize + i * phentsize as usize;
        if u32_at(ph) != Some(PT_NOTE) {
            continue;
        }
        let (Some(off), Some(size)) = (u64_at(ph + 8), u64_at(ph + 32)) else {
            continue;
        };
        let (mut at, end) = (off as usize, (off + size) as usize);
        while at + 12 <= end {
            let (Some(namesz), Some(descsz), Some(kind)) =
                (u32_at(at), u32_at(at + 4), u32_at(at + 8))
            else {
                break;
            };
            let name = elf.get(at + 12..at + 12 + namesz as usize).unwrap_or(&[]);
            if name.starts_with(b"Xen") && kind == PHYS32_ENTRY {
                return true;
            }
            let pad = |n: u32| (n as usize).div_ceil(4) * 4;
            at += 12 + pad(namesz) + pad(descsz);
        }
    }
    false
}

/// Unpacks the bzImage's kernel into `out`. Returns false (and writes nothing usable) when
/// the payload is not found or the kernel has no PVH entry; then boot the bzImage.
pub fn extract(bzimage: &Path, out: &Path) -> Result<bool, VmlinuxError> {
    let image = std::fs::read(bzimage).map_err(|source| VmlinuxError::Read {
        path: bzimage.to_path_buf(),
        source,
    })?;
    for (at, tool, args) in payload_candidates(&image) {
        let payload = out.with_extension("payload");
        std::fs::write(&payload, &image[at..]).map_err(|source| VmlinuxError::Write {
            path: payload.clone(),
            source,
        })?;
        // The payload is followed by other data, so the tool complains at its end
        // ("trailing garbage"); what it unpacked before that is the whole kernel. Check the
        // result instead of the status.
        let program = Cmd::tool(tool).program().to_owned();
        let mut argv: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        argv.push(payload.clone().into_os_string());
        let _ = duct::cmd(program, argv)
            .stdin_null()
            .stdout_path(out)
            .stderr_null()
            .unchecked()
            .run();
        let _ = std::fs::remove_file(&payload);
        let elf = std::fs::read(out).unwrap_or_default();
        if elf.starts_with(b"\x7fELF") {
            return Ok(has_pvh_note(&elf));
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_candidates_earliest_first() {
        let mut img = vec![0u8; 100];
        img.extend_from_slice(b"\x1f\x8b\x08rest");
        img.extend_from_slice(b"\xfd7zXZ\x00");
        let got: Vec<_> = payload_candidates(&img)
            .iter()
            .map(|(at, t, _)| (*at, *t))
            .collect();
        assert_eq!(got, [(100, "gzip"), (107, "xz")]);
        assert!(payload_candidates(&[0u8; 64]).is_empty());
    }

    /// A minimal ELF64 with one PT_NOTE holding a Xen note of the given type.
    fn elf_with_note(kind: u32) -> Vec<u8> {
        let mut e = vec![0u8; 0x40];
        e[0..5].copy_from_slice(b"\x7fELF\x02");
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes()); // phoff
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // phnum
        let note_off = 0x40 + 56;
        let mut ph = vec![0u8; 56];
        ph[0..4].copy_from_slice(&4u32.to_le_bytes());
        ph[8..16].copy_from_slice(&(note_off as u64).to_le_bytes());
        ph[32..40].copy_from_slice(&20u64.to_le_bytes());
        e.extend(ph);
        e.extend(4u32.to_le_bytes()); // namesz
        e.extend(4u32.to_le_bytes()); // descsz
        e.extend(kind.to_le_bytes());
        e.extend(b"Xen\0");
        e.extend([0u8; 4]);
        e
    }

    #[test]
    fn pvh_note() {
        assert!(has_pvh_note(&elf_with_note(18)));
        assert!(!has_pvh_note(&elf_with_note(5)));
        assert!(!has_pvh_note(b"not an elf at all"));
        assert!(!has_pvh_note(&elf_with_note(18)[..0x50]));
    }
}

#[cfg(test)]
mod real {
    #[test]
    #[ignore = "needs a real bzImage in $CRTEST_TEST_BZIMAGE"]
    fn extracts_a_real_kernel() {
        let Ok(bz) = std::env::var("CRTEST_TEST_BZIMAGE") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("vmlinux");
        let ok = super::extract(std::path::Path::new(&bz), &out).unwrap();
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        assert!(ok, "no PVH kernel extracted ({len} bytes)");
    }
}
