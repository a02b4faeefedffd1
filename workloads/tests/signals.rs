//! The `signals` workloads on the host: each passes when left alone (the sleepers also
//! across a freeze, as a checkpoint makes one), and the ones whose state a signal from
//! outside can change catch it (an extra pending signal, a one-shot handler used up, a
//! timer signal that no timer sent).

mod common;

use common::*;
use nix::libc;
use nix::sys::signal::Signal;
use std::time::Duration;

const FAST: &[&str] = &["--tick-ms", "5"];
const GRACE: Duration = Duration::from_secs(3);

#[test]
fn sigpending_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_sigpending"), FAST);
    assert!(
        detail.starts_with("7 pending signals (2 standard, 5 queued real-time)"),
        "{detail}"
    );
}

#[test]
fn sigpending_catches_an_extra_pending_signal() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_sigpending"), FAST);
    w.wait_ready();
    // SAFETY: plain kill.
    assert_eq!(
        unsafe { libc::kill(w.pid().as_raw(), libc::SIGRTMIN() + 5) },
        0
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["pending for the process (ShdPnd): expected {SIGUSR1, SIGRTMIN+3}, got {SIGUSR1, SIGRTMIN+3, SIGRTMIN+5}"],
    );
}

#[test]
fn sighandlers_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_sighandlers"), FAST);
    assert!(
        detail.contains("the one-shot SIGURG reset after its one delivery"),
        "{detail}"
    );
}

#[test]
fn sighandlers_catches_a_used_up_one_shot_handler() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_sighandlers"), FAST);
    w.wait_ready();
    w.signal(Signal::SIGURG);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            "SIGURG: expected handler 0x",
            "flags SA_SIGINFO|SA_RESTORER|SA_RESETHAND mask {SIGQUIT}",
            "got SIG_DFL",
            "SIGURG: its one-shot handler already ran",
        ],
    );
}

#[test]
fn itimers_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_itimers"), FAST);
    assert!(
        detail.starts_with("3 interval timers kept their intervals"),
        "{detail}"
    );
}

#[test]
fn posixtimers_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_posixtimers"), FAST);
    assert!(
        detail.starts_with("3 POSIX timers kept their ids"),
        "{detail}"
    );
}

#[test]
fn posixtimers_catches_a_signal_no_timer_sent() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_posixtimers"), FAST);
    w.wait_ready();
    let value = libc::sigval {
        sival_ptr: 99usize as *mut libc::c_void,
    };
    // SAFETY: plain sigqueue.
    assert_eq!(
        unsafe { libc::sigqueue(w.pid().as_raw(), libc::SIGRTMIN() + 1, value) },
        0
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["SIGRTMIN+1 arrived with si_code -1 and value 99, not from its timer (expected SI_TIMER (-2) and value 1)"],
    );
}

const SLEEPERS: &[&str] = &["--tick-ms", "5", "--sleep-ms", "150", "--slack-ms", "300"];

#[test]
fn sleepers_pass() {
    let detail = passes(env!("CARGO_BIN_EXE_sleepers"), SLEEPERS);
    assert!(detail.starts_with("every sleep ended on time"), "{detail}");
}

#[test]
fn sleepers_pass_across_a_freeze() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_sleepers"), SLEEPERS);
    w.wait_ready();
    w.signal(Signal::SIGSTOP);
    std::thread::sleep(Duration::from_millis(500));
    w.signal(Signal::SIGCONT);
    std::thread::sleep(Duration::from_millis(50));
    let (code, verdict) = w.verify();
    assert_pass(code, &verdict, &w.log());
    // Every kind of sleep has one that spanned the freeze; on a loaded machine a
    // scheduling stall may count as a freeze for another sleep too.
    let spanning: Vec<u64> = verdict
        .detail
        .split(" across a freeze")
        .filter_map(|part| part.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        spanning.len() == 3 && spanning.iter().all(|n| *n >= 1),
        "{}",
        verdict.detail
    );
}
