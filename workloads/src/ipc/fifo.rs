//! `fifo`: a named pipe with unread data, open three ways.
//!
//! The workload makes the FIFO `fifo` in its work dir and opens it for reading
//! (`O_RDONLY|O_NONBLOCK`), for writing (`O_WRONLY`) and both (`O_RDWR`), then writes 5000
//! bytes it does not read. Every tick it checks the bytes waiting, the three descriptors'
//! flags, and that `fifo` still names the same FIFO. On SIGTERM it checks the same, reads
//! the 5000 bytes back, and writes and reads through each writable descriptor.

use crate::args::{Args, Opt};
use crate::check::{pattern, Problems};
use crate::files::{fd_err, names_inode, open, FdExpect};
use crate::ipc::{expect_queued, expect_read, round_trip};
use crate::protocol::Workload;
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Program name.
pub const NAME: &str = "fifo";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const QUEUED: usize = 5000;

struct State {
    path: PathBuf,
    r: OwnedFd,
    w: OwnedFd,
    rw: OwnedFd,
    ends: Vec<FdExpect>,
    data: Vec<u8>,
}

fn setup(wl: &Workload) -> Result<State, String> {
    let path = wl.path("fifo");
    let c = sys::cpath(&path).map_err(|e| format!("{e}"))?;
    // SAFETY: a valid path.
    sys::cvt(unsafe { libc::mkfifo(c.as_ptr(), 0o600) })
        .map_err(|e| format!("mkfifo {}: {e}", path.display()))?;
    let r = open(&path, libc::O_RDONLY | libc::O_NONBLOCK)?;
    let w = open(&path, libc::O_WRONLY)?;
    let rw = open(&path, libc::O_RDWR)?;
    let data = pattern(66, QUEUED);
    sys::write_all(w.as_raw_fd(), &data).map_err(|e| fd_err("fifo", w.as_raw_fd(), "write", &e))?;
    let ends = vec![
        FdExpect::record("fifo reader", &r)?,
        FdExpect::record("fifo writer", &w)?,
        FdExpect::record("fifo read-write", &rw)?,
    ];
    Ok(State {
        path,
        r,
        w,
        rw,
        ends,
        data,
    })
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for e in &self.ends {
            e.check(&mut p);
        }
        expect_queued(&mut p, "fifo", &self.r, self.data.len());
        if let Some(ino) = self.ends[0].inode {
            p.check(names_inode(&self.path, ino));
        }
        p.into_result()
    }

    fn drain_and_use(&self) -> Result<(), String> {
        let mut p = Problems::new();
        expect_read(&mut p, "fifo", &self.r, &self.data);
        round_trip(&mut p, "fifo writer", &self.w, &self.r, &pattern(67, 300));
        round_trip(
            &mut p,
            "fifo read-write",
            &self.rw,
            &self.r,
            &pattern(68, 300),
        );
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "fifo: reader={} writer={} rw={}; {QUEUED} bytes queued",
        st.r.as_raw_fd(),
        st.w.as_raw_fd(),
        st.rw.as_raw_fd()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.drain_and_use()?;
    Ok(format!(
        "the FIFO kept its {QUEUED} unread bytes and its 3 descriptors over {ticks} checks; every byte read back, and it still carries data"
    ))
}
