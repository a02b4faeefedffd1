//! `itimers`: the three interval timers of `setitimer(2)`.
//!
//! The workload arms `ITIMER_REAL` (every 50 ms, `SIGALRM`), `ITIMER_VIRTUAL` (every 20 ms
//! of user CPU time, `SIGVTALRM`) and `ITIMER_PROF` (every 30 ms of CPU time, `SIGPROF`),
//! counts the signals, and burns a little CPU every tick so the CPU-time timers move.
//!
//! Every tick it checks with `getitimer` that each timer keeps its interval exactly and has
//! a remaining time in (0, interval + 10 ms]. On SIGTERM it checks the same, then burns CPU for
//! [`WINDOW`] and requires each timer to fire at least once and not more often than its
//! interval allows (a timer restored with a wrong interval fires too often or never).

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::Workload;
use crate::signals;
use crate::{steady, sys};
use nix::libc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "itimers";
/// How long the final check burns CPU and counts signals.
pub const WINDOW: Duration = Duration::from_millis(400);
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

static COUNTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

extern "C" fn on_timer(sig: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let i = match sig {
        libc::SIGALRM => 0,
        libc::SIGVTALRM => 1,
        _ => 2,
    };
    COUNTS[i].fetch_add(1, Ordering::SeqCst);
}

/// (which, name, signal, interval)
const TIMERS: [(libc::c_int, &str, libc::c_int, Duration); 3] = [
    (
        libc::ITIMER_REAL,
        "ITIMER_REAL",
        libc::SIGALRM,
        Duration::from_millis(50),
    ),
    (
        libc::ITIMER_VIRTUAL,
        "ITIMER_VIRTUAL",
        libc::SIGVTALRM,
        Duration::from_millis(20),
    ),
    (
        libc::ITIMER_PROF,
        "ITIMER_PROF",
        libc::SIGPROF,
        Duration::from_millis(30),
    ),
];

fn timeval(d: Duration) -> libc::timeval {
    libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    }
}

fn duration(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

fn setup() -> Result<(), String> {
    for (which, name, sig, interval) in TIMERS {
        signals::install(sig, on_timer, libc::SA_RESTART, &[])
            .map_err(|e| format!("sigaction({}): {e}", signals::name(sig)))?;
        let v = libc::itimerval {
            it_interval: timeval(interval),
            it_value: timeval(interval),
        };
        // SAFETY: valid itimerval.
        sys::cvt(unsafe { libc::setitimer(which, &v, std::ptr::null_mut()) })
            .map_err(|e| format!("setitimer({name}): {e}"))?;
    }
    Ok(())
}

fn check_armed() -> Result<(), String> {
    let mut p = Problems::new();
    for (which, name, _, interval) in TIMERS {
        // SAFETY: getitimer fills the struct.
        let mut v: libc::itimerval = unsafe { std::mem::zeroed() };
        if let Err(e) = sys::cvt(unsafe { libc::getitimer(which, &mut v) }) {
            p.push(format!("getitimer({name}): {e}"));
            continue;
        }
        let (int, left) = (duration(v.it_interval), duration(v.it_value));
        if int != interval {
            p.push(format!(
                "{name}: interval expected {} us, got {} us",
                interval.as_micros(),
                int.as_micros()
            ));
        }
        // CPU-time timers are sampled with the scheduler tick: allow it some slack.
        let most = interval + Duration::from_millis(10);
        if left.is_zero() || left > most {
            p.push(format!(
                "{name}: remaining time {} us, expected within (0, {}] us (disarmed or wrong)",
                left.as_micros(),
                most.as_micros()
            ));
        }
    }
    p.into_result()
}

fn burn(d: Duration) {
    let start = Instant::now();
    let mut x = 1u64;
    while start.elapsed() < d {
        for _ in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
    }
}

fn counts() -> [u64; 3] {
    [0, 1, 2].map(|i| COUNTS[i].load(Ordering::SeqCst))
}

fn check_firing() -> Result<(), String> {
    let before = counts();
    let start = Instant::now();
    burn(WINDOW);
    let elapsed = start.elapsed();
    let after = counts();
    let mut p = Problems::new();
    for (i, (_, name, sig, interval)) in TIMERS.into_iter().enumerate() {
        let fired = after[i] - before[i];
        let most = (elapsed.as_micros() / interval.as_micros()) as u64 * 2 + 3;
        if fired == 0 || fired > most {
            p.push(format!(
                "{name}: {} fired {fired} times while {} ms passed; expected 1..={most} for an interval of {} ms",
                signals::name(sig),
                elapsed.as_millis(),
                interval.as_millis()
            ));
        }
    }
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = "ITIMER_REAL 50 ms, ITIMER_VIRTUAL 20 ms, ITIMER_PROF 30 ms, all periodic";
    let ticks = steady::ready_then_tick(wl, args, detail, |_| {
        burn(Duration::from_millis(2));
        check_armed()
    })?;
    check_armed()?;
    check_firing()?;
    let c = counts();
    Ok(format!(
        "3 interval timers kept their intervals and stayed armed over {ticks} checks, and kept firing (SIGALRM {}, SIGVTALRM {}, SIGPROF {})",
        c[0], c[1], c[2]
    ))
}
