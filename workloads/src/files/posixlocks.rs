//! `posixlocks`: POSIX record locks and open-file-description (OFD) locks (criu needs
//! `--file-locks`).
//!
//! - `posix.dat`: `F_SETLK` write lock on bytes 0..100, read lock on 200..300, write lock
//!   from 500 to the end of file (length 0).
//! - `ofd.dat`: `F_OFD_SETLK` write lock on 0..10 through one descriptor, read lock on
//!   100..200 through another.
//!
//! POSIX locks are invisible to `F_GETLK` from their own process, so the workload probes
//! with `F_OFD_GETLK` through separate open file descriptions (opened once: closing any
//! descriptor of a file would drop the process's POSIX locks on it), which conflict with
//! both kinds:
//! every probe must report the exact conflicting lock (type, start, length, and the
//! workload's pid for POSIX locks), or none where nothing is locked. `/proc/locks` must list
//! exactly these locks. On SIGTERM it checks the same, then adds a write lock on 300..400
//! and drops the one on 0..100, and probes again.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::files::{create_with, inode, open};
use crate::protocol::Workload;
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "posixlocks";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// A lock or a probe answer: type, start, length (0 = to the end), pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub kind: i16,
    pub start: i64,
    pub len: i64,
}

fn kind_name(kind: i16) -> &'static str {
    match kind as libc::c_int {
        libc::F_RDLCK => "F_RDLCK",
        libc::F_WRLCK => "F_WRLCK",
        libc::F_UNLCK => "F_UNLCK",
        _ => "?",
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let end = if self.len == 0 {
            "EOF".to_string()
        } else {
            (self.start + self.len).to_string()
        };
        write!(f, "{} {}..{end}", kind_name(self.kind), self.start)
    }
}

fn flock_struct(r: Range) -> libc::flock {
    // SAFETY: plain old data.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = r.kind;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = r.start;
    fl.l_len = r.len;
    fl
}

fn set_lock(fd: &impl AsRawFd, cmd: libc::c_int, r: Range) -> Result<(), String> {
    let fl = flock_struct(r);
    // SAFETY: the command takes a struct flock.
    sys::cvt(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &fl) })
        .map(|_| ())
        .map_err(|e| format!("locking {r}: {e}"))
}

/// `F_OFD_GETLK` for `r` through `fd`: the conflicting lock (kind, start, len, pid), or
/// `None` when `r` could be taken.
fn conflict(fd: &impl AsRawFd, r: Range) -> Result<Option<(Range, i32)>, String> {
    let mut fl = flock_struct(r);
    // SAFETY: the command takes a struct flock.
    sys::cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })
        .map_err(|e| format!("F_OFD_GETLK {r}: {e}"))?;
    if fl.l_type as libc::c_int == libc::F_UNLCK {
        return Ok(None);
    }
    Ok(Some((
        Range {
            kind: fl.l_type,
            start: fl.l_start,
            len: fl.l_len,
        },
        fl.l_pid,
    )))
}

const fn range(kind: libc::c_int, start: i64, len: i64) -> Range {
    Range {
        kind: kind as i16,
        start,
        len,
    }
}

