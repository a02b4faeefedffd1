//! Workloads about open files: descriptors with their flags and offsets, files that are open
//! but unlinked, file locks, file-backed and memfd mappings, descriptions shared between
//! processes, an AIO context, the RTC device, a fanotify group, leases and a sparse ghost
//! file. Scenario tag `files`.
//!
//! This module holds what they share: [`FdExpect`], the state one descriptor must be in.

pub mod aio;
pub mod appendlog;
pub mod bursty;
pub mod fanotify;
pub mod flocks;
pub mod ghostholes;
pub mod leases;
pub mod memfd;
pub mod mmapfile;
pub mod openflags;
pub mod posixlocks;
pub mod rtc;
pub mod sharedfds;
pub mod unlinked;

use crate::check::Problems;
use crate::protocol::errno_text;
use crate::sys;
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The open-file status bits a check compares: the access mode and the flags a program
/// sets. `O_LARGEFILE` is left out (the kernel sets it by itself on 64-bit).
pub const FLAG_MASK: libc::c_int = libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_SYNC
    | libc::O_DSYNC
    | libc::O_DIRECT
    | libc::O_NOATIME
    | libc::O_ASYNC;

/// The state one descriptor must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdExpect {
    /// How the descriptor is named in messages, e.g. `rw.dat`.
    pub label: String,
    /// Its number.
    pub fd: RawFd,
    /// `F_GETFL & FLAG_MASK`.
    pub flags: libc::c_int,
    /// Whether `FD_CLOEXEC` is set.
    pub cloexec: bool,
    /// The file offset; `None` for descriptors without one (pipes, sockets...).
    pub offset: Option<u64>,
    /// The inode number the descriptor refers to, for files a restore reopens by name;
    /// `None` for objects a restore recreates (pipes, sockets, memfds, unlinked files,
    /// files of a filesystem the checkpoint carries), whose inode number changes.
    pub inode: Option<u64>,
}

impl FdExpect {
    /// Records the current state of `fd`.
    pub fn record(label: &str, fd: &impl AsRawFd) -> Result<FdExpect, String> {
        let raw = fd.as_raw_fd();
        let flags = sys::status_flags(raw).map_err(|e| fd_err(label, raw, "F_GETFL", &e))?;
        let fdflags = sys::fd_flags(raw).map_err(|e| fd_err(label, raw, "F_GETFD", &e))?;
        let offset = sys::offset(raw).ok();
        let ino = inode(raw).map_err(|e| fd_err(label, raw, "fstat", &e))?;
        let reopened_by_name = std::fs::read_link(format!("/proc/self/fd/{raw}"))
            .map(|t| {
                let t = t.to_string_lossy();
                t.starts_with('/') && !t.starts_with("/memfd:") && !t.ends_with(" (deleted)")
            })
            .unwrap_or(false);
        Ok(FdExpect {
            label: label.to_string(),
            fd: raw,
            flags: flags & FLAG_MASK,
            cloexec: fdflags & libc::FD_CLOEXEC != 0,
            offset,
            inode: reopened_by_name.then_some(ino),
        })
    }

    /// The same expectation without the inode check: for a file on a filesystem the
    /// checkpoint carries along (a private tmpfs), which a restore recreates.
    pub fn without_inode(mut self) -> FdExpect {
        self.inode = None;
        self
    }

    /// `LABEL fd N (FLAGS)`.
    pub fn who(&self) -> String {
        format!(
            "{} fd {} ({})",
            self.label,
            self.fd,
            sys::open_flags_text(self.flags)
        )
    }

    /// Compares the descriptor's current state with this one.
    pub fn check(&self, p: &mut Problems) {
        let who = self.who();
        match sys::status_flags(self.fd) {
            Ok(f) if f & FLAG_MASK != self.flags => p.push(format!(
                "{who}: status flags expected {}, got {}",
                sys::open_flags_text(self.flags),
                sys::open_flags_text(f & FLAG_MASK)
            )),
            Ok(_) => {}
            Err(e) => {
                p.push(fd_err(&self.label, self.fd, "F_GETFL", &e));
                return;
            }
        }
        match sys::fd_flags(self.fd) {
            Ok(f) => p.expect_eq(
                &format!("{who}: FD_CLOEXEC"),
                self.cloexec,
                f & libc::FD_CLOEXEC != 0,
            ),
            Err(e) => p.push(fd_err(&self.label, self.fd, "F_GETFD", &e)),
        }
        if let Some(want) = self.offset {
            match sys::offset(self.fd) {
                Ok(got) => p.expect_eq(&format!("{who}: offset"), want, got),
                Err(e) => p.push(fd_err(&self.label, self.fd, "lseek", &e)),
            }
        }
        if let Some(want) = self.inode {
            match inode(self.fd) {
                Ok(got) => p.expect_eq(&format!("{who}: inode"), want, got),
                Err(e) => p.push(fd_err(&self.label, self.fd, "fstat", &e)),
            }
        }
    }
}

