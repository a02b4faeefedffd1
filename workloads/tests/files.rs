//! The `files` workloads on the host: each passes when left alone, and each catches its
//! state changed from outside the way a broken restore would change it (a descriptor's
//! offset, flags, lock or seal, a file's content, a process that went away, an AIO
//! completion taken from its ring).

mod common;

use common::*;
use nix::libc;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Duration;

const FAST: &[&str] = &["--tick-ms", "5"];
const GRACE: Duration = Duration::from_secs(3);

fn started(bin: &str) -> (Running, String) {
    let mut w = Running::start(bin, FAST);
    let ready = w.wait_ready();
    (w, ready.detail)
}

#[test]
fn openflags_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_openflags"), FAST);
    assert!(detail.starts_with("6 descriptors kept flags"), "{detail}");
}

#[test]
fn openflags_catches_a_moved_offset() {
    if !root_or_skip("openflags_catches_a_moved_offset") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_openflags"));
    let fd = detail_number(&detail, "rw.dat") as i32;
    let dup = detail_number(&detail, "rw.dat-dup");
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: plain syscall on our copy of the descriptor.
    unsafe { libc::lseek(stolen.as_raw_fd(), 0, libc::SEEK_SET) };
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            &format!("rw.dat fd {fd} (O_RDWR|O_NONBLOCK): offset: expected 2048, got 0"),
            &format!("rw.dat dup fd {dup} (O_RDWR|O_NONBLOCK): offset: expected 2048, got 0"),
        ],
    );
    assert!(
        !verdict.detail.contains("rw.dat again"),
        "{}",
        verdict.detail
    );
}

#[test]
fn appendlog_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_appendlog"), FAST);
    assert!(
        detail.contains("a write at offset 0 still appended"),
        "{detail}"
    );
}

#[test]
fn appendlog_catches_a_lost_o_append() {
    if !root_or_skip("appendlog_catches_a_lost_o_append") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_appendlog"));
    let fd = detail_number(&detail, "log") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: plain syscall on our copy of the descriptor.
    unsafe { libc::fcntl(stolen.as_raw_fd(), libc::F_SETFL, 0) };
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "append.log fd {fd} (O_WRONLY|O_APPEND): status flags expected O_WRONLY|O_APPEND, got O_WRONLY"
        )],
    );
}

const BURSTY_FAST: &[&str] = &["--pause-ms", "5", "--burst", "3"];

#[test]
fn bursty_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_bursty"), BURSTY_FAST);
    assert!(
        detail.contains("all on disk and the fd at the end"),
        "{detail}"
    );
    assert!(detail.contains("(0 lost at a checkpoint)"), "{detail}");
}

#[test]
fn bursty_catches_a_moved_offset() {
    if !root_or_skip("bursty_catches_a_moved_offset") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_bursty"), &["--pause-ms", "50"]);
    let detail = w.wait_ready().detail;
    let fd = detail_number(&detail, "log") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: plain syscall on our copy of the descriptor.
    unsafe { libc::lseek(stolen.as_raw_fd(), 0, libc::SEEK_END) };
    // SAFETY: as above; the workload's next record then lands past the end.
    unsafe { libc::lseek(stolen.as_raw_fd(), 8, libc::SEEK_CUR) };
    w.wait_progress_increase();
    let (code, verdict) = w.verify();
    assert_fail(code, &verdict, &w.log(), &["records.log"]);
    assert!(
        verdict.detail.contains("size of records.log"),
        "{}",
        verdict.detail
    );
}

#[test]
fn unlinked_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_unlinked"), FAST);
    assert!(detail.contains("the ghost still takes writes"), "{detail}");
}

