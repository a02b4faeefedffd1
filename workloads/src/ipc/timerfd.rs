//! `timerfd`: timers read through descriptors.
//!
//! | timer | clock | setting |
//! |---|---|---|
//! | `periodic` | `CLOCK_MONOTONIC` | every 20 ms |
//! | `absolute` | `CLOCK_REALTIME` | once, at now + 1 h (`TFD_TIMER_ABSTIME`) |
//! | `boottime` | `CLOCK_BOOTTIME` | once, in 10 min |
//!
//! Every tick it reads `periodic`'s expirations and checks each timer with
//! `timerfd_gettime` and its fdinfo (clock, settime flags): the periodic one keeps its
//! interval and a remaining time in (0, interval]; the one-shots stay armed and keep
//! counting down. On SIGTERM it checks the same, then counts `periodic`'s expirations
//! over [`WINDOW`]: they must match the time that passed.
//!
//! A periodic timer read at the very instant it expires (its expiry passed, the kernel's
//! timer interrupt not yet handled: slow on an emulated CPU) shows a remaining time of 0.
//! So a 0 is not judged at once: the timer is sampled again for up to [`SETTLE`], and it
//! passes as soon as it shows a remaining time again (a running periodic timer re-arms
//! itself). One that stays at 0 has stopped: disarmed with its interval kept, which is
//! what `timerfd_settime` makes of an `it_value` of 0 (criu restores a periodic timer that
//! had expired, unread, when it was dumped that way).

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::files::fd_err;
use crate::protocol::Workload;
use crate::sys::{duration as dur, timespec as ts};
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "timerfd";
/// How long the final check counts expirations.
pub const WINDOW: Duration = Duration::from_millis(300);
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// How long a periodic timer showing a remaining time of 0 may take to show one again.
pub const SETTLE: Duration = Duration::from_millis(250);

const PERIOD: Duration = Duration::from_millis(20);

struct Timer {
    label: &'static str,
    fd: OwnedFd,
    interval: Duration,
    last_left: Duration,
    clockid: String,
    flags: String,
}

fn create(
    label: &'static str,
    clock: libc::clockid_t,
    flags: libc::c_int,
    interval: Duration,
    value: Duration,
) -> Result<Timer, String> {
    // SAFETY: plain syscalls with valid structs.
    let fd =
        sys::owned(unsafe { libc::timerfd_create(clock, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) })
            .map_err(|e| format!("timerfd_create({label}): {e}"))?;
    let value = if flags & libc::TFD_TIMER_ABSTIME != 0 {
        let mut now = ts(Duration::ZERO);
        unsafe { libc::clock_gettime(clock, &mut now) };
        dur(&now) + value
    } else {
        value
    };
    let spec = libc::itimerspec {
        it_interval: ts(interval),
        it_value: ts(value),
    };
    sys::cvt(unsafe { libc::timerfd_settime(fd.as_raw_fd(), flags, &spec, std::ptr::null_mut()) })
        .map_err(|e| format!("timerfd_settime({label}): {e}"))?;
    let info = procfs::fdinfo(fd.as_raw_fd())?;
    let field = |k| procfs::field(&info, k).unwrap_or("?").to_string();
    Ok(Timer {
        label,
        interval,
        last_left: Duration::MAX,
        clockid: field("clockid"),
        flags: field("settime flags"),
        fd,
    })
}

