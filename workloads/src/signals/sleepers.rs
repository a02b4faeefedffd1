//! `sleepers`: sleeps that a checkpoint interrupts must end at the right time.
//!
//! Three threads sleep `--sleep-ms` at a time, over and over, each its own way:
//!
//! - `abs`: `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` until a deadline;
//! - `rel`: `clock_nanosleep(CLOCK_MONOTONIC)` for a duration, resumed with the remaining
//!   time on `EINTR`;
//! - `nano`: `nanosleep` for a duration, resumed with the remaining time on `EINTR`.
//!
//! A checkpoint interrupts the sleeps. After a restore, an absolute sleep is restarted
//! as it was; a relative one comes back with `EINTR` and the time that was left, which the
//! thread sleeps (criu cannot carry the kernel's restart block). Either way a sleep must
//! never end before its time, and not much after: the main thread watches for the time the
//! process was frozen (a tick that took far longer than asked), and a sleep may end late by
//! at most the frozen time it spanned plus `--slack-ms`. A relative sleep restarted from
//! zero, or a sleep that returned early, is caught.
//!
//! Every tick checks the sleeps finished so far. On SIGTERM the threads finish the sleep
//! they are in (which is the one the checkpoint interrupted) and every sleep is checked.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::Workload;
use crate::sys::{duration as dur, timespec as ts};
use crate::{signals, steady};
use nix::libc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "sleepers";
/// A tick that takes this much longer than asked counts as frozen time.
pub const STALL: Duration = Duration::from_millis(100);
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    steady::TICK_MS,
    Opt {
        name: "sleep-ms",
        metavar: "MS",
        default: 2000,
        min: 10,
        max: 600_000,
        help: "length of each sleep",
    },
    Opt {
        name: "slack-ms",
        metavar: "MS",
        default: 1000,
        min: 1,
        max: 600_000,
        help: "how late a sleep may end beyond the frozen time it spanned",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Abs,
    Rel,
    Nano,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Abs => "abs (clock_nanosleep TIMER_ABSTIME)",
            Kind::Rel => "rel (clock_nanosleep relative)",
            Kind::Nano => "nano (nanosleep)",
        }
    }
}

/// One finished sleep.
#[derive(Debug, Clone, Copy)]
struct Cycle {
    start: Instant,
    target: Instant,
    end: Instant,
    eintr: u32,
}

fn monotonic_now() -> libc::timespec {
    let mut t = ts(Duration::ZERO);
    // SAFETY: clock_gettime fills the struct.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t
}

/// Sleeps `d` the way `kind` does; returns how many times the call came back with `EINTR`.
fn sleep_once(kind: Kind, d: Duration) -> Result<u32, String> {
    let mut eintr = 0;
    match kind {
        Kind::Abs => {
            let deadline = dur(&monotonic_now()) + d;
            let t = ts(deadline);
            loop {
                // SAFETY: valid timespec; returns the error number.
                let r = unsafe {
                    libc::clock_nanosleep(
                        libc::CLOCK_MONOTONIC,
                        libc::TIMER_ABSTIME,
                        &t,
                        std::ptr::null_mut(),
                    )
                };
                match r {
                    0 => return Ok(eintr),
                    libc::EINTR => eintr += 1,
                    e => return Err(format!("clock_nanosleep(TIMER_ABSTIME): errno {e}")),
                }
            }
        }
        Kind::Rel => {
            let mut req = ts(d);
            loop {
                let mut rem = ts(Duration::ZERO);
                // SAFETY: valid timespecs; returns the error number.
                let r = unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &req, &mut rem) };
                match r {
                    0 => return Ok(eintr),
                    libc::EINTR => {
                        eintr += 1;
                        req = rem;
                    }
                    e => return Err(format!("clock_nanosleep: errno {e}")),
                }
            }
        }
        Kind::Nano => {
            let mut req = ts(d);
            loop {
                let mut rem = ts(Duration::ZERO);
                // SAFETY: valid timespecs.
                if unsafe { libc::nanosleep(&req, &mut rem) } == 0 {
                    return Ok(eintr);
                }
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(format!("nanosleep: {e}"));
                }
                eintr += 1;
                req = rem;
            }
        }
    }
}

#[derive(Default)]
struct Log {
    cycles: Vec<Cycle>,
    error: Option<String>,
    /// Set when the thread has left its loop.
    done: bool,
    /// When the sleep in progress started.
    current: Option<Instant>,
}

struct Sleeper {
    kind: Kind,
    log: Arc<Mutex<Log>>,
}

