//! `leases`: file leases (`F_SETLEASE`; criu needs `--file-locks`).
//!
//! A read lease on a file opened read-only and a write lease on another opened for
//! writing, both in the workload's directory. `SIGIO`, which a lease break sends, is
//! ignored. Every tick it checks each lease (`F_GETLEASE`) and that `/proc/locks` shows a
//! `LEASE` of that kind on each file's inode. On SIGTERM it checks the same, downgrades
//! both leases and checks that they are gone.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Program name.
pub const NAME: &str = "leases";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// The name of a lease type.
pub fn lease_name(t: libc::c_int) -> &'static str {
    match t {
        libc::F_RDLCK => "F_RDLCK",
        libc::F_WRLCK => "F_WRLCK",
        libc::F_UNLCK => "F_UNLCK",
        _ => "?",
    }
}

fn get_lease(fd: RawFd) -> Result<&'static str, String> {
    // SAFETY: plain fcntl.
    sys::cvt(unsafe { libc::fcntl(fd, libc::F_GETLEASE) })
        .map(lease_name)
        .map_err(|e| format!("F_GETLEASE: {}", errno_text(&e)))
}

fn set_lease(fd: RawFd, t: libc::c_int) -> Result<(), String> {
    sys::fcntl_int(fd, libc::F_SETLEASE, t)
        .map(|_| ())
        .map_err(|e| format!("F_SETLEASE {}: {}", lease_name(t), errno_text(&e)))
}

struct Leased {
    name: &'static str,
    fd: OwnedFd,
    inode: u64,
    /// `F_RDLCK` or `F_WRLCK`.
    kind: libc::c_int,
}

impl Leased {
    fn who(&self) -> String {
        format!("{} (fd {})", self.name, self.fd.as_raw_fd())
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        match get_lease(self.fd.as_raw_fd()) {
            Ok(t) => p.expect_eq(
                &format!("{}: F_GETLEASE", self.who()),
                lease_name(self.kind),
                t,
            ),
            Err(e) => p.push(format!("{}: {e}", self.who())),
        }
        let want = if self.kind == libc::F_RDLCK {
            "READ"
        } else {
            "WRITE"
        };
        let leases = |locks: &[procfs::Lock]| -> Vec<String> {
            locks
                .iter()
                .filter(|l| l.class == "LEASE")
                .map(|l| l.access.clone())
                .collect()
        };
        let settled = |l: &[procfs::Lock]| leases(l) == [want];
        if let Some(locks) = p.take(procfs::locks_on_settled(self.inode, settled)) {
            let leases = leases(&locks);
            p.expect_eq(
                &format!("{}: leases in /proc/locks", self.who()),
                vec![want.to_string()],
                leases,
            );
        }
        p.into_result()
    }
}

fn lease(dir: &Path, name: &'static str, kind: libc::c_int) -> Result<Leased, String> {
    let path = dir.join(name);
    std::fs::write(&path, name.as_bytes()).map_err(|e| format!("write {}: {e}", path.display()))?;
    let flags = if kind == libc::F_RDLCK {
        libc::O_RDONLY
    } else {
        libc::O_WRONLY
    };
    let fd = sys::open(&path, flags | libc::O_CLOEXEC, 0)
        .map_err(|e| format!("open {}: {}", path.display(), errno_text(&e)))?;
    let inode = std::fs::metadata(&path).map_err(|e| e.to_string())?.ino();
    set_lease(fd.as_raw_fd(), kind).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Leased {
        name,
        fd,
        inode,
        kind,
    })
}

/// Takes the leases, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    // SAFETY: ignoring a signal.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    let dir = wl.dir().to_path_buf();
    let read = lease(&dir, "read-leased", libc::F_RDLCK).unwrap_or_else(|e| wl.setup_failed(&e));
    let write = lease(&dir, "write-leased", libc::F_WRLCK).unwrap_or_else(|e| wl.setup_failed(&e));
    let check = |a: &Leased, b: &Leased| -> Result<(), String> {
        let mut p = Problems::new();
        p.check(a.check());
        p.check(b.check());
        p.into_result()
    };
    check(&read, &write).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "read={} read_inode={} write={} write_inode={}",
        read.fd.as_raw_fd(),
        read.inode,
        write.fd.as_raw_fd(),
        write.inode
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check(&read, &write))?;
    check(&read, &write)?;
    for l in [&read, &write] {
        set_lease(l.fd.as_raw_fd(), libc::F_UNLCK).map_err(|e| format!("{}: {e}", l.who()))?;
        match get_lease(l.fd.as_raw_fd()) {
            Ok("F_UNLCK") => {}
            Ok(t) => return Err(format!("{}: after F_UNLCK F_GETLEASE says {t}", l.who())),
            Err(e) => return Err(format!("{}: {e}", l.who())),
        }
    }
    Ok(format!(
        "a read and a write lease held over {ticks} checks, then released"
    ))
}
