//! The `process` workloads on the host: each passes when left alone, and the ones whose
//! state can be reached from outside catch it changed (a helper killed, a thread renamed,
//! limits and nice value changed with `prlimit`/`setpriority`, a vector register changed
//! with `ptrace`, the child of a pidfd killed).

mod common;

use common::*;
use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

const FAST: &[&str] = &["--tick-ms", "5"];
const GRACE: Duration = Duration::from_secs(3);

#[test]
fn zombies_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_zombies"), FAST);
    assert!(detail.starts_with("3 zombies stayed unreaped"), "{detail}");
}

#[test]
fn zombies_catches_a_dead_sibling() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_zombies"), FAST);
    let ready = w.wait_ready();
    assert!(
        ready.detail.contains("(exited with status 3)"),
        "{}",
        ready.detail
    );
    assert!(
        ready.detail.contains("(killed by SIGUSR1)"),
        "{}",
        ready.detail
    );
    let helper = Pid::from_raw(detail_number(&ready.detail, "helper") as i32);
    kill(helper, Signal::SIGKILL).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("live helper (pid {helper})")],
    );
}

#[test]
fn threads_passes() {
    let detail = passes(
        env!("CARGO_BIN_EXE_threads"),
        &["--tick-ms", "5", "--threads", "3"],
    );
    assert!(
        detail.starts_with("3 threads kept their ids, names"),
        "{detail}"
    );
}

#[test]
fn threads_catches_a_changed_thread_local_value() {
    if !root_or_skip("threads_catches_a_changed_thread_local_value") {
        return;
    }
    let mut w = Running::start(
        env!("CARGO_BIN_EXE_threads"),
        &["--tick-ms", "5", "--threads", "3"],
    );
    let ready = w.wait_ready();
    let tid = detail_number(&ready.detail, "crt-worker-1");
    let tls = detail_number(&ready.detail, "tls-1") as u64;
    poke(w.pid(), tls, &0x0bad_u64.to_le_bytes());
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "thread 1 (tid {tid}): thread-local value: expected \"0x711500001111\", got \"0xbad\""
        )],
    );
    assert!(!verdict.detail.contains("thread 0"), "{}", verdict.detail);
}

#[test]
fn sessions_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_sessions"), FAST);
    assert!(
        detail.starts_with("6 processes in 2 sessions and 4 process groups"),
        "{detail}"
    );
}

#[test]
fn sessions_catches_a_lost_group_member() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_sessions"), FAST);
    let ready = w.wait_ready();
    let e = Pid::from_raw(detail_number(&ready.detail, "e") as i32);
    kill(e, Signal::SIGKILL).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("helper E (in A's group) (pid {e})")],
    );
}

#[test]
fn procattrs_passes() {
    if !root_or_skip("procattrs_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_procattrs"), FAST);
    assert!(
        detail.starts_with("name, cwd, umask, 3 rlimits"),
        "{detail}"
    );
}

#[test]
fn procattrs_catches_changed_limits_and_nice() {
    if !root_or_skip("procattrs_catches_changed_limits_and_nice") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_procattrs"), &["--tick-ms", "20"]);
    w.wait_ready();
    let pid = w.pid().as_raw();
    // SAFETY: plain syscalls on another process, as root.
    unsafe {
        let mut old: libc::rlimit = std::mem::zeroed();
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old),
            0
        );
        let new = libc::rlimit {
            rlim_cur: 500,
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()),
            0
        );
        assert_eq!(
            libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, 3),
            0
        );
    }
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            "RLIMIT_NOFILE (soft, hard): expected (777, ",
            "got (500, ",
            "nice value: expected 7, got 3",
        ],
    );
}

#[test]
fn seccomp_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_seccomp"), FAST);
    assert!(
        detail.starts_with("the seccomp filter held in the workload and its helper"),
        "{detail}"
    );
}

#[test]
fn fpu_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_fpu"), FAST);
    assert!(
        detail.contains("registers and MXCSR kept their values over"),
        "{detail}"
    );
}

/// Changes xmm3 of a stopped thread through `PTRACE_SETREGSET` (the FXSAVE area), the
/// way a restore that lost the thread's FPU state would leave it.
fn flip_xmm3(tid: i32) {
    let pid = tid as libc::pid_t;
    // SAFETY: plain ptrace requests on a thread of our child; the iovec points at `regs`.
    unsafe {
        assert_eq!(libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0), 0, "seize");
        assert_eq!(
            libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0),
            0,
            "interrupt"
        );
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, libc::__WALL), pid);
        let mut regs: libc::user_fpregs_struct = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: (&mut regs as *mut libc::user_fpregs_struct).cast(),
            iov_len: std::mem::size_of::<libc::user_fpregs_struct>(),
        };
        let nt_prfpreg = 2usize;
        assert_eq!(
            libc::ptrace(libc::PTRACE_GETREGSET, pid, nt_prfpreg, &mut iov),
            0,
            "getregset"
        );
        let regs = &mut *iov.iov_base.cast::<libc::user_fpregs_struct>();
        regs.xmm_space[3 * 4] ^= 0xffff_ffff;
        assert_eq!(
            libc::ptrace(libc::PTRACE_SETREGSET, pid, nt_prfpreg, &mut iov),
            0,
            "setregset"
        );
        assert_eq!(libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0), 0, "detach");
    }
}

