//! `posixtimers`: POSIX timers (`timer_create`).
//!
//! | timer | clock | notification | setting |
//! |---|---|---|---|
//! | 1 | `CLOCK_MONOTONIC` | `SIGRTMIN+1`, value 1 | every 20 ms |
//! | 2 | `CLOCK_REALTIME` | `SIGRTMIN+2`, value 2 | once, in one hour |
//! | 3 | `CLOCK_BOOTTIME` | none (`SIGEV_NONE`) | every 100 ms |
//!
//! The handler counts timer 1's signals and adds `timer_getoverrun`; any signal that does
//! not come from its timer (`si_code` other than `SI_TIMER`, or a foreign value) is
//! recorded and fails the next tick.
//!
//! Every tick it checks each timer through its original id with `timer_gettime`: periodic
//! ones keep their interval and a remaining time in (0, interval]; the one-shot keeps
//! counting down (never more than at the last look) and stays armed. On SIGTERM it checks
//! the same, then counts timer 1's expirations (signals plus overruns) over [`WINDOW`]:
//! they must match the time that passed, and the last overrun count must be sane.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::Workload;
use crate::signals::{self, rtmin};
use crate::sys::{duration as dur, timespec as ts};
use crate::{steady, sys};
use nix::libc;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "posixtimers";
/// How long the final check counts expirations.
pub const WINDOW: Duration = Duration::from_millis(300);
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const PERIOD: Duration = Duration::from_millis(20);
const SLOW_PERIOD: Duration = Duration::from_millis(100);
const ONE_SHOT: Duration = Duration::from_secs(3600);

