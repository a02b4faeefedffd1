//! `ipcns`: an IPC namespace with its own limits (needs root).
//!
//! The workload enters a new IPC namespace and sets the namespace's System V and POSIX
//! message queue limits (`kernel.shmmax`, `shmall`, `shmmni`, `shm_rmid_forced`,
//! `msgmax`, `msgmnb`, `msgmni`, `sem`, `fs.mqueue.msg_max`, `msgsize_max`,
//! `queues_max`) to values unlike the defaults, and makes one shared memory segment (key
//! `0xc0ffee`) as a marker. Every tick it reads every limit back and checks the namespace
//! holds exactly the marker (no object of another namespace shows). On SIGTERM it checks
//! the same, then changes one limit once more.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::ipc::sysv;
use crate::ns::unshare;
use crate::protocol::Workload;
use crate::{steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "ipcns";
/// The marker segment's key.
pub const MARKER: i32 = 0x00c0_ffee;
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// (sysctl path under /proc/sys, value)
const LIMITS: [(&str, &str); 10] = [
    ("kernel/shmmax", "305419264"),
    ("kernel/shmall", "1234567"),
    ("kernel/shmmni", "1234"),
    ("kernel/msgmax", "4321"),
    ("kernel/msgmnb", "32100"),
    ("kernel/msgmni", "123"),
    ("kernel/sem", "251 32001 33 129"),
    ("fs/mqueue/msg_max", "33"),
    ("fs/mqueue/msgsize_max", "4000"),
    ("fs/mqueue/queues_max", "77"),
];

fn read(name: &str) -> Result<String, String> {
    crate::procfs::read(&format!("/proc/sys/{name}"))
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn write(name: &str, value: &str) -> Result<(), String> {
    std::fs::write(format!("/proc/sys/{name}"), value)
        .map_err(|e| format!("writing {value} to /proc/sys/{name}: {e}"))
}

fn setup() -> Result<i32, String> {
    unshare(libc::CLONE_NEWIPC, "CLONE_NEWIPC")?;
    for (name, value) in LIMITS {
        write(name, value)?;
    }
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::shmget(MARKER, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) })
        .map_err(|e| format!("shmget({MARKER:#x}): {e}"))
}

fn check(marker: i32, limits: &[(&str, String)]) -> Result<(), String> {
    let mut p = Problems::new();
    for (name, want) in limits {
        if let Some(got) = p.take(read(name)) {
            p.expect_eq(
                &format!("{} in the workload's IPC namespace", name.replace('/', ".")),
                want.clone(),
                got,
            );
        }
    }
    p.take(sysv::expect_objects("shm", &[(MARKER, marker)]));
    for kind in ["sem", "msg"] {
        p.take(sysv::expect_objects(kind, &[]));
    }
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let marker = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let mut limits: Vec<(&str, String)> = LIMITS.iter().map(|(n, v)| (*n, v.to_string())).collect();
    check(marker, &limits).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "own IPC namespace with {} limits set; marker segment={marker} (key {MARKER:#x})",
        LIMITS.len()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check(marker, &limits))?;
    check(marker, &limits)?;
    write("kernel/msgmax", "4444")?;
    limits[3].1 = "4444".into();
    check(marker, &limits)?;
    Ok(format!(
        "the IPC namespace kept its {} limits and only its own marker segment over {ticks} checks; limits still change",
        LIMITS.len()
    ))
}
