//! `sigpending`: blocked signals waiting to be delivered.
//!
//! The workload blocks `SIGUSR1`, `SIGUSR2`, `SIGRTMIN+3`, `SIGRTMIN+4`, `SIGRTMIN+5`, then
//! makes signals pending:
//!
//! - for the process (shared queue): `SIGUSR1` (`kill`), and `SIGRTMIN+3` queued three
//!   times with values 101, 102, 103;
//! - for its thread (private queue): `SIGUSR2` (`tgkill`), and `SIGRTMIN+4` queued twice
//!   with values 201, 202.
//!
//! Every tick it checks `ShdPnd`, `SigPnd` and `SigBlk` in `/proc/self/status`. On SIGTERM
//! it checks them, then takes every signal with `sigtimedwait`: each must come in order,
//! with its sender, code and value (real-time signals keep every instance and their order;
//! standard ones are one instance), and nothing else may be pending. Finally a new queued
//! signal must arrive.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::signals::{self, mask_of, mask_text, rtmin};
use crate::{steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "sigpending";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

fn blocked() -> Vec<i32> {
    vec![
        libc::SIGUSR1,
        libc::SIGUSR2,
        rtmin() + 3,
        rtmin() + 4,
        rtmin() + 5,
    ]
}

/// One expected delivery: signal, accepted `si_code`s, value (for queued signals).
type Delivery = (i32, &'static [i32], Option<i32>);

/// `tgkill` reports `SI_TKILL` on most kernels, `SI_USER` on some newer ones; either is
/// right as long as the restore keeps it.
const TGKILL_CODES: &[i32] = &[libc::SI_TKILL, libc::SI_USER];

fn expected_private() -> Vec<Delivery> {
    vec![
        (libc::SIGUSR2, TGKILL_CODES, None),
        (rtmin() + 4, &[libc::SI_QUEUE], Some(201)),
        (rtmin() + 4, &[libc::SI_QUEUE], Some(202)),
    ]
}

fn expected_shared() -> Vec<Delivery> {
    vec![
        (libc::SIGUSR1, &[libc::SI_USER], None),
        (rtmin() + 3, &[libc::SI_QUEUE], Some(101)),
        (rtmin() + 3, &[libc::SI_QUEUE], Some(102)),
        (rtmin() + 3, &[libc::SI_QUEUE], Some(103)),
    ]
}

fn code_name(code: i32) -> String {
    match code {
        libc::SI_USER => "SI_USER".into(),
        libc::SI_QUEUE => "SI_QUEUE".into(),
        libc::SI_TKILL => "SI_TKILL".into(),
        libc::SI_TIMER => "SI_TIMER".into(),
        other => other.to_string(),
    }
}

fn setup() -> Result<(), String> {
    signals::block(&blocked()).map_err(|e| format!("blocking: {e}"))?;
    let me = std::process::id() as i32;
    let tid = sys::gettid();
    // SAFETY: signalling ourselves; every signal sent is blocked.
    unsafe {
        sys::cvt(libc::kill(me, libc::SIGUSR1)).map_err(|e| format!("kill: {e}"))?;
        sys::cvt_long(libc::syscall(libc::SYS_tgkill, me, tid, libc::SIGUSR2))
            .map_err(|e| format!("tgkill: {e}"))?;
    }
    for v in [101, 102, 103] {
        signals::queue_to_process(rtmin() + 3, v).map_err(|e| format!("rt_sigqueueinfo: {e}"))?;
    }
    for v in [201, 202] {
        signals::queue_to_thread(tid, rtmin() + 4, v)
            .map_err(|e| format!("rt_tgsigqueueinfo: {e}"))?;
    }
    Ok(())
}

fn check_masks() -> Result<(), String> {
    let mut p = Problems::new();
    let shared = mask_of(&[libc::SIGUSR1, rtmin() + 3]);
    let private = mask_of(&[libc::SIGUSR2, rtmin() + 4]);
    for (key, what, want) in [
        ("ShdPnd", "pending for the process (ShdPnd)", shared),
        ("SigPnd", "pending for the thread (SigPnd)", private),
        ("SigBlk", "blocked (SigBlk)", mask_of(&blocked())),
    ] {
        // SIGTERM is the harness's "verify now": in transit to the thread that takes it, it
        // shows in ShdPnd for a moment (seen once on a loaded machine), so it does not count.
        let in_transit = if key == "ShdPnd" {
            mask_of(&[libc::SIGTERM])
        } else {
            0
        };
        match signals::proc_mask(None, key).map(|m| m & !in_transit) {
            Ok(got) if got != want => p.push(format!(
                "{what}: expected {}, got {}",
                mask_text(want),
                mask_text(got)
            )),
            Ok(_) => {}
            Err(e) => p.push(e),
        }
    }
    p.into_result()
}

/// Takes one pending signal among `sigs` without waiting; `None` if none is pending.
fn take(sigs: &[i32]) -> Result<Option<(i32, i32, i32, i32)>, String> {
    let set = signals::sigset(sigs);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid set, info and timeout.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::sigtimedwait(&set, &mut info, &zero);
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EAGAIN) {
                Ok(None)
            } else {
                Err(format!("sigtimedwait: {}", errno_text(&e)))
            };
        }
        Ok(Some((
            r,
            info.si_code,
            info.si_pid(),
            signals::info_value(&info),
        )))
    }
}

