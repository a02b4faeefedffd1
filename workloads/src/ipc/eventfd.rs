//! `eventfd`: event counters.
//!
//! - `counter`: `eventfd(12345, EFD_NONBLOCK|EFD_CLOEXEC)`, plus `EFD_SEMAPHORE` with
//!   `--semaphore 1`;
//! - `idle`: `eventfd(0, EFD_NONBLOCK)`, nothing to read.
//!
//! Every tick it checks each counter (`eventfd-count` in fdinfo) and each descriptor's
//! flags. On SIGTERM it checks the same, then reads `counter`: the whole count at once, or
//! in semaphore mode exactly 1 (leaving 12344). Then `idle` must refuse a read
//! (`EAGAIN`), take a write of 5 and give back 5.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::files::{fd_err, FdExpect};
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "eventfd";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    steady::TICK_MS,
    Opt {
        name: "semaphore",
        metavar: "0|1",
        default: 0,
        min: 0,
        max: 1,
        help: "create the counter with EFD_SEMAPHORE",
    },
];

const START: u64 = 12345;

struct Counter {
    label: &'static str,
    fd: OwnedFd,
    expect: FdExpect,
    count: u64,
}

fn create(label: &'static str, value: u32, flags: libc::c_int) -> Result<Counter, String> {
    // SAFETY: plain syscall.
    let fd =
        sys::owned(unsafe { libc::eventfd(value, flags) }).map_err(|e| format!("eventfd: {e}"))?;
    Ok(Counter {
        label,
        expect: FdExpect::record(label, &fd)?,
        fd,
        count: value as u64,
    })
}

fn count(fd: &OwnedFd) -> Result<u64, String> {
    let info = procfs::fdinfo(fd.as_raw_fd())?;
    let text = procfs::field(&info, "eventfd-count").ok_or("no eventfd-count in fdinfo")?;
    u64::from_str_radix(text, 16).map_err(|_| format!("bad eventfd-count `{text}`"))
}

fn read_value(c: &Counter) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    sys::read(c.fd.as_raw_fd(), &mut b)?;
    Ok(u64::from_ne_bytes(b))
}

impl Counter {
    fn check(&self, p: &mut Problems) {
        self.expect.check(p);
        match count(&self.fd) {
            Ok(n) => p.expect_eq(
                &format!("{}: eventfd-count", self.expect.who()),
                self.count,
                n,
            ),
            Err(e) => p.push(format!("{}: {e}", self.expect.who())),
        }
    }
}

fn check(counters: &[Counter]) -> Result<(), String> {
    let mut p = Problems::new();
    for c in counters {
        c.check(&mut p);
    }
    p.into_result()
}

fn exercise(counters: &mut [Counter], semaphore: bool) -> Result<(), String> {
    let mut p = Problems::new();
    let c = &mut counters[0];
    match read_value(c) {
        Ok(v) if semaphore && v != 1 => p.push(format!(
            "{}: a read gave {v}, expected 1 (EFD_SEMAPHORE reads one at a time; the semaphore mode was lost)",
            c.expect.who()
        )),
        Ok(v) if !semaphore && v != c.count => p.push(format!(
            "{}: a read gave {v}, expected the whole count {}",
            c.expect.who(),
            c.count
        )),
        Ok(v) => c.count -= v,
        Err(e) => p.push(fd_err(c.label, c.fd.as_raw_fd(), "read", &e)),
    }
    let idle = &mut counters[1];
    match read_value(idle) {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
        other => p.push(format!(
            "{}: a read of the zero counter gave {other:?}, expected EAGAIN",
            idle.expect.who()
        )),
    }
    match sys::write_all(idle.fd.as_raw_fd(), &5u64.to_ne_bytes()).and_then(|_| read_value(idle)) {
        Ok(5) => {}
        Ok(v) => p.push(format!("{}: wrote 5, read {v}", idle.expect.who())),
        Err(e) => p.push(format!("{}: {}", idle.expect.who(), errno_text(&e))),
    }
    p.check(check(counters));
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let semaphore = args.get("semaphore") == 1;
    let flags =
        libc::EFD_NONBLOCK | libc::EFD_CLOEXEC | if semaphore { libc::EFD_SEMAPHORE } else { 0 };
    let label = if semaphore {
        "eventfd counter (EFD_SEMAPHORE)"
    } else {
        "eventfd counter"
    };
    let mut counters = create(label, START as u32, flags)
        .and_then(|c| Ok(vec![c, create("eventfd idle", 0, libc::EFD_NONBLOCK)?]))
        .unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "counter={} (count {START}{}) idle={} (count 0)",
        counters[0].fd.as_raw_fd(),
        if semaphore { ", EFD_SEMAPHORE" } else { "" },
        counters[1].fd.as_raw_fd()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check(&counters))?;
    check(&counters)?;
    exercise(&mut counters, semaphore)?;
    Ok(format!(
        "2 eventfds kept their counts{} and flags over {ticks} checks; reads and writes still count right",
        if semaphore { ", and the counter its semaphore mode," } else { "" }
    ))
}
