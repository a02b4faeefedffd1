//! `posixshm`: POSIX shared memory (files in `/dev/shm`) mapped by the workload.
//!
//! - `/dev/shm/crtest-PID-a` (64 KiB): open, mapped `MAP_SHARED`, filled through the
//!   mapping; the descriptor stays open.
//! - `/dev/shm/crtest-PID-b` (16 KiB): mapped, filled, then its descriptor closed and its
//!   name unlinked (`shm_unlink`): only the mapping keeps it.
//!
//! Every tick it checks both mappings' contents, that the first is still the file under
//! its name (same inode, same bytes through the descriptor) and the second's name is gone
//! (its `/proc/self/maps` line says `(deleted)`). On SIGTERM it checks the same, then
//! writes through the first mapping (the descriptor must read it) and the second. It
//! unlinks the first name when it ends.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::{fd_err, names_inode, open, pread_all};
use crate::protocol::Workload;
use crate::sys::{self, Mapping};
use crate::{procfs, steady};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Program name.
pub const NAME: &str = "posixshm";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

struct Shm {
    path: PathBuf,
    map: Mapping,
    data: Vec<u8>,
}

struct State {
    a: Shm,
    a_fd: OwnedFd,
    a_ino: u64,
    b: Shm,
}

fn make(path: PathBuf, size: usize, seed: u64) -> Result<(Shm, OwnedFd), String> {
    let fd = open(
        &path,
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
    )?;
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) })
        .map_err(|e| format!("ftruncate {}: {e}", path.display()))?;
    let map = sys::mmap(
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        Some(fd.as_raw_fd()),
        0,
    )
    .map_err(|e| format!("mmap {}: {e}", path.display()))?;
    let data = pattern(seed, size);
    map.write(0, &data);
    Ok((Shm { path, map, data }, fd))
}

fn setup() -> Result<State, String> {
    let pid = std::process::id();
    let (a, a_fd) = make(
        PathBuf::from(format!("/dev/shm/crtest-{pid}-a")),
        64 * 1024,
        101,
    )?;
    let a_ino = crate::files::inode(a_fd.as_raw_fd()).map_err(|e| format!("fstat: {e}"))?;
    let (b, b_fd) = match make(
        PathBuf::from(format!("/dev/shm/crtest-{pid}-b")),
        16 * 1024,
        102,
    ) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&a.path);
            return Err(e);
        }
    };
    drop(b_fd);
    std::fs::remove_file(&b.path).map_err(|e| format!("unlink {}: {e}", b.path.display()))?;
    Ok(State { a, a_fd, a_ino, b })
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for s in [&self.a, &self.b] {
            p.check(compare_bytes(
                &format!("{} mapping at {:#x}", s.path.display(), s.map.addr()),
                &s.data,
                &s.map.read(0, s.data.len()),
            ));
        }
        p.check(names_inode(&self.a.path, self.a_ino));
        if let Some(got) = p.take(pread_all("shm a", &self.a_fd)) {
            p.check(compare_bytes(
                &format!("{} read through its descriptor", self.a.path.display()),
                &self.a.data,
                &got,
            ));
        }
        if self.b.path.exists() {
            p.push(format!(
                "{}: the unlinked name exists again",
                self.b.path.display()
            ));
        }
        match procfs::mapping_at(self.b.map.addr()) {
            Ok(m) => {
                let want = format!("{} (deleted)", self.b.path.display());
                if m.path != want || m.perms != "rw-s" {
                    p.push(format!(
                        "mapping of the unlinked {} at {:#x}: /proc/self/maps says {} {}, expected rw-s {want}",
                        self.b.path.display(),
                        self.b.map.addr(),
                        m.perms,
                        m.path
                    ));
                }
            }
            Err(e) => p.push(e),
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let msg = b"written through the mapping";
        self.a.map.write(500, msg);
        self.a.data[500..500 + msg.len()].copy_from_slice(msg);
        self.b.map.write(700, msg);
        self.b.data[700..700 + msg.len()].copy_from_slice(msg);
        let raw = self.a_fd.as_raw_fd();
        let mut buf = vec![0u8; msg.len()];
        sys::pread_full(raw, &mut buf, 500).map_err(|e| fd_err("shm a", raw, "pread", &e))?;
        compare_bytes(
            "shm a: a write through the mapping, read through the descriptor",
            msg,
            &buf,
        )?;
        self.check()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "shm-a={} (fd {}, mapped at {:#x}) shm-b={} (unlinked, mapped at {:#x})",
        st.a.path.display(),
        st.a_fd.as_raw_fd(),
        st.a.map.addr(),
        st.b.path.display(),
        st.b.map.addr()
    );
    let outcome = st
        .check()
        .and_then(|_| steady::ready_then_tick(wl, args, &detail, |_| st.check()))
        .and_then(|ticks| {
            st.check()?;
            st.exercise()?;
            Ok(ticks)
        });
    let _ = std::fs::remove_file(&st.a.path);
    let ticks = outcome?;
    Ok(format!(
        "2 POSIX shared memory objects (one named, one unlinked) kept their contents over {ticks} checks; writes through the mapping still reach the object"
    ))
}