static TIMER1: AtomicUsize = AtomicUsize::new(0);
static FIRED: AtomicU64 = AtomicU64::new(0);
static OVERRUNS: AtomicU64 = AtomicU64::new(0);
static LAST_OVERRUN: AtomicI64 = AtomicI64::new(0);
static STRAY_SIG: AtomicI32 = AtomicI32::new(0);
static STRAY_CODE: AtomicI32 = AtomicI32::new(0);
static STRAY_VALUE: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_timer(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; timer_getoverrun is async-signal-safe.
    unsafe {
        let code = (*info).si_code;
        let value = signals::info_value(info);
        let want = if sig == rtmin() + 1 { 1 } else { 2 };
        if code != libc::SI_TIMER || value != want {
            STRAY_CODE.store(code, Ordering::SeqCst);
            STRAY_VALUE.store(value, Ordering::SeqCst);
            STRAY_SIG.store(sig, Ordering::SeqCst);
            return;
        }
        if sig == rtmin() + 1 {
            let over = libc::timer_getoverrun(TIMER1.load(Ordering::SeqCst) as libc::timer_t);
            LAST_OVERRUN.store(over as i64, Ordering::SeqCst);
            if over > 0 {
                OVERRUNS.fetch_add(over as u64, Ordering::SeqCst);
            }
            FIRED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Timer {
    label: &'static str,
    id: libc::timer_t,
    interval: Duration,
    last_left: Duration,
}

fn create(
    label: &'static str,
    clock: libc::clockid_t,
    notify: Option<(i32, i32)>,
    interval: Duration,
    first: Duration,
) -> Result<Timer, String> {
    // SAFETY: a zeroed sigevent is valid; the fields set are the signal layout.
    let mut ev: libc::sigevent = unsafe { std::mem::zeroed() };
    match notify {
        Some((sig, value)) => {
            ev.sigev_notify = libc::SIGEV_SIGNAL;
            ev.sigev_signo = sig;
            ev.sigev_value = libc::sigval {
                sival_ptr: value as usize as *mut libc::c_void,
            };
        }
        None => ev.sigev_notify = libc::SIGEV_NONE,
    }
    // SAFETY: timer_create writes the id.
    let mut id: libc::timer_t = std::ptr::null_mut();
    sys::cvt(unsafe { libc::timer_create(clock, &mut ev, &mut id) })
        .map_err(|e| format!("timer_create({label}): {e}"))?;
    let spec = libc::itimerspec {
        it_interval: ts(interval),
        it_value: ts(first),
    };
    // SAFETY: a valid id and spec.
    sys::cvt(unsafe { libc::timer_settime(id, 0, &spec, std::ptr::null_mut()) })
        .map_err(|e| format!("timer_settime({label}): {e}"))?;
    Ok(Timer {
        label,
        id,
        interval,
        last_left: first,
    })
}

fn setup() -> Result<Vec<Timer>, String> {
    for sig in [rtmin() + 1, rtmin() + 2] {
        signals::install(sig, on_timer, libc::SA_RESTART, &[])
            .map_err(|e| format!("sigaction({}): {e}", signals::name(sig)))?;
    }
    let t1 = create(
        "timer 1 (CLOCK_MONOTONIC, SIGRTMIN+1, every 20 ms)",
        libc::CLOCK_MONOTONIC,
        Some((rtmin() + 1, 1)),
        PERIOD,
        PERIOD,
    )?;
    TIMER1.store(t1.id as usize, Ordering::SeqCst);
    let t2 = create(
        "timer 2 (CLOCK_REALTIME, SIGRTMIN+2, once in 1 h)",
        libc::CLOCK_REALTIME,
        Some((rtmin() + 2, 2)),
        Duration::ZERO,
        ONE_SHOT,
    )?;
    let t3 = create(
        "timer 3 (CLOCK_BOOTTIME, SIGEV_NONE, every 100 ms)",
        libc::CLOCK_BOOTTIME,
        None,
        SLOW_PERIOD,
        SLOW_PERIOD,
    )?;
    Ok(vec![t1, t2, t3])
}

fn check(timers: &mut [Timer]) -> Result<(), String> {
    let mut p = Problems::new();
    let sig = STRAY_SIG.load(Ordering::SeqCst);
    if sig != 0 {
        p.push(format!(
            "{} arrived with si_code {} and value {}, not from its timer (expected SI_TIMER ({}) and value {})",
            signals::name(sig),
            STRAY_CODE.load(Ordering::SeqCst),
            STRAY_VALUE.load(Ordering::SeqCst),
            libc::SI_TIMER,
            if sig == rtmin() + 1 { 1 } else { 2 }
        ));
    }
    let slack = Duration::from_millis(5);
    for t in timers.iter_mut() {
        // SAFETY: timer_gettime fills the spec.
        let mut spec: libc::itimerspec = unsafe { std::mem::zeroed() };
        if let Err(e) = sys::cvt(unsafe { libc::timer_gettime(t.id, &mut spec) }) {
            p.push(format!("{} (id {:?}): timer_gettime: {e}", t.label, t.id));
            continue;
        }
        let (interval, left) = (dur(&spec.it_interval), dur(&spec.it_value));
        if interval != t.interval {
            p.push(format!(
                "{}: interval expected {} ns, got {} ns",
                t.label,
                t.interval.as_nanos(),
                interval.as_nanos()
            ));
        }
        let most = if t.interval.is_zero() {
            t.last_left + slack
        } else {
            t.interval + slack
        };
        if left.is_zero() || left > most {
            p.push(format!(
                "{}: remaining time {} ms, expected within (0, {} ms]",
                t.label,
                left.as_millis(),
                most.as_millis()
            ));
        }
        if t.interval.is_zero() {
            t.last_left = left.min(t.last_left);
        }
    }
    p.into_result()
}

fn check_rate() -> Result<(), String> {
    let (f0, o0) = (
        FIRED.load(Ordering::SeqCst),
        OVERRUNS.load(Ordering::SeqCst),
    );
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let elapsed = start.elapsed();
    let (f1, o1) = (
        FIRED.load(Ordering::SeqCst),
        OVERRUNS.load(Ordering::SeqCst),
    );
    let expirations = (f1 - f0) + (o1 - o0);
    let due = (elapsed.as_micros() / PERIOD.as_micros()) as u64;
    let (least, most) = ((due / 2).saturating_sub(2).max(1), due * 2 + 2);
    let mut p = Problems::new();
    if !(least..=most).contains(&expirations) {
        p.push(format!(
            "timer 1: {expirations} expirations ({} signals + {} overruns) in {} ms, expected {least}..={most} for a 20 ms period",
            f1 - f0,
            o1 - o0,
            elapsed.as_millis()
        ));
    }
    let last = LAST_OVERRUN.load(Ordering::SeqCst);
    if !(0..=(due as i64 * 2 + 2)).contains(&last) {
        p.push(format!(
            "timer 1: timer_getoverrun gave {last} for the last signal of a window of {due} periods"
        ));
    }
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut timers = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let ids: Vec<String> = timers
        .iter()
        .enumerate()
        .map(|(i, t)| format!("timer{}={}", i + 1, t.id as usize))
        .collect();
    let detail = format!("{} (SIGRTMIN={})", ids.join(" "), rtmin());
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check(&mut timers))?;
    check(&mut timers)?;
    check_rate()?;
    Ok(format!(
        "3 POSIX timers kept their ids, clocks, intervals and remaining times over {ticks} checks; timer 1 fired {} times (+{} overruns) at its rate",
        FIRED.load(Ordering::SeqCst),
        OVERRUNS.load(Ordering::SeqCst)
    ))
}
