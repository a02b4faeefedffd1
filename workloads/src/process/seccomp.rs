//! `seccomp`: a seccomp BPF filter that must still be enforced.
//!
//! The workload sets `PR_SET_NO_NEW_PRIVS` and installs a filter that makes `getppid(2)`
//! fail with `ENOTBLK` and `personality(2)` fail with `ECHRNG` (errnos nothing else
//! returns for them), allows everything else, and kills the process for a foreign
//! architecture. It then forks a helper, which inherits the filter.
//!
//! Every tick and on SIGTERM, in the workload and in the helper: both calls must fail with
//! the filter's errno, and `/proc/self/status` must say `Seccomp: 2`,
//! `Seccomp_filters: 1`, `NoNewPrivs: 1`.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "seccomp";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The filter program.
fn program() -> Vec<libc::sock_filter> {
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    vec![
        stmt(ld, 4), // seccomp_data.arch
        jump(jeq, AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(ld, 0), // seccomp_data.nr
        jump(jeq, libc::SYS_getppid as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOTBLK as u32),
        jump(jeq, libc::SYS_personality as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ECHRNG as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ]
}

fn install() -> Result<(), String> {
    let prog = program();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctls; the program outlives the call (the kernel copies it).
    unsafe {
        sys::cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            .map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
        sys::cvt(libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        ))
        .map_err(|e| format!("PR_SET_SECCOMP: {e}"))?;
    }
    Ok(())
}

/// Checks the filter from inside the calling process.
fn probe() -> Result<(), String> {
    let mut p = Problems::new();
    for (nr, name, arg, want) in [
        (libc::SYS_getppid, "getppid()", 0u64, libc::ENOTBLK),
        (
            libc::SYS_personality,
            "personality(0xffffffff)",
            0xffff_ffff,
            libc::ECHRNG,
        ),
    ] {
        // SAFETY: both calls take at most one integer argument.
        let r = unsafe { libc::syscall(nr, arg) };
        let e = std::io::Error::last_os_error();
        if r != -1 || e.raw_os_error() != Some(want) {
            p.push(format!(
                "{name}: expected -1 with {} from the filter, got {r}{}",
                errno_text(&std::io::Error::from_raw_os_error(want)),
                if r == -1 {
                    format!(" with {}", errno_text(&e))
                } else {
                    String::new()
                }
            ));
        }
    }
    for (key, want) in [
        ("Seccomp", "2"),
        ("Seccomp_filters", "1"),
        ("NoNewPrivs", "1"),
    ] {
        match procfs::status_field(None, key) {
            Ok(v) => p.expect_eq(&format!("{key} in /proc/self/status"), want, v.as_str()),
            Err(e) => p.push(e),
        }
    }
    p.into_result()
}

fn check(helper: &mut Helper) -> Result<(), String> {
    let mut p = Problems::new();
    p.check(probe().map_err(|e| format!("workload: {e}")));
    p.take(helper.ask("probe"));
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    install().unwrap_or_else(|e| wl.setup_failed(&e));
    let mut helper = family::spawn("helper (inherited the filter)", |req| match req {
        "probe" => probe().map(|_| "ok".into()),
        _ => Err(format!("unknown request `{req}`")),
    })
    .unwrap_or_else(|e| wl.setup_failed(&e));
    check(&mut helper).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "filter: getppid -> ENOTBLK, personality -> ECHRNG, other arch -> kill; helper={}",
        helper.pid
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| check(&mut helper))
        .and_then(|t| check(&mut helper).map(|_| t));
    match outcome {
        Ok(ticks) => {
            helper.finish()?;
            Ok(format!(
                "the seccomp filter held in the workload and its helper over {ticks} checks (getppid -> ENOTBLK, personality -> ECHRNG)"
            ))
        }
        Err(e) => {
            helper.kill();
            Err(e)
        }
    }
}