#[test]
fn fpu_catches_a_changed_register() {
    if !root_or_skip("fpu_catches_a_changed_register") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_fpu"), FAST);
    let ready = w.wait_ready();
    let tid = detail_number(&ready.detail, "holder") as i32;
    flip_xmm3(tid);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(code, &verdict, &w.log(), &["mm3: expected 0x"]);
}

#[test]
fn pidfd_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_pidfd"), FAST);
    assert!(
        detail.starts_with("the pidfd still named its child over"),
        "{detail}"
    );
}

#[test]
fn pidfd_catches_its_child_gone() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_pidfd"), FAST);
    let ready = w.wait_ready();
    let fd = detail_number(&ready.detail, "pidfd");
    let child = detail_number(&ready.detail, "child") as i32;
    kill(Pid::from_raw(child), Signal::SIGKILL).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "pidfd (fd {fd}) of the child (pid {child}): polls readable: the child has exited"
        )],
    );
}

#[test]
fn stopped_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_stopped"), FAST);
    assert!(
        detail.starts_with("a SIGSTOPped child stayed stopped"),
        "{detail}"
    );
}

#[test]
fn stopped_catches_a_continued_child() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_stopped"), FAST);
    let ready = w.wait_ready();
    let pid = detail_number(&ready.detail, "stopped") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "stopped child (pid {pid}): state S, expected T (stopped)"
        )],
    );
}

#[test]
fn creds_passes() {
    if !root_or_skip("creds_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_creds"), FAST);
    assert!(
        detail.starts_with("a child kept its 3 uids, 3 gids"),
        "{detail}"
    );
}

#[test]
fn creds_catches_other_uids() {
    if !root_or_skip("creds_catches_other_uids") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_creds"), FAST);
    let ready = w.wait_ready();
    let child = detail_number(&ready.detail, "child");
    let uids = detail_number(&ready.detail, "uids_addr") as u64;
    // What the child must show becomes uid 4242: the child's real uid now differs.
    poke(w.pid(), uids, &4242u32.to_ne_bytes());
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "child with its own credentials (pid {child}): Uid: expected \"4242 18944 18945 18944\", got \"18943 18944 18945 18944\""
        )],
    );
}

#[test]
fn chroot_passes() {
    if !root_or_skip("chroot_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_chroot"), FAST);
    assert!(
        detail.starts_with("a chrooted child kept its root"),
        "{detail}"
    );
}

#[test]
fn chroot_catches_a_changed_file_in_its_root() {
    if !root_or_skip("chroot_catches_a_changed_file_in_its_root") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_chroot"), FAST);
    let ready = w.wait_ready();
    let root = ready
        .detail
        .split("root=")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(format!("{root}/marker"), "changed\n").unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["/marker inside: expected \"crtest chroot root\", got \"changed\""],
    );
}

fn lsm_or_skip(test: &str) -> bool {
    if crtest_workloads::process::lsm::labels("self").is_empty() {
        eprintln!("{test}: skipped: this host's kernel runs no LSM with labels");
        return false;
    }
    true
}

#[test]
fn lsm_passes() {
    if !lsm_or_skip("lsm_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_lsm"), FAST);
    assert!(
        detail.starts_with("the workload, its child and their socket pair kept"),
        "{detail}"
    );
}

#[test]
fn lsm_without_labels_is_a_setup_failure() {
    if lsm_or_skip("lsm_without_labels_is_a_setup_failure") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_lsm"), FAST);
    let (code, verdict) = w.outcome_within(GRACE);
    // A setup failure exits 2, with the reason in the verdict.
    assert_eq!(code, 2, "log:\n{}", w.log());
    assert!(!verdict.ok);
    assert!(
        verdict
            .detail
            .contains("no LSM label in /proc/self/attr/current"),
        "{}",
        verdict.detail
    );
}

fn uprobes_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let events = "/sys/kernel/tracing/uprobe_events";
    if !std::path::Path::new(events).exists() {
        let _ = nix::mount::mount(
            Some("nodev"),
            "/sys/kernel/tracing",
            Some("tracefs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    if !std::path::Path::new(events).exists() {
        eprintln!("{test}: skipped: no {events} (CONFIG_UPROBE_EVENTS)");
        return false;
    }
    true
}

#[test]
fn uprobes_passes() {
    if !uprobes_or_skip("uprobes_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_uprobes"), FAST);
    assert!(
        detail.starts_with("a uprobe on crtest_probed hit on every one"),
        "{detail}"
    );
}

#[test]
fn uprobes_catches_a_disabled_probe() {
    if !uprobes_or_skip("uprobes_catches_a_disabled_probe") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_uprobes"), FAST);
    let ready = w.wait_ready();
    let event = ready
        .detail
        .split("event=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(format!("/sys/kernel/tracing/events/{event}/enable"), "0").unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("uprobe {event}: "), "hits after a call"],
    );
}
