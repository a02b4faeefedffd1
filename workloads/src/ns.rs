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

use crate::sys;
use nix::libc;

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
