//! `memfd`: anonymous memory files with seals.
//!
//! - `crtest-grow`: `memfd_create(MFD_ALLOW_SEALING)`, 64 KiB of pattern, sealed
//!   `F_SEAL_SHRINK|F_SEAL_GROW`, mapped `MAP_SHARED` read-write, offset 4321.
//! - `crtest-frozen`: 8 KiB of pattern, sealed `F_SEAL_WRITE|F_SEAL_SEAL`, mapped
//!   `MAP_PRIVATE` read-only, offset 0.
//!
//! Every tick it checks each memfd's `F_GET_SEALS`, size, offset, flags, content, its
//! `/proc/self/fd` name (`/memfd:NAME (deleted)`), and that the first mapping and the file
//! are one memory. On SIGTERM it checks the same, then shows the seals still bite
//! (`ftruncate` of the first and `write` to the second fail with `EPERM`) and that writes
//! through the shared mapping and through the descriptor still meet.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::{fd_err, file_size, pread_all, seek, FdExpect};
use crate::protocol::{errno_text, Workload};
use crate::steady;
use crate::sys::{self, Mapping};
use nix::libc;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "memfd";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// Seal bits by name, for messages.
pub fn seals_text(seals: libc::c_int) -> String {
    let names = [
        (libc::F_SEAL_SEAL, "F_SEAL_SEAL"),
        (libc::F_SEAL_SHRINK, "F_SEAL_SHRINK"),
        (libc::F_SEAL_GROW, "F_SEAL_GROW"),
        (libc::F_SEAL_WRITE, "F_SEAL_WRITE"),
        (libc::F_SEAL_FUTURE_WRITE, "F_SEAL_FUTURE_WRITE"),
    ];
    let parts: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| seals & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("|")
    }
}

struct Memfd {
    name: &'static str,
    fd: OwnedFd,
    expect: FdExpect,
    seals: libc::c_int,
    data: Vec<u8>,
    map: Mapping,
}

fn create(
    name: &'static str,
    data: &[u8],
    seals: libc::c_int,
    prot: libc::c_int,
    map_flags: libc::c_int,
    offset: u64,
) -> Result<Memfd, String> {
    let cname = CString::new(name).expect("no NUL in the name");
    // SAFETY: a valid C string.
    let fd = sys::owned(unsafe {
        libc::memfd_create(cname.as_ptr(), libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC)
    })
    .map_err(|e| format!("memfd_create({name}): {}", errno_text(&e)))?;
    sys::pwrite_all(fd.as_raw_fd(), data, 0)
        .map_err(|e| fd_err(name, fd.as_raw_fd(), "pwrite", &e))?;
    seek(name, &fd, offset)?;
    // Map before sealing: F_SEAL_WRITE refuses while a writable shared mapping exists, and
    // the private read-only mapping of the write-sealed file is allowed either way.
    let map = sys::mmap(data.len(), prot, map_flags, Some(fd.as_raw_fd()), 0)
        .map_err(|e| format!("mmap of memfd {name}: {}", errno_text(&e)))?;
    sys::fcntl_int(fd.as_raw_fd(), libc::F_ADD_SEALS, seals)
        .map_err(|e| fd_err(name, fd.as_raw_fd(), "F_ADD_SEALS", &e))?;
    Ok(Memfd {
        name,
        expect: FdExpect::record(&format!("memfd {name}"), &fd)?,
        fd,
        seals,
        data: data.to_vec(),
        map,
    })
}

impl Memfd {
    fn check(&self, p: &mut Problems) {
        self.expect.check(p);
        let who = self.expect.who();
        let raw = self.fd.as_raw_fd();
        match sys::fcntl_int(raw, libc::F_GET_SEALS, 0) {
            Ok(s) if s != self.seals => p.push(format!(
                "{who}: seals expected {}, got {}",
                seals_text(self.seals),
                seals_text(s)
            )),
            Ok(_) => {}
            Err(e) => p.push(fd_err(&self.expect.label, raw, "F_GET_SEALS", &e)),
        }
        match file_size(raw) {
            Ok(n) => p.expect_eq(&format!("{who}: size"), self.data.len() as u64, n),
            Err(e) => p.push(fd_err(&self.expect.label, raw, "fstat", &e)),
        }
        if let Some(got) = p.take(pread_all(&self.expect.label, &self.fd)) {
            p.check(compare_bytes(
                &format!("content of {who}"),
                &self.data,
                &got,
            ));
        }
        p.check(compare_bytes(
            &format!("mapping of {who} at {:#x}", self.map.addr()),
            &self.data,
            &self.map.read(0, self.map.len()),
        ));
        let want = format!("/memfd:{} (deleted)", self.name);
        match std::fs::read_link(format!("/proc/self/fd/{raw}")) {
            Ok(t) if t.to_string_lossy() == want => {}
            Ok(t) => p.push(format!(
                "{who}: /proc/self/fd/{raw} is {}, expected {want}",
                t.display()
            )),
            Err(e) => p.push(format!("readlink /proc/self/fd/{raw}: {}", errno_text(&e))),
        }
    }
}

fn expect_eperm(p: &mut Problems, what: &str, result: std::io::Result<()>) {
    match result {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => p.push(format!(
            "{what}: expected EPERM from the seal, got {}",
            errno_text(&e)
        )),
        Ok(()) => p.push(format!(
            "{what}: succeeded, but the seal must refuse it (EPERM)"
        )),
    }
}

struct State {
    grow: Memfd,
    frozen: Memfd,
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        self.grow.check(&mut p);
        self.frozen.check(&mut p);
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        let g = self.grow.fd.as_raw_fd();
        // SAFETY: plain syscall.
        expect_eperm(
            &mut p,
            "ftruncate of memfd crtest-grow (F_SEAL_SHRINK) to 4096",
            sys::cvt(unsafe { libc::ftruncate(g, 4096) }).map(|_| ()),
        );
        expect_eperm(
            &mut p,
            "pwrite to memfd crtest-frozen (F_SEAL_WRITE)",
            sys::pwrite_all(self.frozen.fd.as_raw_fd(), b"x", 0),
        );
        let via_map = b"through the mapping";
        self.grow.map.write(1000, via_map);
        self.grow.data[1000..1000 + via_map.len()].copy_from_slice(via_map);
        let via_fd = b"through the descriptor";
        match sys::pwrite_all(g, via_fd, 2000) {
            Ok(()) => self.grow.data[2000..2000 + via_fd.len()].copy_from_slice(via_fd),
            Err(e) => p.push(fd_err("memfd crtest-grow", g, "pwrite", &e)),
        }
        self.grow.check(&mut p);
        p.into_result()
    }
}

fn setup() -> Result<State, String> {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    Ok(State {
        grow: create(
            "crtest-grow",
            &pattern(31, 64 * 1024),
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
            rw,
            libc::MAP_SHARED,
            4321,
        )?,
        frozen: create(
            "crtest-frozen",
            &pattern(32, 8 * 1024),
            libc::F_SEAL_WRITE | libc::F_SEAL_SEAL,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            0,
        )?,
    })
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "fds: crtest-grow={} (seals {}, MAP_SHARED at {:#x}) crtest-frozen={} (seals {})",
        st.grow.fd.as_raw_fd(),
        seals_text(st.grow.seals),
        st.grow.map.addr(),
        st.frozen.fd.as_raw_fd(),
        seals_text(st.frozen.seals)
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "two memfds kept content, size, seals and mappings over {ticks} checks; the seals still refuse, the shared mapping still meets the file"
    ))
}
