//! `unlinked`: files that stay open after their name is gone.
//!
//! - `ghost.dat`: 64 KiB of pattern, opened `O_RDWR`, offset 12345, then unlinked: the
//!   descriptor holds the only reference (`st_nlink` 0). A checkpoint must carry the
//!   content itself.
//! - `keep.dat`: 16 KiB, opened `O_RDONLY`, offset 100, hard-linked as `keep-link.dat`,
//!   then `keep.dat` is unlinked: the file lives on under its other name (`st_nlink` 1),
//!   and the descriptor's own name is gone.
//!
//! Every tick it checks flags, offsets, inodes, link counts, sizes, contents, that neither
//! old name came back, that `keep-link.dat` is still the same inode, and that
//! `/proc/self/fd/N` says `(deleted)`. On SIGTERM it checks the same, then writes through
//! the ghost's descriptor at its offset and reads it back.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::{create_with, fd_err, link_count, names_inode, open, pread_all, seek, FdExpect};
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Program name.
pub const NAME: &str = "unlinked";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const GHOST_LEN: usize = 64 * 1024;
const KEEP_LEN: usize = 16 * 1024;
const GHOST_OFFSET: u64 = 12345;

struct Open {
    fd: OwnedFd,
    expect: FdExpect,
    data: Vec<u8>,
    links: u64,
    old_name: PathBuf,
}

struct State {
    ghost: Open,
    keep: Open,
    link: PathBuf,
    /// The inode behind keep.dat's descriptor, which keep-link.dat must still name.
    keep_ino: u64,
}

fn setup(wl: &Workload) -> Result<State, String> {
    let ghost_path = wl.path("ghost.dat");
    let ghost_data = pattern(7, GHOST_LEN);
    create_with(&ghost_path, &ghost_data)?;
    let ghost = open(&ghost_path, libc::O_RDWR)?;
    seek("ghost.dat", &ghost, GHOST_OFFSET)?;
    std::fs::remove_file(&ghost_path).map_err(|e| format!("unlink ghost.dat: {e}"))?;

    let keep_path = wl.path("keep.dat");
    let link = wl.path("keep-link.dat");
    let keep_data = pattern(8, KEEP_LEN);
    create_with(&keep_path, &keep_data)?;
    let keep = open(&keep_path, libc::O_RDONLY)?;
    seek("keep.dat", &keep, 100)?;
    std::fs::hard_link(&keep_path, &link).map_err(|e| format!("link keep.dat: {e}"))?;
    std::fs::remove_file(&keep_path).map_err(|e| format!("unlink keep.dat: {e}"))?;

    let keep_ino = crate::files::inode(keep.as_raw_fd()).map_err(|e| format!("fstat: {e}"))?;
    Ok(State {
        keep_ino,
        ghost: Open {
            expect: FdExpect::record("ghost.dat (unlinked)", &ghost)?,
            fd: ghost,
            data: ghost_data,
            links: 0,
            old_name: ghost_path,
        },
        keep: Open {
            expect: FdExpect::record("keep.dat (unlinked, linked as keep-link.dat)", &keep)?,
            fd: keep,
            data: keep_data,
            links: 1,
            old_name: keep_path,
        },
        link,
    })
}

impl Open {
    fn check(&self, p: &mut Problems) {
        self.expect.check(p);
        let who = self.expect.who();
        let raw = self.fd.as_raw_fd();
        match link_count(raw) {
            Ok(n) => p.expect_eq(&format!("{who}: st_nlink"), self.links, n),
            Err(e) => p.push(fd_err(&self.expect.label, raw, "fstat", &e)),
        }
        if let Some(got) = p.take(pread_all(&self.expect.label, &self.fd)) {
            p.check(compare_bytes(
                &format!("content of {who}"),
                &self.data,
                &got,
            ));
        }
        if self.old_name.exists() {
            p.push(format!(
                "{who}: its unlinked name {} exists again",
                self.old_name.display()
            ));
        }
        match std::fs::read_link(format!("/proc/self/fd/{raw}")) {
            Ok(target) if target.to_string_lossy().ends_with(" (deleted)") => {}
            Ok(target) => p.push(format!(
                "{who}: /proc/self/fd/{raw} is {}, expected a name ending in (deleted)",
                target.display()
            )),
            Err(e) => p.push(format!("readlink /proc/self/fd/{raw}: {}", errno_text(&e))),
        }
    }
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        self.ghost.check(&mut p);
        self.keep.check(&mut p);
        p.check(names_inode(&self.link, self.keep_ino));
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let raw = self.ghost.fd.as_raw_fd();
        let more = b"written after the restore";
        sys::write_all(raw, more).map_err(|e| fd_err("ghost.dat", raw, "write", &e))?;
        let at = GHOST_OFFSET as usize;
        self.ghost.data[at..at + more.len()].copy_from_slice(more);
        let got = pread_all("ghost.dat", &self.ghost.fd)?;
        compare_bytes(
            "ghost.dat after a write at its offset",
            &self.ghost.data,
            &got,
        )?;
        let off = sys::offset(raw).map_err(|e| fd_err("ghost.dat", raw, "lseek", &e))?;
        if off != GHOST_OFFSET + more.len() as u64 {
            return Err(format!(
                "ghost.dat offset after writing {} bytes at {GHOST_OFFSET}: expected {}, got {off}",
                more.len(),
                GHOST_OFFSET + more.len() as u64
            ));
        }
        Ok(())
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "fds: ghost.dat={} (unlinked, {GHOST_LEN} bytes, offset {GHOST_OFFSET}) keep.dat={} (unlinked, still linked as keep-link.dat)",
        st.ghost.fd.as_raw_fd(),
        st.keep.fd.as_raw_fd()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "both unlinked files kept content, link counts, offsets and flags over {ticks} checks; the ghost still takes writes"
    ))
}
