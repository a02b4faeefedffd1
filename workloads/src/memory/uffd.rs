//! `uffd`: a userfaultfd with an anonymous range registered for missing-page faults (needs
//! root or `vm.unprivileged_userfaultfd`).
//!
//! The range is 16 pages; the workload fills pages 0-3 through the descriptor
//! (`UFFDIO_COPY`) and never touches the rest, which stay missing (a touch would wait for a
//! fault handler). Every tick it checks that the range is still registered (`um` in its
//! `VmFlags`), that exactly pages 0-3 are present (`mincore`), what they hold, and that the
//! descriptor is still a userfaultfd. On SIGTERM it checks the same, then fills page 8
//! (`UFFDIO_COPY`) and page 9 (`UFFDIO_ZEROPAGE`) and reads both back.
//!
//! criu 3.17 has no dumper for a userfaultfd (it uses one itself for lazy restore, but
//! cannot checkpoint one a task holds): the scenario expects the dump to stop there.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "uffd";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// Pages in the registered range.
pub const PAGES: usize = 16;
/// Pages filled at setup (0..FILLED).
pub const FILLED: usize = 4;

const UFFD_API: u64 = 0xaa;
const fn iowr(nr: u64, size: u64) -> u64 {
    (3 << 30) | (size << 16) | (0xaa << 8) | nr
}
const UFFDIO_API: u64 = iowr(0x3f, 24);
const UFFDIO_REGISTER: u64 = iowr(0x00, 32);
const UFFDIO_COPY: u64 = iowr(0x03, 40);
/// `UFFDIO_ZEROPAGE`, public so a test can fill a page from outside.
pub const UFFDIO_ZEROPAGE: u64 = iowr(0x04, 32);
const MODE_MISSING: u64 = 1;

fn ioctl(fd: &OwnedFd, req: u64, arg: &mut [u64]) -> std::io::Result<()> {
    // SAFETY: `arg` is the request's struct, as u64 words of the size the request encodes.
    sys::cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg.as_mut_ptr()) }).map(|_| ())
}

/// Fills the page at `addr` with zeros through `fd` (`UFFDIO_ZEROPAGE`).
pub fn zero_page(fd: &OwnedFd, addr: usize) -> std::io::Result<()> {
    let mut z = [addr as u64, sys::page_size() as u64, 0, 0];
    ioctl(fd, UFFDIO_ZEROPAGE, &mut z)
}

struct Uffd {
    fd: OwnedFd,
    range: sys::Mapping,
    /// Pages that hold data: (page, seed; None for a zero page).
    filled: Vec<(usize, Option<u64>)>,
}

impl Uffd {
    fn who(&self) -> String {
        format!("userfaultfd (fd {})", self.fd.as_raw_fd())
    }

    fn page(&self, i: usize) -> usize {
        self.range.addr() + i * sys::page_size()
    }

    fn copy(&self, i: usize, seed: u64) -> Result<(), String> {
        let src = pattern(seed, sys::page_size());
        let mut c = [
            self.page(i) as u64,
            src.as_ptr() as u64,
            sys::page_size() as u64,
            0,
            0,
        ];
        ioctl(&self.fd, UFFDIO_COPY, &mut c)
            .map_err(|e| format!("{}: UFFDIO_COPY page {i}: {}", self.who(), errno_text(&e)))
    }

    fn present(&self) -> Result<Vec<bool>, String> {
        let mut v = vec![0u8; PAGES];
        // SAFETY: mincore writes one byte per page of the range into `v`.
        sys::cvt(unsafe {
            libc::mincore(self.range.ptr().cast(), self.range.len(), v.as_mut_ptr())
        })
        .map_err(|e| format!("mincore of the range: {}", errno_text(&e)))?;
        Ok(v.iter().map(|b| b & 1 == 1).collect())
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let who = self.who();
        match procfs::vm_flags(self.range.addr()) {
            Ok(f) if f.iter().any(|x| x == "um") => {}
            Ok(f) => p.push(format!(
                "the range at {:#x} is not registered for missing faults: VmFlags {}",
                self.range.addr(),
                f.join(" ")
            )),
            Err(e) => p.push(e),
        }
        if let Some(present) = p.take(self.present()) {
            for (i, &here) in present.iter().enumerate() {
                let want = self.filled.iter().any(|(f, _)| *f == i);
                if here != want {
                    p.push(format!(
                        "page {i} of the registered range is {}, expected {}",
                        if here { "present" } else { "missing" },
                        if want { "present" } else { "missing" }
                    ));
                }
            }
        }
        for &(i, seed) in &self.filled {
            let got = self.range.read(i * sys::page_size(), sys::page_size());
            let want = seed.map_or_else(
                || vec![0; sys::page_size()],
                |s| pattern(s, sys::page_size()),
            );
            p.check(compare_bytes(&format!("page {i}"), &want, &got));
        }
        match std::fs::read_link(format!("/proc/self/fd/{}", self.fd.as_raw_fd())) {
            Ok(l) => p.expect_eq(
                &format!("{who}: what it is"),
                "anon_inode:[userfaultfd]".to_string(),
                l.display().to_string(),
            ),
            Err(e) => p.push(format!("{who}: readlink: {e}")),
        }
        p.into_result()
    }
}

fn setup() -> Result<Uffd, String> {
    // SAFETY: plain syscall.
    let fd = sys::owned(unsafe {
        libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) as libc::c_int
    })
    .map_err(|e| {
        format!(
            "userfaultfd: {} (needs root or vm.unprivileged_userfaultfd)",
            errno_text(&e)
        )
    })?;
    let mut api = [UFFD_API, 0, 0];
    ioctl(&fd, UFFDIO_API, &mut api).map_err(|e| format!("UFFDIO_API: {}", errno_text(&e)))?;
    let range = sys::mmap(
        PAGES * sys::page_size(),
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE,
        None,
        0,
    )
    .map_err(|e| format!("mmap: {}", errno_text(&e)))?;
    let mut reg = [range.addr() as u64, range.len() as u64, MODE_MISSING, 0];
    ioctl(&fd, UFFDIO_REGISTER, &mut reg)
        .map_err(|e| format!("UFFDIO_REGISTER: {}", errno_text(&e)))?;
    let mut u = Uffd {
        fd,
        range,
        filled: Vec::new(),
    };
    for i in 0..FILLED {
        u.copy(i, 100 + i as u64)?;
        u.filled.push((i, Some(100 + i as u64)));
    }
    Ok(u)
}

/// Registers the range, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut u = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    u.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "uffd={} range={:#x} pages={PAGES} filled={FILLED}",
        u.fd.as_raw_fd(),
        u.range.addr()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| u.check())?;
    u.check()?;
    u.copy(8, 808)?;
    u.filled.push((8, Some(808)));
    zero_page(&u.fd, u.page(9))
        .map_err(|e| format!("{}: UFFDIO_ZEROPAGE page 9: {}", u.who(), errno_text(&e)))?;
    u.filled.push((9, None));
    u.check()?;
    Ok(format!(
        "the userfaultfd range stayed registered with pages 0-{} present and the rest missing over {ticks} checks; a copy and a zero page filled two more",
        FILLED - 1
    ))
}