#[test]
fn unlinked_catches_changed_content_of_the_ghost() {
    if !root_or_skip("unlinked_catches_changed_content_of_the_ghost") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_unlinked"));
    let fd = detail_number(&detail, "ghost.dat") as i32;
    let stolen = std::fs::File::from(steal_fd(w.pid(), fd));
    let mut byte = [0u8; 1];
    stolen.read_exact_at(&mut byte, 10).unwrap();
    stolen.write_all_at(&[!byte[0]], 10).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "content of ghost.dat (unlinked) fd {fd} (O_RDWR) differs at offset 10"
        )],
    );
}

#[test]
fn sharedfds_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_sharedfds"), FAST);
    assert!(
        detail.starts_with("one description of shared.dat shared by two processes"),
        "{detail}"
    );
}

#[test]
fn sharedfds_catches_a_lost_helper() {
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_sharedfds"));
    let helper = nix::unistd::Pid::from_raw(detail_number(&detail, "helper") as i32);
    nix::sys::signal::kill(helper, nix::sys::signal::Signal::SIGKILL).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("helper sharing shared.dat (pid {helper})")],
    );
}

#[test]
fn flocks_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_flocks"), FAST);
    assert!(
        detail.starts_with("flock locks held and enforced"),
        "{detail}"
    );
}

#[test]
fn flocks_catches_a_released_lock() {
    if !root_or_skip("flocks_catches_a_released_lock") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_flocks"));
    let fd = detail_number(&detail, "ex") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: plain syscall; LOCK_UN through the shared description drops the lock.
    assert_eq!(unsafe { libc::flock(stolen.as_raw_fd(), libc::LOCK_UN) }, 0);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            "/proc/locks should hold 1 FLOCK WRITE lock(s) of pid",
            "it holds []",
            "flock-ex.dat: a fresh open got LOCK_SH|LOCK_NB (the workload holds LOCK_EX)",
        ],
    );
}

#[test]
fn posixlocks_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_posixlocks"), FAST);
    assert!(detail.starts_with("3 POSIX and 2 OFD locks"), "{detail}");
}

#[test]
fn posixlocks_catches_a_dropped_ofd_lock() {
    if !root_or_skip("posixlocks_catches_a_dropped_ofd_lock") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_posixlocks"));
    let fd = detail_number(&detail, "ofd") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: zeroed flock is valid; plain fcntl.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_UNLCK as i16;
    fl.l_len = 10;
    assert_eq!(
        unsafe { libc::fcntl(stolen.as_raw_fd(), libc::F_OFD_SETLK, &fl) },
        0
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["ofd.dat: a probe for F_RDLCK 0..10 found no conflict, expected a conflicting F_WRLCK 0..10"],
    );
}

#[test]
fn mmapfile_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_mmapfile"), FAST);
    assert!(
        detail.contains("shared writes still reach the file both ways"),
        "{detail}"
    );
}

#[test]
fn mmapfile_catches_a_changed_shared_file() {
    let (mut w, _) = started(env!("CARGO_BIN_EXE_mmapfile"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(w.path("shared.dat"))
        .unwrap();
    file.write_all_at(b"XXXX", 5000).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            "shared.dat mapping at 0x",
            "(rw-s) differs at offset 5000",
            "file shared.dat differs at offset 5000",
        ],
    );
}

#[test]
fn memfd_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_memfd"), FAST);
    assert!(detail.contains("the seals still refuse"), "{detail}");
}

#[test]
fn memfd_catches_an_added_seal() {
    if !root_or_skip("memfd_catches_an_added_seal") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_memfd"));
    let fd = detail_number(&detail, "crtest-grow") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: plain fcntl.
    let r = unsafe {
        libc::fcntl(
            stolen.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_FUTURE_WRITE,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["seals expected F_SEAL_SHRINK|F_SEAL_GROW, got F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_FUTURE_WRITE"],
    );
}

#[test]
fn aio_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_aio"), FAST);
    assert!(
        detail.starts_with("the AIO ring kept its waiting completion"),
        "{detail}"
    );
}