fn setup() -> Result<Vec<Timer>, String> {
    Ok(vec![
        create("timerfd periodic", libc::CLOCK_MONOTONIC, 0, PERIOD, PERIOD)?,
        create(
            "timerfd absolute",
            libc::CLOCK_REALTIME,
            libc::TFD_TIMER_ABSTIME,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?,
        create(
            "timerfd boottime",
            libc::CLOCK_BOOTTIME,
            0,
            Duration::ZERO,
            Duration::from_secs(600),
        )?,
    ])
}

/// Expirations waiting on `fd` (0 when none).
fn expirations(fd: &OwnedFd) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    match sys::read(fd.as_raw_fd(), &mut b) {
        Ok(_) => Ok(u64::from_ne_bytes(b)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// `timerfd_gettime`: (interval, remaining time).
fn gettime(fd: &OwnedFd) -> std::io::Result<(Duration, Duration)> {
    // SAFETY: timerfd_gettime fills the struct.
    let mut spec: libc::itimerspec = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::timerfd_gettime(fd.as_raw_fd(), &mut spec) })?;
    Ok((dur(&spec.it_interval), dur(&spec.it_value)))
}

/// Samples a periodic timer that showed a remaining time of 0 until it shows one again
/// (reading its expirations as they come), for at most [`SETTLE`]. Returns the last
/// remaining time (0 when it never came back) and the expirations read.
fn settle(fd: &OwnedFd) -> Result<(Duration, u64), String> {
    let start = Instant::now();
    let mut fired = 0;
    loop {
        std::thread::sleep(Duration::from_millis(5));
        fired += expirations(fd).map_err(|e| format!("read: {e}"))?;
        let (_, left) = gettime(fd).map_err(|e| format!("timerfd_gettime: {e}"))?;
        if !left.is_zero() || start.elapsed() >= SETTLE {
            return Ok((left, fired));
        }
    }
}

fn check(timers: &mut [Timer]) -> Result<u64, String> {
    let mut p = Problems::new();
    let mut fired = match expirations(&timers[0].fd) {
        Ok(n) => n,
        Err(e) => {
            p.push(fd_err(
                timers[0].label,
                timers[0].fd.as_raw_fd(),
                "read",
                &e,
            ));
            0
        }
    };
    let slack = Duration::from_millis(5);
    for t in timers.iter_mut() {
        let who = format!("{} (fd {})", t.label, t.fd.as_raw_fd());
        let (interval, mut left) = match gettime(&t.fd) {
            Ok(v) => v,
            Err(e) => {
                p.push(format!("{who}: timerfd_gettime: {e}"));
                continue;
            }
        };
        if left.is_zero() && !interval.is_zero() {
            // Maybe read at the instant of its expiry: look again.
            match settle(&t.fd) {
                Ok((again, more)) => {
                    fired += more;
                    if again.is_zero() {
                        p.push(format!(
                            "{who}: stopped: remaining time 0 ms with an interval of {} ms, and no remaining time shown in {} ms of samples (disarmed with its interval kept)",
                            interval.as_millis(),
                            SETTLE.as_millis()
                        ));
                        continue;
                    }
                    left = again;
                }
                Err(e) => {
                    p.push(format!("{who}: {e}"));
                    continue;
                }
            }
        }
        if left.is_zero() && interval.is_zero() {
            p.push(format!(
                "{who}: disarmed (it_value 0, it_interval 0), expected {}",
                if t.interval.is_zero() {
                    "a pending one-shot".to_string()
                } else {
                    format!("an interval of {} ms", t.interval.as_millis())
                }
            ));
            continue;
        }
        if interval != t.interval {
            p.push(format!(
                "{who}: interval expected {} ns, got {} ns",
                t.interval.as_nanos(),
                interval.as_nanos()
            ));
        }
        let most = if t.interval.is_zero() {
            t.last_left.saturating_add(slack)
        } else {
            t.interval + slack
        };
        if left.is_zero() || left > most {
            p.push(format!(
                "{who}: remaining time {} ms, expected within (0, {} ms]",
                left.as_millis(),
                most.as_millis()
            ));
        }
        if t.interval.is_zero() {
            t.last_left = t.last_left.min(left);
        }
        match procfs::fdinfo(t.fd.as_raw_fd()) {
            Ok(info) => {
                p.expect_eq(
                    &format!("{who}: fdinfo clockid"),
                    t.clockid.as_str(),
                    procfs::field(&info, "clockid").unwrap_or("?"),
                );
                p.expect_eq(
                    &format!("{who}: fdinfo settime flags"),
                    t.flags.as_str(),
                    procfs::field(&info, "settime flags").unwrap_or("?"),
                );
            }
            Err(e) => p.push(e),
        }
    }
    p.into_result().map(|_| fired)
}

fn check_rate(timers: &mut [Timer]) -> Result<(), String> {
    let _ = expirations(&timers[0].fd);
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let fired = expirations(&timers[0].fd)
        .map_err(|e| fd_err(timers[0].label, timers[0].fd.as_raw_fd(), "read", &e))?;
    let elapsed = start.elapsed();
    let due = (elapsed.as_micros() / PERIOD.as_micros()) as u64;
    let (least, most) = ((due / 2).saturating_sub(2).max(1), due * 2 + 2);
    if !(least..=most).contains(&fired) {
        return Err(format!(
            "{}: {fired} expirations in {} ms, expected {least}..={most} for a 20 ms period",
            timers[0].label,
            elapsed.as_millis()
        ));
    }
    check(timers).map(|_| ())
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut timers = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "periodic={} (20 ms) absolute={} (CLOCK_REALTIME, +1 h) boottime={} (+10 min)",
        timers[0].fd.as_raw_fd(),
        timers[1].fd.as_raw_fd(),
        timers[2].fd.as_raw_fd()
    );
    let mut total = 0;
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| {
        total += check(&mut timers)?;
        Ok(())
    })?;
    total += check(&mut timers)?;
    check_rate(&mut timers)?;
    Ok(format!(
        "3 timerfds kept clocks, flags, intervals and remaining times over {ticks} checks; the periodic one expired {total} times and still at its rate"
    ))
}
