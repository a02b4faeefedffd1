//! `procattrs`: the attributes a process carries besides its memory and files.
//!
//! The workload sets, each to a value unlike its default:
//!
//! - its name (`PR_SET_NAME`) to `crt-attrs`;
//! - its working directory to `cwd-dir/sub` of the work dir;
//! - its umask to `027`;
//! - `RLIMIT_NOFILE` (soft 777), `RLIMIT_CORE` (1 MiB / 2 MiB), `RLIMIT_MSGQUEUE`
//!   (12345 / 23456);
//! - its nice value to 7 and its scheduling policy to `SCHED_BATCH`;
//! - its personality (`ADDR_NO_RANDOMIZE` added);
//! - `PR_SET_CHILD_SUBREAPER`;
//! - its capability bounding set, without `CAP_SYS_BOOT` and `CAP_MKNOD` (needs root).
//!
//! Every tick and on SIGTERM it checks each one; on SIGTERM it then changes the umask, the
//! nice value and a limit once more and checks they took.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Program name.
pub const NAME: &str = "procattrs";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const COMM: &str = "crt-attrs";
const UMASK: u32 = 0o027;
const NICE: i32 = 7;
const DROPPED_CAPS: [(libc::c_int, &str); 2] = [(22, "CAP_SYS_BOOT"), (27, "CAP_MKNOD")];

/// A resource limit by number and name.
type Limit = (libc::__rlimit_resource_t, &'static str);

const NOFILE: Limit = (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE");
const CORE: Limit = (libc::RLIMIT_CORE, "RLIMIT_CORE");
const MSGQUEUE: Limit = (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE");

fn get_limit(res: libc::__rlimit_resource_t) -> std::io::Result<(u64, u64)> {
    // SAFETY: getrlimit fills the struct.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::getrlimit(res, &mut r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}

fn set_limit((res, name): Limit, soft: u64, hard: u64) -> Result<(), String> {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: a valid struct.
    sys::cvt(unsafe { libc::setrlimit(res, &r) })
        .map(|_| ())
        .map_err(|e| format!("setrlimit({name}, {soft}, {hard}): {}", errno_text(&e)))
}

fn subreaper() -> std::io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int.
    sys::cvt(unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int) })?;
    Ok(v)
}

fn nice_value() -> Result<i32, String> {
    // getpriority can return -1 legitimately; clear errno first.
    // SAFETY: errno location is per thread.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: plain syscall.
    let v = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let e = std::io::Error::last_os_error();
    if v == -1 && e.raw_os_error() != Some(0) {
        return Err(format!("getpriority: {}", errno_text(&e)));
    }
    Ok(v)
}

fn personality() -> std::io::Result<u64> {
    // SAFETY: 0xffffffff queries without changing.
    sys::cvt(unsafe { libc::personality(0xffff_ffff) }).map(|p| p as u64)
}

/// Everything set, as it must stay.
struct Attrs {
    cwd: PathBuf,
    cwd_ino: u64,
    limits: Vec<(Limit, (u64, u64))>,
    umask: u32,
    nice: i32,
    personality: u64,
}

fn setup(wl: &Workload) -> Result<Attrs, String> {
    let name = std::ffi::CString::new(COMM).expect("no NUL");
    // SAFETY: PR_SET_NAME reads a NUL-terminated string.
    sys::cvt(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) })
        .map_err(|e| format!("PR_SET_NAME: {e}"))?;
    let cwd = wl.path("cwd-dir").join("sub");
    std::fs::create_dir_all(&cwd).map_err(|e| format!("mkdir {}: {e}", cwd.display()))?;
    std::env::set_current_dir(&cwd).map_err(|e| format!("chdir {}: {e}", cwd.display()))?;
    let cwd_ino = std::fs::metadata(".")
        .map_err(|e| format!("stat .: {e}"))?
        .ino();
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(UMASK) };
    let nofile_hard = get_limit(NOFILE.0)
        .map_err(|e| format!("getrlimit: {e}"))?
        .1;
    let limits = vec![
        (NOFILE, (777, nofile_hard.max(777))),
        (CORE, (1 << 20, 2 << 20)),
        (MSGQUEUE, (12345, 23456)),
    ];
    for &(limit, (soft, hard)) in &limits {
        set_limit(limit, soft, hard)?;
    }
    // SAFETY: plain syscalls.
    sys::cvt(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) })
        .map_err(|e| format!("setpriority({NICE}): {e}"))?;
    let param = libc::sched_param { sched_priority: 0 };
    sys::cvt(unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) })
        .map_err(|e| format!("sched_setscheduler(SCHED_BATCH): {e}"))?;
    let persona =
        personality().map_err(|e| format!("personality: {e}"))? | libc::ADDR_NO_RANDOMIZE as u64;
    sys::cvt(unsafe { libc::personality(persona as libc::c_ulong) })
        .map_err(|e| format!("personality({persona:#x}): {e}"))?;
    sys::cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    for (cap, cap_name) in DROPPED_CAPS {
        sys::cvt(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) })
            .map_err(|e| format!("PR_CAPBSET_DROP {cap_name}: {e} (needs CAP_SETPCAP)"))?;
    }
    Ok(Attrs {
        cwd,
        cwd_ino,
        limits,
        umask: UMASK,
        nice: NICE,
        personality: persona,
    })
}

