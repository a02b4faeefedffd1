//! The `ns` workloads on the host (root only): each passes when left alone, and each
//! catches its namespace changed from outside (a process of the PID namespace gone, the
//! host name changed from inside the UTS namespace, an object added to the IPC namespace,
//! a file of the private tmpfs changed through `/proc/PID/root`).

mod common;

use common::*;
use nix::libc;
use nix::sys::signal::{kill, Signal};
use std::time::Duration;

const FAST: &[&str] = &["--tick-ms", "5"];
const GRACE: Duration = Duration::from_secs(3);

#[test]
fn pidns_passes_and_names_its_init() {
    if !root_or_skip("pidns_passes_and_names_its_init") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_pidns"), FAST);
    let ready = w.wait_ready_any();
    assert_ne!(
        ready.pid,
        w.child.id(),
        "ready must name the namespace's init"
    );
    let status = crtest_workloads::procfs::read(&format!("/proc/{}/status", ready.pid)).unwrap();
    let nspid = crtest_workloads::procfs::field(&status, "NSpid")
        .unwrap()
        .to_string();
    assert!(
        nspid.ends_with(" 1") || nspid.ends_with("\t1"),
        "NSpid {nspid}"
    );
    // The init leads its own session, from inside the namespace: outside it is the
    // session of the init's outer pid, inside the session of pid 1.
    let nssid = crtest_workloads::procfs::field(&status, "NSsid")
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert_eq!(nssid, [ready.pid.to_string(), "1".to_string()], "NSsid");
    w.wait_progress_increase();
    let (code, verdict) = w.verify();
    assert_pass(code, &verdict, &w.log());
    assert!(
        verdict
            .detail
            .starts_with("the PID namespace's init (pid 1)"),
        "{}",
        verdict.detail
    );
}

#[test]
fn pidns_catches_a_lost_process() {
    if !root_or_skip("pidns_catches_a_lost_process") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_pidns"), FAST);
    w.wait_ready_any();
    let victim = children(w.target())[0];
    kill(victim, Signal::SIGKILL).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["helper 1 of the namespace (pid 2)"],
    );
}

#[test]
fn utsns_passes() {
    if !root_or_skip("utsns_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_utsns"), FAST);
    assert!(
        detail.starts_with("the UTS namespace kept its host and domain names"),
        "{detail}"
    );
}

#[test]
fn utsns_catches_a_changed_host_name() {
    if !root_or_skip("utsns_catches_a_changed_host_name") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_utsns"), FAST);
    w.wait_ready();
    in_namespace_of(w.pid(), "uts", || {
        let name = b"changed";
        // SAFETY: a valid buffer.
        assert_eq!(
            unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) },
            0
        );
    });
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "host name (uname nodename): expected \"crtest-uts-{}\", got \"changed\"",
            w.pid()
        )],
    );
}

#[test]
fn ipcns_passes() {
    if !root_or_skip("ipcns_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_ipcns"), FAST);
    assert!(
        detail.starts_with("the IPC namespace kept its 10 limits"),
        "{detail}"
    );
}

#[test]
fn ipcns_catches_a_foreign_object() {
    if !root_or_skip("ipcns_catches_a_foreign_object") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_ipcns"), FAST);
    w.wait_ready();
    // SAFETY: plain syscall.
    let id = in_namespace_of(w.pid(), "ipc", || unsafe {
        libc::msgget(0x0bad, libc::IPC_CREAT | 0o600)
    });
    assert!(id >= 0);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "/proc/sysvipc/msg lists [key 0xbad id {id}], expected []"
        )],
    );
}

#[test]
fn mntns_passes() {
    if !root_or_skip("mntns_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_mntns"), FAST);
    assert!(
        detail.starts_with("the private tmpfs and its read-only bind"),
        "{detail}"
    );
}

#[test]
fn mntns_catches_a_changed_file_in_the_private_tmpfs() {
    use std::os::unix::fs::FileExt;
    if !root_or_skip("mntns_catches_a_changed_file_in_the_private_tmpfs") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_mntns"), FAST);
    w.wait_ready();
    // The tmpfs is only visible inside the workload's mount namespace.
    assert!(std::fs::read_dir(w.path("mnt")).unwrap().next().is_none());
    let inside = format!("/proc/{}/root{}", w.pid(), w.path("mnt/data").display());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&inside)
        .unwrap();
    f.write_all_at(b"XY", 20).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["mnt/data (in the private tmpfs) differs at offset 20"],
    );
}

#[test]
fn timens_passes_in_a_time_namespace() {
    if !root_or_skip("timens_passes_in_a_time_namespace") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_timens"), FAST);
    let ready = w.wait_ready_any();
    assert_ne!(
        ready.pid,
        w.child.id(),
        "ready must name the namespace's member"
    );
    let offsets =
        crtest_workloads::procfs::read(&format!("/proc/{}/timens_offsets", ready.pid)).unwrap();
    assert_eq!(
        crtest_workloads::ns::timens::parse_offsets(&offsets),
        Some((86_400, 172_800)),
        "{offsets}"
    );
    w.wait_progress_increase();
    let (code, verdict) = w.verify();
    assert_pass(code, &verdict, &w.log());
    assert!(
        verdict
            .detail
            .starts_with("the time namespace's clocks went on"),
        "{}",
        verdict.detail
    );
}

#[test]
fn timens_catches_a_changed_clock_gap() {
    if !root_or_skip("timens_catches_a_changed_clock_gap") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_timens"), FAST);
    let ready = w.wait_ready_any();
    let member = detail_number(&ready.detail, "member") as i32;
    let gap = detail_number(&ready.detail, "gap_addr") as u64;
    // What a restore that lost the boottime offset would show: the two clocks a day closer.
    poke(
        nix::unistd::Pid::from_raw(member),
        gap,
        &(-86_000.0f64).to_le_bytes(),
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["CLOCK_BOOTTIME - CLOCK_MONOTONIC: expected -86000.000 s"],
    );
}