fn sleeper_main(kind: Kind, d: Duration, log: Arc<Mutex<Log>>, stop: Arc<AtomicBool>) {
    // SIGTERM goes to the main thread.
    let _ = signals::block(&[libc::SIGTERM]);
    // At least one sleep, even if the stop comes before the thread first runs.
    loop {
        let start = Instant::now();
        log.lock().unwrap().current = Some(start);
        let result = sleep_once(kind, d);
        let end = Instant::now();
        let mut l = log.lock().unwrap();
        l.current = None;
        match result {
            Ok(eintr) => l.cycles.push(Cycle {
                start,
                target: start + d,
                end,
                eintr,
            }),
            Err(e) => {
                l.error = Some(e);
                break;
            }
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    log.lock().unwrap().done = true;
}

/// The stretches of time the main thread saw frozen.
#[derive(Default)]
struct Stalls(Vec<(Instant, Instant)>);

impl Stalls {
    /// Frozen time overlapping `from..to`.
    fn within(&self, from: Instant, to: Instant) -> Duration {
        self.0
            .iter()
            .map(|&(a, b)| {
                let (lo, hi) = (a.max(from), b.min(to));
                hi.saturating_duration_since(lo)
            })
            .sum()
    }
}

struct State {
    sleepers: Vec<Sleeper>,
    stop: Arc<AtomicBool>,
    stalls: Stalls,
    last_tick: Instant,
    checked: Vec<usize>,
    sleep: Duration,
    slack: Duration,
}

impl State {
    fn note_tick(&mut self, tick: Duration) {
        let now = Instant::now();
        if now.duration_since(self.last_tick) > tick + STALL {
            self.stalls.0.push((self.last_tick, now));
        }
        self.last_tick = now;
    }

    /// Checks the cycles not checked yet.
    fn check_new(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        for (i, s) in self.sleepers.iter().enumerate() {
            let log = s.log.lock().unwrap();
            if let Some(e) = &log.error {
                p.push(format!("sleeper {}: {e}", s.kind.name()));
            }
            for (n, c) in log.cycles.iter().enumerate().skip(self.checked[i]) {
                let what = format!(
                    "sleeper {} sleep #{} of {} ms",
                    s.kind.name(),
                    n + 1,
                    self.sleep.as_millis()
                );
                if c.end < c.target {
                    p.push(format!(
                        "{what}: ended {} ms early ({} EINTR)",
                        (c.target - c.end).as_millis(),
                        c.eintr
                    ));
                    continue;
                }
                let late = c.end - c.target;
                let frozen = self.stalls.within(c.start, c.end);
                if late > frozen + self.slack {
                    p.push(format!(
                        "{what}: ended {} ms late, but the process was frozen only {} ms of it (slack {} ms; {} EINTR): restarted from the beginning?",
                        late.as_millis(),
                        frozen.as_millis(),
                        self.slack.as_millis(),
                        c.eintr
                    ));
                }
            }
            self.checked[i] = log.cycles.len();
        }
        p.into_result()
    }

    /// Stops the sleepers after the sleep they are in; waits for them.
    fn finish(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        let limit = self.sleep * 2 + self.slack + Duration::from_secs(5);
        let start = Instant::now();
        let mut p = Problems::new();
        loop {
            let waiting: Vec<&Sleeper> = self
                .sleepers
                .iter()
                .filter(|s| !s.log.lock().unwrap().done)
                .collect();
            if waiting.is_empty() {
                break;
            }
            if start.elapsed() > limit {
                for s in waiting {
                    let since = s.log.lock().unwrap().current.map(|t| t.elapsed());
                    p.push(format!(
                        "sleeper {}: still asleep {} ms into a {} ms sleep",
                        s.kind.name(),
                        since.unwrap_or_default().as_millis(),
                        self.sleep.as_millis()
                    ));
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        p.check(self.check_new());
        for s in &self.sleepers {
            if s.log.lock().unwrap().cycles.is_empty() {
                p.push(format!("sleeper {}: never finished a sleep", s.kind.name()));
            }
        }
        p.into_result()
    }

    fn summary(&self) -> String {
        let parts: Vec<String> = self
            .sleepers
            .iter()
            .map(|s| {
                let log = s.log.lock().unwrap();
                let spanning = log
                    .cycles
                    .iter()
                    .filter(|c| !self.stalls.within(c.start, c.end).is_zero())
                    .count();
                let eintr: u32 = log.cycles.iter().map(|c| c.eintr).sum();
                format!(
                    "{}: {} sleeps, {spanning} across a freeze, {eintr} EINTR resumed",
                    s.kind.name(),
                    log.cycles.len()
                )
            })
            .collect();
        let frozen: Duration = self.stalls.0.iter().map(|(a, b)| *b - *a).sum();
        format!(
            "every sleep ended on time ({}; frozen {} ms in all)",
            parts.join("; "),
            frozen.as_millis()
        )
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let sleep = Duration::from_millis(args.get("sleep-ms"));
    let slack = Duration::from_millis(args.get("slack-ms"));
    let tick = steady::tick(args);
    let stop = Arc::new(AtomicBool::new(false));
    let mut sleepers = Vec::new();
    for kind in [Kind::Abs, Kind::Rel, Kind::Nano] {
        let log = Arc::new(Mutex::new(Log::default()));
        let (l, s) = (log.clone(), stop.clone());
        if let Err(e) = std::thread::Builder::new().spawn(move || sleeper_main(kind, sleep, l, s)) {
            wl.setup_failed(&format!("starting sleeper {}: {e}", kind.name()));
        }
        sleepers.push(Sleeper { kind, log });
    }
    // Ready means every thread is asleep.
    let start = Instant::now();
    while !sleepers.iter().all(|s| {
        let l = s.log.lock().unwrap();
        l.current.is_some() || !l.cycles.is_empty() || l.done
    }) {
        if start.elapsed() > Duration::from_secs(10) {
            wl.setup_failed("the sleeper threads did not start within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut st = State {
        checked: vec![0; sleepers.len()],
        sleepers,
        stop,
        stalls: Stalls::default(),
        last_tick: Instant::now(),
        sleep,
        slack,
    };
    let detail = format!(
        "3 threads sleeping {} ms at a time: abs, rel, nano",
        sleep.as_millis()
    );
    steady::ready_then_tick(wl, args, &detail, |_| {
        st.note_tick(tick);
        st.check_new()
    })?;
    st.note_tick(tick);
    st.finish()?;
    Ok(st.summary())
}
