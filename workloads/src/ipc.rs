//! Workloads about inter-process communication: pipes and FIFOs with data in flight, UNIX
//! sockets with queued messages, System V shared memory, semaphores and message queues,
//! POSIX shared memory, and the descriptor kinds that carry events (eventfd, epoll,
//! inotify, signalfd, timerfd), futex waiters and BPF maps. Scenario tag `ipc`.
//!
//! This module holds what they share: checking how many bytes wait in a descriptor and
//! reading exactly what must be there.

pub mod bpfmap;
pub mod epoll;
pub mod eventfd;
pub mod fifo;
pub mod futex;
pub mod inotify;
pub mod pipes;
pub mod posixshm;
pub mod signalfd;
pub mod sysv;
pub mod sysvmsg;
pub mod sysvsem;
pub mod sysvshm;
pub mod timerfd;
pub mod unixsock;

use crate::check::{compare_bytes, Problems};
use crate::files::fd_err;
use crate::sys;
use std::os::fd::AsRawFd;

/// Checks that `want` bytes wait to be read in `fd` (`FIONREAD`).
pub fn expect_queued(p: &mut Problems, label: &str, fd: &impl AsRawFd, want: usize) {
    let raw = fd.as_raw_fd();
    match sys::queued_bytes(raw) {
        Ok(n) if n != want => p.push(format!(
            "{label} (fd {raw}): {n} bytes queued, expected {want}"
        )),
        Ok(_) => {}
        Err(e) => p.push(fd_err(label, raw, "FIONREAD", &e)),
    }
}

/// Reads everything waiting in the non-blocking `fd` and compares it with `want`.
pub fn expect_read(p: &mut Problems, label: &str, fd: &impl AsRawFd, want: &[u8]) {
    let raw = fd.as_raw_fd();
    match sys::read_available(raw) {
        Ok(got) => p.check(compare_bytes(
            &format!("data read from {label} (fd {raw})"),
            want,
            &got,
        )),
        Err(e) => p.push(fd_err(label, raw, "read", &e)),
    }
}

/// Writes `data` into `w` and reads it back from the non-blocking `r`: the channel still
/// works.
pub fn round_trip(p: &mut Problems, label: &str, w: &impl AsRawFd, r: &impl AsRawFd, data: &[u8]) {
    match sys::write_all(w.as_raw_fd(), data) {
        Ok(()) => expect_read(p, &format!("{label} after a new write"), r, data),
        Err(e) => p.push(fd_err(label, w.as_raw_fd(), "write", &e)),
    }
}

/// Sets `O_NONBLOCK` on `fd` (keeping its other status flags).
pub fn set_nonblocking(fd: &impl AsRawFd) -> Result<(), String> {
    let raw = fd.as_raw_fd();
    let flags = sys::status_flags(raw).map_err(|e| fd_err("fd", raw, "F_GETFL", &e))?;
    sys::fcntl_int(raw, nix::libc::F_SETFL, flags | nix::libc::O_NONBLOCK)
        .map(|_| ())
        .map_err(|e| fd_err("fd", raw, "F_SETFL", &e))
}