/// `LABEL fd N: OP: ERRNO`.
pub fn fd_err(label: &str, fd: RawFd, op: &str, e: &std::io::Error) -> String {
    format!("{label} fd {fd}: {op}: {}", errno_text(e))
}

/// The inode number of the file `fd` refers to.
pub fn inode(fd: RawFd) -> std::io::Result<u64> {
    // SAFETY: fstat fills the struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_ino)
}

/// The number of links of the file `fd` refers to.
pub fn link_count(fd: RawFd) -> std::io::Result<u64> {
    // SAFETY: fstat fills the struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_nlink)
}

/// The size of the file `fd` refers to.
pub fn file_size(fd: RawFd) -> std::io::Result<u64> {
    // SAFETY: fstat fills the struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_size as u64)
}

/// Creates (or truncates) `path` with `content`.
pub fn create_with(path: &Path, content: &[u8]) -> Result<(), String> {
    std::fs::write(path, content)
        .map_err(|e| format!("cannot write {}: {}", path.display(), errno_text(&e)))
}

/// Opens `path` with `flags`; the error names the path, the flags and the errno.
pub fn open(path: &Path, flags: libc::c_int) -> Result<OwnedFd, String> {
    sys::open(path, flags, 0o644).map_err(|e| {
        format!(
            "open({}, {}): {}",
            path.display(),
            sys::open_flags_text(flags),
            errno_text(&e)
        )
    })
}

/// Moves the offset of `fd` to `pos`.
pub fn seek(label: &str, fd: &impl AsRawFd, pos: u64) -> Result<(), String> {
    sys::seek_to(fd.as_raw_fd(), pos).map_err(|e| fd_err(label, fd.as_raw_fd(), "lseek", &e))
}

/// Reads the whole file behind `fd` with `pread` (the offset does not move).
pub fn pread_all(label: &str, fd: &impl AsRawFd) -> Result<Vec<u8>, String> {
    let raw = fd.as_raw_fd();
    let size = file_size(raw).map_err(|e| fd_err(label, raw, "fstat", &e))?;
    let mut buf = vec![0u8; size as usize];
    let n = sys::pread_full(raw, &mut buf, 0).map_err(|e| fd_err(label, raw, "pread", &e))?;
    buf.truncate(n);
    Ok(buf)
}

/// Whether `path` still names the inode `ino` (the file was not replaced).
pub fn names_inode(path: &Path, ino: u64) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.ino() == ino => Ok(()),
        Ok(m) => Err(format!(
            "{} is inode {}, but the open descriptor is inode {ino}",
            path.display(),
            m.ino()
        )),
        Err(e) => Err(format!("{}: {}", path.display(), errno_text(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_expect_catches_flags_offset_and_cloexec() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        create_with(&path, &[7u8; 100]).unwrap();
        let fd = open(&path, libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC).unwrap();
        seek("f", &fd, 40).unwrap();
        let want = FdExpect::record("f", &fd).unwrap();
        assert_eq!(want.flags, libc::O_RDWR | libc::O_NONBLOCK);
        assert!(want.cloexec);
        assert_eq!(want.offset, Some(40));
        let mut p = Problems::new();
        want.check(&mut p);
        assert!(p.is_empty(), "{p:?}");

        seek("f", &fd, 0).unwrap();
        sys::fcntl_int(fd.as_raw_fd(), libc::F_SETFL, libc::O_APPEND).unwrap();
        sys::fcntl_int(fd.as_raw_fd(), libc::F_SETFD, 0).unwrap();
        let mut p = Problems::new();
        want.check(&mut p);
        let n = fd.as_raw_fd();
        assert_eq!(
            p.list(),
            &[
                format!("f fd {n} (O_RDWR|O_NONBLOCK): status flags expected O_RDWR|O_NONBLOCK, got O_RDWR|O_APPEND"),
                format!("f fd {n} (O_RDWR|O_NONBLOCK): FD_CLOEXEC: expected true, got false"),
                format!("f fd {n} (O_RDWR|O_NONBLOCK): offset: expected 40, got 0"),
            ]
        );
        let ino = want.inode.expect("a named file is checked by inode");
        names_inode(&path, ino).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(names_inode(&path, ino).unwrap_err().contains("ENOENT"));
        // Unlinked files and pipes are recreated by a restore: no inode check.
        assert_eq!(FdExpect::record("f", &fd).unwrap().inode, None);
        let (r, _w) = sys::pipe(0).unwrap();
        assert_eq!(FdExpect::record("pipe", &r).unwrap().inode, None);
    }
}
