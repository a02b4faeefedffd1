//! `flocks`: `flock(2)` locks held by open file descriptions (criu needs `--file-locks`).
//!
//! - `flock-ex.dat`: one descriptor holding `LOCK_EX`.
//! - `flock-sh.dat`: two descriptors (two open file descriptions) each holding `LOCK_SH`.
//!
//! Every tick it checks `/proc/locks` (one `FLOCK WRITE` on the first file's inode, two
//! `FLOCK READ` on the second's, all with the workload's pid) and probes the locks from a
//! fresh open: `LOCK_SH|LOCK_NB` on the first file must fail with `EWOULDBLOCK`;
//! on the second, `LOCK_SH|LOCK_NB` must succeed and `LOCK_EX|LOCK_NB` must fail. On SIGTERM
//! it checks the same, then releases the exclusive lock (a probe must now get it) and takes
//! it again.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::files::{create_with, inode, open};
use crate::protocol::Workload;
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Program name.
pub const NAME: &str = "flocks";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

struct State {
    ex_path: PathBuf,
    sh_path: PathBuf,
    ex: OwnedFd,
    _sh: [OwnedFd; 2],
    ex_ino: u64,
    sh_ino: u64,
}

fn flock(fd: &impl AsRawFd, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    sys::cvt(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(|_| ())
}

fn op_name(op: libc::c_int) -> &'static str {
    match op & !libc::LOCK_NB {
        libc::LOCK_SH => "LOCK_SH|LOCK_NB",
        libc::LOCK_EX => "LOCK_EX|LOCK_NB",
        _ => "LOCK_UN",
    }
}

/// Tries `op` from a fresh open of `path`; `Ok(true)` if it got the lock (released again).
fn probe(path: &Path, op: libc::c_int) -> Result<bool, String> {
    let fd = open(path, libc::O_RDONLY)?;
    match flock(&fd, op | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(format!(
            "probe flock({}, {}): {e}",
            path.display(),
            op_name(op)
        )),
    }
}

fn expect_probe(p: &mut Problems, path: &Path, op: libc::c_int, granted: bool, why: &str) {
    if let Some(got) = p.take(probe(path, op)) {
        if got != granted {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            p.push(format!(
                "{name}: a fresh open {} {} ({why})",
                if got { "got" } else { "was refused" },
                op_name(op)
            ));
        }
    }
}

fn setup(wl: &Workload) -> Result<State, String> {
    let ex_path = wl.path("flock-ex.dat");
    let sh_path = wl.path("flock-sh.dat");
    create_with(&ex_path, b"exclusive")?;
    create_with(&sh_path, b"shared")?;
    let ex = open(&ex_path, libc::O_RDWR)?;
    flock(&ex, libc::LOCK_EX | libc::LOCK_NB).map_err(|e| format!("flock(LOCK_EX): {e}"))?;
    let sh = [
        open(&sh_path, libc::O_RDONLY)?,
        open(&sh_path, libc::O_RDONLY)?,
    ];
    for fd in &sh {
        flock(fd, libc::LOCK_SH | libc::LOCK_NB).map_err(|e| format!("flock(LOCK_SH): {e}"))?;
    }
    Ok(State {
        ex_ino: inode(ex.as_raw_fd()).map_err(|e| format!("fstat: {e}"))?,
        sh_ino: inode(sh[0].as_raw_fd()).map_err(|e| format!("fstat: {e}"))?,
        ex_path,
        sh_path,
        ex,
        _sh: sh,
    })
}

impl State {
    fn check_proc_locks(&self, p: &mut Problems) {
        let me = std::process::id() as i32;
        for (name, ino, access, count) in [
            ("flock-ex.dat", self.ex_ino, "WRITE", 1),
            ("flock-sh.dat", self.sh_ino, "READ", 2),
        ] {
            let ours = |locks: &[procfs::Lock]| {
                locks
                    .iter()
                    .filter(|l| l.class == "FLOCK" && l.access == access && l.pid == me)
                    .count()
            };
            let settled = |l: &[procfs::Lock]| ours(l) == count && l.len() == count;
            let Some(locks) = p.take(procfs::locks_on_settled(ino, settled)) else {
                return;
            };
            if !settled(&locks) {
                let seen: Vec<String> = locks
                    .iter()
                    .map(|l| format!("{} {} pid {}", l.class, l.access, l.pid))
                    .collect();
                p.push(format!(
                    "{name} (inode {ino}): /proc/locks should hold {count} FLOCK {access} lock(s) of pid {me}, it holds [{}]",
                    seen.join(", ")
                ));
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        self.check_proc_locks(&mut p);
        expect_probe(
            &mut p,
            &self.ex_path,
            libc::LOCK_SH,
            false,
            "the workload holds LOCK_EX",
        );
        expect_probe(
            &mut p,
            &self.sh_path,
            libc::LOCK_SH,
            true,
            "only shared locks are held",
        );
        expect_probe(
            &mut p,
            &self.sh_path,
            libc::LOCK_EX,
            false,
            "the workload holds two LOCK_SH",
        );
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let mut p = Problems::new();
        p.check(flock(&self.ex, libc::LOCK_UN).map_err(|e| format!("flock(LOCK_UN): {e}")));
        expect_probe(
            &mut p,
            &self.ex_path,
            libc::LOCK_EX,
            true,
            "the workload released its lock",
        );
        p.check(
            flock(&self.ex, libc::LOCK_EX | libc::LOCK_NB)
                .map_err(|e| format!("taking LOCK_EX on flock-ex.dat again: {e}")),
        );
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "fds: ex={} (flock-ex.dat, LOCK_EX, inode {}); flock-sh.dat holds two LOCK_SH (inode {})",
        st.ex.as_raw_fd(),
        st.ex_ino,
        st.sh_ino
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "flock locks held and enforced over {ticks} checks; released and taken again after"
    ))
}