impl Attrs {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        match std::fs::read_to_string("/proc/self/comm") {
            Ok(c) => p.expect_eq("name (comm)", COMM, c.trim_end()),
            Err(e) => p.push(format!("/proc/self/comm: {e}")),
        }
        match std::env::current_dir() {
            Ok(d) => p.expect_eq("working directory", self.cwd.clone(), d),
            Err(e) => p.push(format!("getcwd: {e}")),
        }
        match std::fs::metadata(".") {
            Ok(m) => p.expect_eq("inode of the working directory", self.cwd_ino, m.ino()),
            Err(e) => p.push(format!("stat .: {e}")),
        }
        match procfs::status_field(None, "Umask") {
            Ok(u) => p.expect_eq("umask", format!("{:04o}", self.umask), u),
            Err(e) => p.push(e),
        }
        for &((res, name), want) in &self.limits {
            match get_limit(res) {
                Ok(got) => p.expect_eq(&format!("{name} (soft, hard)"), want, got),
                Err(e) => p.push(format!("getrlimit({name}): {e}")),
            }
        }
        match nice_value() {
            Ok(n) => p.expect_eq("nice value", self.nice, n),
            Err(e) => p.push(e),
        }
        // SAFETY: plain syscall.
        let policy = unsafe { libc::sched_getscheduler(0) };
        p.expect_eq(
            "scheduling policy (3 = SCHED_BATCH)",
            libc::SCHED_BATCH,
            policy,
        );
        match personality() {
            Ok(v) => p.expect_eq(
                "personality",
                format!("{:#x}", self.personality),
                format!("{v:#x}"),
            ),
            Err(e) => p.push(format!("personality: {e}")),
        }
        match subreaper() {
            Ok(v) => p.expect_eq("PR_GET_CHILD_SUBREAPER", 1, v),
            Err(e) => p.push(format!("PR_GET_CHILD_SUBREAPER: {e}")),
        }
        for (cap, cap_name) in DROPPED_CAPS {
            // SAFETY: PR_CAPBSET_READ takes the capability number.
            match sys::cvt(unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) }) {
                Ok(v) => p.expect_eq(&format!("{cap_name} in the bounding set"), 0, v),
                Err(e) => p.push(format!("PR_CAPBSET_READ {cap_name}: {e}")),
            }
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        // SAFETY: umask cannot fail; setpriority is a plain syscall.
        unsafe { libc::umask(0o077) };
        self.umask = 0o077;
        sys::cvt(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 9) })
            .map_err(|e| format!("setpriority(9): {e}"))?;
        self.nice = 9;
        set_limit(NOFILE, 555, self.limits[0].1 .1)?;
        self.limits[0].1 .0 = 555;
        self.check()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut attrs = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    attrs.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "comm {COMM}, cwd {}, umask {UMASK:04o}, nice {NICE} SCHED_BATCH, RLIMIT_NOFILE 777, personality {:#x}, subreaper, bounding set without CAP_SYS_BOOT CAP_MKNOD",
        attrs.cwd.display(),
        attrs.personality
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| attrs.check())?;
    attrs.check()?;
    attrs.exercise()?;
    Ok(format!(
        "name, cwd, umask, 3 rlimits, nice, policy, personality, subreaper and bounding set kept over {ticks} checks; they still change"
    ))
}