#[test]
fn aio_catches_a_completion_taken() {
    if !root_or_skip("aio_catches_a_completion_taken") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_aio"), FAST);
    let ready = w.wait_ready();
    let ring = detail_number(&ready.detail, "ring") as u64;
    // The ring's head (third u32 of its header) moved past the waiting completion, as if it
    // had been reaped.
    poke(w.pid(), ring + 8, &1u32.to_le_bytes());
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["aio ring: head: expected 0, got 1"],
    );
}

fn rtc_or_skip(test: &str) -> bool {
    if !std::path::Path::new(crtest_workloads::files::rtc::DEVICE).exists() {
        eprintln!(
            "{test}: skipped: no {} on this host",
            crtest_workloads::files::rtc::DEVICE
        );
        return false;
    }
    root_or_skip(test)
}

#[test]
fn rtc_passes() {
    if !rtc_or_skip("rtc_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_rtc"), FAST);
    assert!(
        detail.starts_with("/dev/rtc0 stayed open read-only"),
        "{detail}"
    );
}

#[test]
fn rtc_catches_a_changed_alarm() {
    if !rtc_or_skip("rtc_catches_a_changed_alarm") {
        return;
    }
    let (mut w, _) = started(env!("CARGO_BIN_EXE_rtc"));
    // Another opener of the device sets the alarm elsewhere.
    let f = std::fs::File::open(crtest_workloads::files::rtc::DEVICE).unwrap();
    let a: [libc::c_int; 9] = [1, 2, 3, 0, 0, 0, 0, 0, 0];
    // SAFETY: RTC_ALM_SET reads one rtc_time.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), 0x4024_7007, a.as_ptr()) };
    assert_eq!(r, 0, "RTC_ALM_SET: {}", std::io::Error::last_os_error());
    let (code, verdict) = w.verify();
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["alarm: expected", "got 03:02:01"],
    );
}

#[test]
fn fanotify_passes() {
    if !root_or_skip("fanotify_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_fanotify"), FAST);
    assert!(
        detail.starts_with("a fanotify group kept its inode and mount marks"),
        "{detail}"
    );
}

#[test]
fn fanotify_catches_a_removed_mark() {
    if !root_or_skip("fanotify_catches_a_removed_mark") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_fanotify"));
    let fd = detail_number(&detail, "fanotify") as i32;
    let dir = detail.split("dir=").nth(1).unwrap().trim().to_string();
    let copy = steal_fd(w.pid(), fd);
    let c = std::ffi::CString::new(dir).unwrap();
    // SAFETY: a valid path; the mark belongs to the group, whoever holds the descriptor.
    let r = unsafe {
        libc::fanotify_mark(
            copy.as_raw_fd(),
            libc::FAN_MARK_REMOVE | libc::FAN_MARK_MOUNT,
            crtest_workloads::files::fanotify::MOUNT_MASK,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("fanotify group (fd {fd}): marks: expected")],
    );
}

#[test]
fn leases_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_leases"), FAST);
    assert!(
        detail.starts_with("a read and a write lease held"),
        "{detail}"
    );
}

#[test]
fn leases_catches_a_broken_lease() {
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_leases"));
    let fd = detail_number(&detail, "read") as i32;
    // Opening the read-leased file for writing starts a lease break.
    let path = std::fs::read_link(format!("/proc/{}/fd/{fd}", w.pid())).unwrap();
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path);
    assert!(
        opened.is_err(),
        "the open for writing should wait for the lease to break"
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "read-leased (fd {fd}): F_GETLEASE: expected \"F_RDLCK\""
        )],
    );
}

#[test]
fn ghostholes_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_ghostholes"), FAST);
    assert!(
        detail.starts_with("a 64 MiB unlinked file kept its three data blocks"),
        "{detail}"
    );
}

#[test]
fn ghostholes_catches_a_filled_hole() {
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_ghostholes"));
    let fd = detail_number(&detail, "ghost") as i32;
    let copy = std::fs::File::from(steal_fd(w.pid(), fd));
    copy.write_all_at(b"not a hole", 8 << 20).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["unlinked file: the hole at 8388608 holds data"],
    );
}
