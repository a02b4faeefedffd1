//! `pidfd`: a process descriptor of a child (`pidfd_open`).
//!
//! The workload forks a helper child and opens a pidfd for it. Every tick it checks that
//! the pidfd still names the child (`Pid:` in its fdinfo) and that it does not poll
//! readable (the child has not exited). On SIGTERM it checks the same, signals the child
//! through the pidfd (`pidfd_send_signal` with signal 0, then a request the child answers),
//! kills it through the pidfd, and then the pidfd must poll readable and `waitid(P_PIDFD)`
//! must report the child killed by `SIGKILL`.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::Workload;
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "pidfd";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// `P_PIDFD` of waitid (Linux 5.4).
const P_PIDFD: libc::idtype_t = 3;

fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    sys::owned(fd as libc::c_int)
}

fn send_signal(pidfd: &OwnedFd, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain syscall; no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    sys::cvt_long(r).map(|_| ())
}

/// True when the pidfd polls readable within `ms` (its process has exited).
fn exited(pidfd: &OwnedFd, ms: libc::c_int) -> std::io::Result<bool> {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = sys::cvt(unsafe { libc::poll(&mut p, 1, ms) })?;
    Ok(n == 1 && p.revents & libc::POLLIN != 0)
}

fn check(pidfd: &OwnedFd, child: &Helper) -> Result<(), String> {
    let mut p = Problems::new();
    let who = format!("pidfd (fd {}) of {}", pidfd.as_raw_fd(), child.who());
    match procfs::fdinfo(pidfd.as_raw_fd()) {
        Ok(info) => p.expect_eq(
            &format!("{who}: Pid in fdinfo"),
            child.pid.as_raw().to_string(),
            procfs::field(&info, "Pid").unwrap_or("(none)").to_string(),
        ),
        Err(e) => p.push(format!("{who}: {e}")),
    }
    match exited(pidfd, 0) {
        Ok(false) => {}
        Ok(true) => p.push(format!("{who}: polls readable: the child has exited")),
        Err(e) => p.push(format!("{who}: poll: {e}")),
    }
    p.into_result()
}

fn exercise(pidfd: &OwnedFd, child: &mut Helper) -> Result<(), String> {
    let who = format!("pidfd (fd {}) of {}", pidfd.as_raw_fd(), child.who());
    send_signal(pidfd, 0).map_err(|e| format!("{who}: pidfd_send_signal(0): {e}"))?;
    child.ask("ping")?;
    send_signal(pidfd, libc::SIGKILL)
        .map_err(|e| format!("{who}: pidfd_send_signal(SIGKILL): {e}"))?;
    if !exited(pidfd, 5000).map_err(|e| format!("{who}: poll: {e}"))? {
        return Err(format!("{who}: not readable 5 s after SIGKILL"));
    }
    // SAFETY: waitid fills the siginfo.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe {
        libc::waitid(
            P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED,
        )
    })
    .map_err(|e| format!("{who}: waitid(P_PIDFD): {e}"))?;
    // SAFETY: reading the fields waitid filled.
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid != child.pid.as_raw() || code != libc::CLD_KILLED || status != libc::SIGKILL {
        return Err(format!(
            "{who}: waitid(P_PIDFD) gave pid {pid}, code {code}, status {status}; expected pid {}, killed by SIGKILL",
            child.pid
        ));
    }
    Ok(())
}

/// Forks the child, opens its pidfd, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut child = family::spawn("the child", |req| match req {
        "ping" => Ok("pong".into()),
        other => Err(format!("unknown request `{other}`")),
    })
    .unwrap_or_else(|e| wl.setup_failed(&e));
    let pidfd = pidfd_open(child.pid.as_raw())
        .unwrap_or_else(|e| wl.setup_failed(&format!("pidfd_open({}): {e}", child.pid)));
    let detail = format!("pidfd={} child={}", pidfd.as_raw_fd(), child.pid);
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check(&pidfd, &child))?;
    check(&pidfd, &child)?;
    exercise(&pidfd, &mut child)?;
    Ok(format!(
        "the pidfd still named its child over {ticks} checks; it signalled, killed and waited for it"
    ))
}
