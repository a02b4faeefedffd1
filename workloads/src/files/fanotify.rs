//! `fanotify`: a fanotify group with an inode mark and a mount mark (needs root).
//!
//! The group (`FAN_CLASS_NOTIF`) marks the workload's `watched/` directory for
//! `FAN_CLOSE_WRITE` and `FAN_MODIFY` of its children (`FAN_EVENT_ON_CHILD`), with
//! `FAN_OPEN` ignored, and the directory's mount for `FAN_CLOSE_WRITE`. Every tick it reads
//! the group's marks from its fdinfo (the kind, flags, mask and ignored mask of each) and
//! compares them with those at setup (events of the mount's other files pile up unread:
//! criu does not keep queued events, and the check does not need them). On SIGTERM it
//! checks the same, writes a file in `watched/`, and must read a `FAN_CLOSE_WRITE` event
//! for that file from the group.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "fanotify";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// The inode mark's mask.
pub const INODE_MASK: u64 = libc::FAN_CLOSE_WRITE | libc::FAN_MODIFY | libc::FAN_EVENT_ON_CHILD;
/// The mount mark's mask.
pub const MOUNT_MASK: u64 = libc::FAN_CLOSE_WRITE;

/// One mark of a fanotify fdinfo, without what names its object (inode, device, mount id,
/// file handle): `inode` or `mnt`, then `mflags`, `mask`, `ignored_mask` (hex as printed).
pub fn marks(fdinfo: &str) -> Vec<String> {
    fdinfo
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("fanotify ")?;
            let kind = if rest.starts_with("ino:") {
                "inode"
            } else if rest.starts_with("mnt_id:") {
                "mnt"
            } else {
                return None;
            };
            let get = |k: &str| procfs::word_value(rest, k).unwrap_or("?").to_string();
            Some(format!(
                "{kind} mflags:{} mask:{} ignored_mask:{}",
                get("mflags"),
                get("mask"),
                get("ignored_mask")
            ))
        })
        .collect()
}

fn mark(fd: &OwnedFd, flags: libc::c_uint, mask: u64, path: &Path) -> std::io::Result<()> {
    let c = sys::cpath(path)?;
    // SAFETY: plain syscall with a C path.
    sys::cvt(unsafe {
        libc::fanotify_mark(fd.as_raw_fd(), flags, mask, libc::AT_FDCWD, c.as_ptr())
    })
    .map(|_| ())
}

struct Group {
    fd: OwnedFd,
    dir: PathBuf,
    marks: Vec<String>,
}

impl Group {
    fn who(&self) -> String {
        format!("fanotify group (fd {})", self.fd.as_raw_fd())
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        if let Some(info) = p.take(procfs::fdinfo(self.fd.as_raw_fd())) {
            p.expect_eq(
                &format!("{}: marks", self.who()),
                &self.marks,
                &marks(&info),
            );
        }
        p.into_result()
    }

    /// Writes a file in the watched directory and waits for its close-write event.
    fn sees_a_write(&self) -> Result<(), String> {
        let path = self.dir.join("written-after");
        std::fs::write(&path, b"x").map_err(|e| format!("write {}: {e}", path.display()))?;
        let end = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 4096];
        let mut seen = Vec::new();
        while Instant::now() < end {
            match sys::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(n) => {
                    let mut at = 0;
                    // struct fanotify_event_metadata: event_len u32, vers u8, reserved u8,
                    // metadata_len u16, mask u64, fd i32, pid i32.
                    while at + 24 <= n {
                        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                        let mask = u64::from_ne_bytes(buf[at + 8..at + 16].try_into().unwrap());
                        let efd = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().unwrap());
                        if efd >= 0 {
                            let target = std::fs::read_link(format!("/proc/self/fd/{efd}"));
                            // SAFETY: the event's fd is ours to close.
                            unsafe { libc::close(efd) };
                            if mask & libc::FAN_CLOSE_WRITE != 0
                                && target.as_deref().ok() == Some(&path)
                            {
                                return Ok(());
                            }
                            seen.push(format!("{mask:#x} {target:?}"));
                        }
                        if len == 0 {
                            break;
                        }
                        at += len;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(format!("{}: read: {}", self.who(), errno_text(&e))),
            }
        }
        Err(format!(
            "{}: no FAN_CLOSE_WRITE event for {} within 5 s (saw: {})",
            self.who(),
            path.display(),
            if seen.is_empty() {
                "nothing".to_string()
            } else {
                seen.join(", ")
            }
        ))
    }
}

fn setup(base: &Path) -> Result<Group, String> {
    let dir = base.join("watched");
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| e.to_string())?;
    // SAFETY: plain syscall.
    let fd = sys::owned(unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
            (libc::O_RDONLY | libc::O_LARGEFILE) as libc::c_uint,
        )
    })
    .map_err(|e| format!("fanotify_init: {} (needs CAP_SYS_ADMIN)", errno_text(&e)))?;
    let e = |what: &str, err: std::io::Error| format!("fanotify_mark {what}: {}", errno_text(&err));
    mark(&fd, libc::FAN_MARK_ADD, INODE_MASK, &dir).map_err(|err| e("inode", err))?;
    mark(
        &fd,
        libc::FAN_MARK_ADD | libc::FAN_MARK_IGNORED_MASK,
        libc::FAN_OPEN,
        &dir,
    )
    .map_err(|err| e("ignored", err))?;
    mark(
        &fd,
        libc::FAN_MARK_ADD | libc::FAN_MARK_MOUNT,
        MOUNT_MASK,
        &dir,
    )
    .map_err(|err| e("mount", err))?;
    let info = procfs::fdinfo(fd.as_raw_fd())?;
    let marks = marks(&info);
    if marks.len() != 2 {
        return Err(format!("expected 2 marks in the fdinfo, got {marks:?}"));
    }
    Ok(Group { fd, dir, marks })
}

/// Marks the directory and its mount, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let g = setup(wl.dir()).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("fanotify={} dir={}", g.fd.as_raw_fd(), g.dir.display());
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| g.check())?;
    g.check()?;
    g.sees_a_write()?;
    Ok(format!(
        "a fanotify group kept its inode and mount marks over {ticks} checks and reported a write in the directory"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_of_an_fdinfo() {
        let info = "pos:\t0\nflags:\t02004000\nmnt_id:\t15\nino:\t1234\n\
fanotify flags:10 event-flags:8000\n\
fanotify ino:4f sdev:800001 mflags:0 mask:4000000a ignored_mask:20 fhandle-bytes:8 fhandle-type:1 f_handle:4f00000000000000\n\
fanotify mnt_id:1c mflags:0 mask:8 ignored_mask:0\n";
        assert_eq!(
            marks(info),
            vec![
                "inode mflags:0 mask:4000000a ignored_mask:20",
                "mnt mflags:0 mask:8 ignored_mask:0"
            ]
        );
    }
}
