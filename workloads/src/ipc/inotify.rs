//! `inotify`: watches that must survive and keep reporting.
//!
//! The workload watches the directory `watched` (`IN_CREATE|IN_DELETE|IN_MOVED_TO`) and the
//! file `watched/file.txt` (`IN_MODIFY|IN_CLOSE_WRITE`) with one non-blocking inotify
//! instance. Every tick it compares the watches in the inotify fdinfo (descriptor, inode,
//! device, mask) with what it set up, and requires the event queue to be empty (no event
//! is made while it waits). On SIGTERM it checks the same, then creates, writes and
//! deletes files and requires exactly the matching events, with the right watch
//! descriptors and names.
//!
//! (Events queued but unread at checkpoint time are not part of the check: criu does not
//! carry inotify queues.)

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::files::fd_err;
use crate::protocol::Workload;
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Program name.
pub const NAME: &str = "inotify";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// (wd, inode, device, mask) as the fdinfo shows them, all hex text.
type Watch = (String, String, String, String);

struct State {
    fd: OwnedFd,
    dir: PathBuf,
    dir_wd: i32,
    file_wd: i32,
    watches: Vec<Watch>,
}

fn add_watch(fd: &OwnedFd, path: &Path, mask: u32) -> Result<i32, String> {
    let c = sys::cpath(path).map_err(|e| e.to_string())?;
    // SAFETY: a valid path.
    sys::cvt(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) })
        .map_err(|e| format!("inotify_add_watch({}): {e}", path.display()))
}

fn watches(fd: &OwnedFd) -> Result<Vec<Watch>, String> {
    let info = procfs::fdinfo(fd.as_raw_fd())?;
    let mut out: Vec<Watch> = procfs::lines_with(&info, "inotify ")
        .into_iter()
        .map(|l| {
            let get = |k| procfs::word_value(l, k).unwrap_or("?").to_string();
            (get("wd"), get("ino"), get("sdev"), get("mask"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Every event waiting: (wd, mask, name).
fn read_events(fd: &OwnedFd) -> Result<Vec<(i32, u32, String)>, String> {
    let bytes = sys::read_available(fd.as_raw_fd())
        .map_err(|e| fd_err("inotify", fd.as_raw_fd(), "read", &e))?;
    let mut out = Vec::new();
    let mut at = 0;
    let head = std::mem::size_of::<libc::inotify_event>();
    while at + head <= bytes.len() {
        // SAFETY: the kernel wrote whole inotify_event records.
        let ev: libc::inotify_event =
            unsafe { std::ptr::read_unaligned(bytes[at..].as_ptr().cast()) };
        let name_bytes = &bytes[at + head..at + head + ev.len as usize];
        let name: Vec<u8> = name_bytes.iter().copied().take_while(|&b| b != 0).collect();
        out.push((ev.wd, ev.mask, String::from_utf8_lossy(&name).into_owned()));
        at += head + ev.len as usize;
    }
    Ok(out)
}

fn setup(wl: &Workload) -> Result<State, String> {
    let dir = wl.path("watched");
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir watched: {e}"))?;
    let file = dir.join("file.txt");
    std::fs::write(&file, b"watched file\n").map_err(|e| format!("write file.txt: {e}"))?;
    // SAFETY: plain syscall.
    let fd = sys::owned(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })
        .map_err(|e| format!("inotify_init1: {e}"))?;
    let dir_wd = add_watch(
        &fd,
        &dir,
        libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_TO,
    )?;
    let file_wd = add_watch(&fd, &file, libc::IN_MODIFY | libc::IN_CLOSE_WRITE)?;
    let watches = watches(&fd)?;
    if watches.len() != 2 {
        return Err(format!(
            "the inotify fdinfo lists {} watches, expected 2",
            watches.len()
        ));
    }
    Ok(State {
        fd,
        dir,
        dir_wd,
        file_wd,
        watches,
    })
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let show = |v: &[Watch]| {
            v.iter()
                .map(|(wd, ino, dev, mask)| format!("wd {wd} ino {ino} sdev {dev} mask {mask}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        match watches(&self.fd) {
            Ok(got) if got == self.watches => {}
            Ok(got) => p.push(format!(
                "inotify fd {}: watches are [{}], expected [{}]",
                self.fd.as_raw_fd(),
                show(&got),
                show(&self.watches)
            )),
            Err(e) => p.push(e),
        }
        match sys::queued_bytes(self.fd.as_raw_fd()) {
            Ok(0) => {}
            Ok(n) => p.push(format!(
                "inotify fd {}: {n} bytes of events queued, expected none (nothing happened)",
                self.fd.as_raw_fd()
            )),
            Err(e) => p.push(fd_err("inotify", self.fd.as_raw_fd(), "FIONREAD", &e)),
        }
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let new = self.dir.join("new-file");
        let file = self.dir.join("file.txt");
        let io = |r: std::io::Result<()>| r.map_err(|e| format!("making events: {e}"));
        io(std::fs::write(&new, b"x"))?;
        io(std::fs::write(&file, b"changed\n"))?;
        io(std::fs::remove_file(&new))?;
        let got = read_events(&self.fd)?;
        // What matters: these, in this order (a write may give several IN_MODIFY).
        let want = [
            (self.dir_wd, libc::IN_CREATE, "new-file"),
            (self.file_wd, libc::IN_MODIFY, ""),
            (self.file_wd, libc::IN_CLOSE_WRITE, ""),
            (self.dir_wd, libc::IN_DELETE, "new-file"),
        ];
        let mut seen = got.iter();
        for (wd, mask, name) in want {
            if !seen.any(|(w, m, n)| *w == wd && m & mask != 0 && n == name) {
                let all: Vec<String> = got
                    .iter()
                    .map(|(w, m, n)| format!("wd {w} mask {m:#x} `{n}`"))
                    .collect();
                return Err(format!(
                    "inotify fd {}: missing the event wd {wd} mask {mask:#x} `{name}` (in order); got [{}]",
                    self.fd.as_raw_fd(),
                    all.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "inotify={} dir-wd={} file-wd={}",
        st.fd.as_raw_fd(),
        st.dir_wd,
        st.file_wd
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "2 inotify watches kept their inodes and masks over {ticks} checks; create, modify, close-write and delete were reported with the right watches"
    ))
}
