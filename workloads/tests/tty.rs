//! The `tty` workload on the host: it passes when left alone, and catches its terminal's
//! settings changed and its data in flight taken, as a broken restore would leave them.

mod common;

use common::*;
use nix::libc;
use std::os::fd::AsRawFd;
use std::time::Duration;

const FAST: &[&str] = &["--tick-ms", "5"];
const GRACE: Duration = Duration::from_secs(3);

#[test]
fn pty_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_pty"), FAST);
    assert!(detail.starts_with("the pty pair /dev/pts/"), "{detail}");
}

#[test]
fn pty_catches_changed_settings() {
    if !root_or_skip("pty_catches_changed_settings") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_pty"), FAST);
    let ready = w.wait_ready();
    let fd = detail_number(&ready.detail, "slave") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: valid termios structs.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(stolen.as_raw_fd(), &mut t), 0);
        t.c_lflag |= libc::ECHO;
        assert_eq!(libc::tcsetattr(stolen.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "(fd {fd}): termios c_lflag: expected 0x00000a00, got 0x00000a08 (added ECHO)"
        )],
    );
}

#[test]
fn pty_catches_data_taken_out() {
    if !root_or_skip("pty_catches_data_taken_out") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_pty"), FAST);
    let ready = w.wait_ready();
    let fd = detail_number(&ready.detail, "master") as i32;
    let stolen = steal_fd(w.pid(), fd);
    let mut buf = [0u8; 50];
    // SAFETY: a valid buffer.
    assert_eq!(
        unsafe { libc::read(stolen.as_raw_fd(), buf.as_mut_ptr().cast(), 50) },
        50
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "(fd {fd}): 250 bytes waiting to be read, expected 300"
        )],
    );
}