fn drain(p: &mut Problems, queue: &str, want: &[Delivery]) {
    let me = std::process::id() as i32;
    for (n, &(sig, codes, value)) in want.iter().enumerate() {
        let names: Vec<String> = codes.iter().map(|&c| code_name(c)).collect();
        let what = format!(
            "{queue} signal #{} (expected {} {}{})",
            n + 1,
            signals::name(sig),
            names.join("/"),
            value.map_or(String::new(), |v| format!(" value {v}"))
        );
        match take(&[sig]) {
            Ok(Some((got, got_code, pid, got_value))) => {
                let mut wrong = Vec::new();
                if !codes.contains(&got_code) {
                    wrong.push(format!("code {}", code_name(got_code)));
                }
                if pid != me {
                    wrong.push(format!("sender pid {pid} (not {me})"));
                }
                if let Some(v) = value {
                    if got_value != v {
                        wrong.push(format!("value {got_value}"));
                    }
                }
                if got != sig {
                    wrong.push(format!("signal {}", signals::name(got)));
                }
                if !wrong.is_empty() {
                    p.push(format!("{what}: got {}", wrong.join(", ")));
                }
            }
            Ok(None) => p.push(format!("{what}: not pending")),
            Err(e) => p.push(format!("{what}: {e}")),
        }
    }
}

fn drain_all() -> Result<(), String> {
    let mut p = Problems::new();
    drain(&mut p, "thread-private", &expected_private());
    drain(&mut p, "process-wide", &expected_shared());
    let mut extra = Vec::new();
    while let Ok(Some((sig, code, _, value))) = take(&blocked()) {
        extra.push(format!(
            "{} {} value {value}",
            signals::name(sig),
            code_name(code)
        ));
        if extra.len() > 20 {
            break;
        }
    }
    if !extra.is_empty() {
        p.push(format!(
            "signals pending beyond the expected ones: {}",
            extra.join(", ")
        ));
    }
    // Still works: a new signal arrives.
    let sig = rtmin() + 5;
    match signals::queue_to_process(sig, 7) {
        Ok(()) => match take(&[sig]) {
            Ok(Some((_, _, _, 7))) => {}
            other => p.push(format!(
                "a SIGRTMIN+5 queued after the restore with value 7 came back as {other:?}"
            )),
        },
        Err(e) => p.push(format!("queueing SIGRTMIN+5: {e}")),
    }
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    setup().unwrap_or_else(|e| wl.setup_failed(&e));
    check_masks().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "blocked {}; pending for the process SIGUSR1 + SIGRTMIN+3 x3, for the thread SIGUSR2 + SIGRTMIN+4 x2 (SIGRTMIN={})",
        mask_text(mask_of(&blocked())),
        rtmin()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check_masks())?;
    check_masks()?;
    drain_all()?;
    Ok(format!(
        "7 pending signals (2 standard, 5 queued real-time) kept their queues, order, codes and values over {ticks} checks"
    ))
}
