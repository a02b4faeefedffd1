//! Workloads in namespaces of their own (all need root): a PID namespace whose init is the
//! checkpointed process, a UTS namespace with its own host name, an IPC namespace with its
//! own limits, a mount namespace with a private tmpfs, a time namespace with its clocks
//! moved ahead. Scenario tag `ns`.
//!
//! criu dumps a namespace when the root of the dumped tree owns it, so each workload enters
//! its namespace in the process it names in `ready`.

pub mod ipcns;
pub mod mntns;
pub mod pidns;
pub mod timens;
pub mod utsns;

use crate::args::Args;
use crate::protocol::{Workload, READY_FILE};
use crate::sys;
use nix::libc;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult};
use std::time::{Duration, Instant};

/// The verdict of a workload body.
pub type Body = fn(&mut Workload, &Args) -> Result<String, String>;

/// Forks the process that runs `body` in the namespace the caller just entered for its
/// children (`what` names that process in messages). The caller, the starter, waits for
/// `ready` (or for the child to die) and exits without a verdict of its own: the child
/// names itself in `ready` and writes the result.
///
/// Call only while the workload has a single thread.
pub fn run_in_child(
    wl: &mut Workload,
    args: &Args,
    what: &str,
    body: Body,
) -> Result<String, String> {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: single-threaded; the child runs the workload, the parent only waits.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => return body(wl, args),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => wl.setup_failed(&format!("fork of {what}: {e}")),
    };
    let ready = wl.path(READY_FILE);
    let start = Instant::now();
    loop {
        if ready.exists() {
            // Linger a moment, so whoever waits for `ready` sees it before seeing the
            // starter gone.
            std::thread::sleep(Duration::from_millis(200));
            std::process::exit(0);
        }
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(..)) => {
                wl.setup_failed(&format!("{what} was killed before ready"))
            }
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            wl.setup_failed(&format!("{what} was not ready within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `unshare(2)` with `flags`, named in the error.
pub fn unshare(flags: libc::c_int, name: &str) -> Result<(), String> {
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::unshare(flags) })
        .map(|_| ())
        .map_err(|e| format!("unshare({name}): {e} (needs root)"))
}

/// The inode of namespace `kind` (`uts`, `ipc`, `mnt`, `pid`) of process `pid` (`self`
/// for the caller).
pub fn ns_inode(pid: &str, kind: &str) -> Result<String, String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|t| t.display().to_string())
        .map_err(|e| format!("readlink /proc/{pid}/ns/{kind}: {e}"))
}