/// (file, probe, expected conflict, whether the conflict is a POSIX lock of ours)
type Probe = (&'static str, Range, Option<Range>, bool);

const PROBES: &[Probe] = &[
    (
        "posix.dat",
        range(libc::F_WRLCK, 0, 100),
        Some(range(libc::F_WRLCK, 0, 100)),
        true,
    ),
    ("posix.dat", range(libc::F_WRLCK, 100, 100), None, true),
    (
        "posix.dat",
        range(libc::F_WRLCK, 200, 100),
        Some(range(libc::F_RDLCK, 200, 100)),
        true,
    ),
    ("posix.dat", range(libc::F_RDLCK, 200, 100), None, true),
    (
        "posix.dat",
        range(libc::F_RDLCK, 600, 100),
        Some(range(libc::F_WRLCK, 500, 0)),
        true,
    ),
    (
        "ofd.dat",
        range(libc::F_RDLCK, 0, 10),
        Some(range(libc::F_WRLCK, 0, 10)),
        false,
    ),
    ("ofd.dat", range(libc::F_WRLCK, 10, 90), None, false),
    (
        "ofd.dat",
        range(libc::F_WRLCK, 150, 1),
        Some(range(libc::F_RDLCK, 100, 100)),
        false,
    ),
];

struct State {
    /// Probe descriptors, opened once: closing any descriptor of a file drops the
    /// process's POSIX locks on it, so a probe must never open and close its own.
    probe_posix: OwnedFd,
    probe_ofd: OwnedFd,
    posix: OwnedFd,
    ofd: [OwnedFd; 2],
    posix_ino: u64,
    ofd_ino: u64,
}

fn setup(wl: &Workload) -> Result<State, String> {
    let posix_path = wl.path("posix.dat");
    let ofd_path = wl.path("ofd.dat");
    create_with(&posix_path, &[0u8; 1000])?;
    create_with(&ofd_path, &[0u8; 1000])?;
    let posix = open(&posix_path, libc::O_RDWR)?;
    set_lock(&posix, libc::F_SETLK, range(libc::F_WRLCK, 0, 100))?;
    set_lock(&posix, libc::F_SETLK, range(libc::F_RDLCK, 200, 100))?;
    set_lock(&posix, libc::F_SETLK, range(libc::F_WRLCK, 500, 0))?;
    let ofd = [
        open(&ofd_path, libc::O_RDWR)?,
        open(&ofd_path, libc::O_RDWR)?,
    ];
    set_lock(&ofd[0], libc::F_OFD_SETLK, range(libc::F_WRLCK, 0, 10))?;
    set_lock(&ofd[1], libc::F_OFD_SETLK, range(libc::F_RDLCK, 100, 100))?;
    Ok(State {
        posix_ino: inode(posix.as_raw_fd()).map_err(|e| format!("fstat: {e}"))?,
        ofd_ino: inode(ofd[0].as_raw_fd()).map_err(|e| format!("fstat: {e}"))?,
        probe_posix: open(&posix_path, libc::O_RDWR)?,
        probe_ofd: open(&ofd_path, libc::O_RDWR)?,
        posix,
        ofd,
    })
}

impl State {
    fn probe(&self, p: &mut Problems, probes: &[Probe]) {
        let me = std::process::id() as i32;
        for &(file, asked, want, ours) in probes {
            let fd = if file == "posix.dat" {
                &self.probe_posix
            } else {
                &self.probe_ofd
            };
            let Some(got) = p.take(conflict(fd, asked)) else {
                continue;
            };
            let got_range = got.map(|(r, _)| r);
            if got_range != want {
                p.push(format!(
                    "{file}: a probe for {asked} found {}, expected {}",
                    got_range.map_or("no conflict".into(), |r| format!("a conflicting {r}")),
                    want.map_or("no conflict".into(), |r| format!("a conflicting {r}"))
                ));
            } else if let (Some((r, pid)), true) = (got, ours) {
                if pid != me {
                    p.push(format!(
                        "{file}: the conflicting {r} belongs to pid {pid}, expected the workload's pid {me}"
                    ));
                }
            }
        }
    }

    fn check_proc_locks(&self, p: &mut Problems, posix_want: &[&str]) {
        let me = std::process::id() as i32;
        for (file, ino, class, want) in [
            ("posix.dat", self.posix_ino, "POSIX", posix_want),
            (
                "ofd.dat",
                self.ofd_ino,
                "OFDLCK",
                &["WRITE 0..9", "READ 100..199"][..],
            ),
        ] {
            let mut want: Vec<String> = want.iter().map(|w| format!("{class} {w}")).collect();
            want.sort();
            let got = |locks: &[procfs::Lock]| -> Vec<String> {
                let mut got: Vec<String> = locks
                    .iter()
                    .filter(|l| class != "POSIX" || l.pid == me)
                    .map(|l| {
                        let end = l.end.map_or("EOF".to_string(), |e| e.to_string());
                        format!("{} {} {}..{end}", l.class, l.access, l.start)
                    })
                    .collect();
                got.sort();
                got
            };
            let settled = |l: &[procfs::Lock]| got(l) == want && l.len() == want.len();
            let Some(locks) = p.take(procfs::locks_on_settled(ino, settled)) else {
                return;
            };
            let got = got(&locks);
            if !settled(&locks) {
                p.push(format!(
                    "{file} (inode {ino}): /proc/locks holds [{}] (pid {me}'s), expected [{}]",
                    got.join(", "),
                    want.join(", ")
                ));
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        self.check_proc_locks(&mut p, &["WRITE 0..99", "READ 200..299", "WRITE 500..EOF"]);
        self.probe(&mut p, PROBES);
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let mut p = Problems::new();
        p.check(set_lock(
            &self.posix,
            libc::F_SETLK,
            range(libc::F_WRLCK, 300, 100),
        ));
        p.check(set_lock(
            &self.posix,
            libc::F_SETLK,
            range(libc::F_UNLCK, 0, 100),
        ));
        self.check_proc_locks(
            &mut p,
            &["READ 200..299", "WRITE 300..399", "WRITE 500..EOF"],
        );
        self.probe(
            &mut p,
            &[
                ("posix.dat", range(libc::F_WRLCK, 0, 100), None, true),
                (
                    "posix.dat",
                    range(libc::F_RDLCK, 350, 1),
                    Some(range(libc::F_WRLCK, 300, 100)),
                    true,
                ),
            ],
        );
        // The OFD locks still belong to their descriptors: each may re-take its own.
        p.check(set_lock(
            &self.ofd[0],
            libc::F_OFD_SETLK,
            range(libc::F_WRLCK, 0, 10),
        ));
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "fds: posix={} (3 POSIX locks, inode {}) ofd={} ofd2={} (2 OFD locks, inode {})",
        st.posix.as_raw_fd(),
        st.posix_ino,
        st.ofd[0].as_raw_fd(),
        st.ofd[1].as_raw_fd(),
        st.ofd_ino
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "3 POSIX and 2 OFD locks held and enforced over {ticks} checks; locks still change after"
    ))
}
