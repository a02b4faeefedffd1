//! `ghostholes`: an unlinked sparse file, held by a descriptor and mapped (criu needs a
//! `--ghost-limit` above its 64 MiB size).
//!
//! The file is 64 MiB with three 4 KiB blocks of data (at 0, 16 MiB and 40 MiB) and holes
//! between; it is unlinked while open, and its block at 16 MiB is mapped shared. Every
//! tick it checks that the file is still unlinked (`st_nlink` 0, the fd's link ends in
//! `(deleted)`), its size, that it still takes little space (`st_blocks`), two of its
//! holes read as zeros and the data through the mapping. On SIGTERM it checks the same,
//! every data block, and that `SEEK_DATA`/`SEEK_HOLE` find exactly the three blocks (criu
//! must keep the holes, not fill them); then it writes through the mapping and reads it
//! back through the descriptor.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Program name.
pub const NAME: &str = "ghostholes";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const MIB: u64 = 1 << 20;
/// The file's size.
pub const SIZE: u64 = 64 * MIB;
/// Where its data blocks start.
pub const DATA: [u64; 3] = [0, 16 * MIB, 40 * MIB];
const BLOCK: usize = 4096;
/// Offsets inside holes that must read as zeros.
pub const HOLES: [u64; 2] = [8 * MIB, 60 * MIB];
/// The most space the file may take (its data and some metadata), in bytes.
const MOST_SPACE: u64 = MIB;

/// The data and hole extents `SEEK_DATA`/`SEEK_HOLE` find, as `(start, end)` of data.
pub fn data_extents(fd: RawFd, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut at = 0i64;
    while (at as u64) < size {
        // SAFETY: plain lseek.
        let start = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if start < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            return Err(e);
        }
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if end < 0 {
            return Err(std::io::Error::last_os_error());
        }
        out.push((start as u64, end as u64));
        at = end;
    }
    Ok(out)
}

struct Ghost {
    fd: OwnedFd,
    map: sys::Mapping,
}

fn seed(i: usize) -> u64 {
    500 + i as u64
}

fn setup(dir: &std::path::Path) -> Result<Ghost, String> {
    let path = dir.join("ghost-with-holes");
    let fd = sys::open(
        &path,
        libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
        0o600,
    )
    .map_err(|e| format!("open {}: {}", path.display(), errno_text(&e)))?;
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), SIZE as libc::off_t) })
        .map_err(|e| format!("ftruncate: {}", errno_text(&e)))?;
    for (i, &at) in DATA.iter().enumerate() {
        sys::pwrite_all(fd.as_raw_fd(), &pattern(seed(i), BLOCK), at)
            .map_err(|e| format!("pwrite at {at}: {}", errno_text(&e)))?;
    }
    std::fs::remove_file(&path).map_err(|e| format!("unlink {}: {e}", path.display()))?;
    let map = sys::mmap(
        BLOCK,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        Some(fd.as_raw_fd()),
        DATA[1],
    )
    .map_err(|e| format!("mmap: {}", errno_text(&e)))?;
    Ok(Ghost { fd, map })
}

impl Ghost {
    fn check(&self, full: bool) -> Result<(), String> {
        let mut p = Problems::new();
        let fd = self.fd.as_raw_fd();
        match nix::sys::stat::fstat(fd) {
            Ok(st) => {
                p.expect_eq("unlinked file: st_nlink", 0, st.st_nlink);
                p.expect_eq("unlinked file: st_size", SIZE, st.st_size as u64);
                let space = st.st_blocks as u64 * 512;
                if space > MOST_SPACE {
                    p.push(format!(
                        "unlinked file: takes {space} bytes (st_blocks {}), more than {MOST_SPACE}: its holes were filled",
                        st.st_blocks
                    ));
                }
            }
            Err(e) => p.push(format!("unlinked file: fstat: {e}")),
        }
        match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            Ok(l) if l.to_string_lossy().ends_with(" (deleted)") => {}
            Ok(l) => p.push(format!(
                "unlinked file: fd {fd} names {}, expected a deleted file",
                l.display()
            )),
            Err(e) => p.push(format!("unlinked file: readlink: {e}")),
        }
        for at in HOLES {
            let mut b = vec![0u8; BLOCK];
            match sys::pread_full(fd, &mut b, at) {
                Ok(_) if b.iter().all(|&x| x == 0) => {}
                Ok(_) => p.push(format!("unlinked file: the hole at {at} holds data")),
                Err(e) => p.push(format!("unlinked file: pread at {at}: {}", errno_text(&e))),
            }
        }
        p.check(compare_bytes(
            "the mapping of the block at 16 MiB",
            &pattern(seed(1), BLOCK),
            &self.map.read(0, BLOCK),
        ));
        if full {
            for (i, &at) in DATA.iter().enumerate() {
                let mut b = vec![0u8; BLOCK];
                match sys::pread_full(fd, &mut b, at) {
                    Ok(_) => p.check(compare_bytes(
                        &format!("unlinked file: block at {at}"),
                        &pattern(seed(i), BLOCK),
                        &b,
                    )),
                    Err(e) => p.push(format!("unlinked file: pread at {at}: {}", errno_text(&e))),
                }
            }
            let want: Vec<(u64, u64)> = DATA.iter().map(|&a| (a, a + BLOCK as u64)).collect();
            match data_extents(fd, SIZE) {
                Ok(got) => p.expect_eq(
                    "unlinked file: data extents (SEEK_DATA/SEEK_HOLE)",
                    want,
                    got,
                ),
                Err(e) => p.push(format!("unlinked file: SEEK_DATA: {}", errno_text(&e))),
            }
        }
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let fresh = pattern(999, 64);
        self.map.write(100, &fresh);
        let mut b = vec![0u8; 64];
        sys::pread_full(self.fd.as_raw_fd(), &mut b, DATA[1] + 100)
            .map_err(|e| format!("unlinked file: pread: {}", errno_text(&e)))?;
        compare_bytes(
            "unlinked file: what was written through the mapping",
            &fresh,
            &b,
        )
    }
}

/// Makes the ghost, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let g = setup(wl.dir()).unwrap_or_else(|e| wl.setup_failed(&e));
    g.check(true).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("ghost={} map={:#x}", g.fd.as_raw_fd(), g.map.addr());
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| g.check(false))?;
    g.check(true)?;
    g.exercise()?;
    Ok(format!(
        "a 64 MiB unlinked file kept its three data blocks and its holes over {ticks} checks; its mapping still writes to it"
    ))
}
