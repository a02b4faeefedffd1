//! `futex`: threads and a process waiting on futexes.
//!
//! The main thread keeps a generation number in a private futex word and bumps it every
//! tick, waking all waiters. `--waiters` threads wait on it (`FUTEX_WAIT_PRIVATE`), half
//! without a timeout and half with a 5 s timeout (the timed wait is the kind a restore
//! turns into `EINTR`); after every wake a waiter records the generation it saw. A helper
//! process waits the same way on a word in shared memory (`FUTEX_WAIT`, shared key),
//! bumped and woken by the workload too.
//!
//! On SIGTERM the workload sets a final generation and wakes everyone: within [`CATCH_UP`]
//! every waiter (threads and helper) must have seen exactly that value, and no waiter may
//! ever have seen a value going backwards or beyond the current one. A restore that loses
//! a waiter (left asleep on a futex nobody wakes) or wakes it with a stale value is caught.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::Workload;
use crate::signals;
use crate::steady;
use crate::sys::{self, Mapping};
use nix::libc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "futex";
/// How long waiters have to see the final value.
pub const CATCH_UP: Duration = Duration::from_secs(3);
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    steady::TICK_MS,
    Opt {
        name: "waiters",
        metavar: "N",
        default: 4,
        min: 1,
        max: 64,
        help: "threads waiting on the private futex",
    },
];

static GENERATION: AtomicU32 = AtomicU32::new(1);

const FUTEX_WAIT_PRIVATE: libc::c_int = libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG;
const FUTEX_WAKE_PRIVATE: libc::c_int = libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG;

/// `futex(FUTEX_WAIT)` on `word` while it holds `val`; errors other than the usual
/// wake-up reasons are returned.
fn wait(
    word: &AtomicU32,
    val: u32,
    private: bool,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let op = if private {
        FUTEX_WAIT_PRIVATE
    } else {
        libc::FUTEX_WAIT
    };
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: word is a live aligned u32; the timeout (if any) outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, val, tp, 0usize, 0u32) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ETIMEDOUT) => Ok(()),
        _ => Err(format!("futex(FUTEX_WAIT): {e}")),
    }
}

fn wake_all(word: &AtomicU32, private: bool) {
    let op = if private {
        FUTEX_WAKE_PRIVATE
    } else {
        libc::FUTEX_WAKE
    };
    // SAFETY: word is a live aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        )
    };
}

/// What one waiter recorded.
#[derive(Default)]
struct Seen {
    last: AtomicU32,
    wakes: AtomicU64,
    /// A generation that went backwards or ahead of the main thread's, or an error.
    problem: std::sync::Mutex<Option<String>>,
}

fn waiter(i: usize, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let _ = signals::block(&[libc::SIGTERM]);
    let timeout = (i % 2 == 1).then(|| Duration::from_secs(5));
    loop {
        let g = GENERATION.load(Ordering::SeqCst);
        let last = seen.last.load(Ordering::SeqCst);
        if g < last {
            *seen.problem.lock().unwrap() = Some(format!("saw generation {g} after {last}"));
        }
        seen.last.store(g, Ordering::SeqCst);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = wait(&GENERATION, g, true, timeout) {
            *seen.problem.lock().unwrap() = Some(e);
            return;
        }
        seen.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

/// The shared page: word 0 the generation, word 1 what the helper last saw.
struct Shared(Mapping);

impl Shared {
    fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the page is mapped for the process's life and 4-byte aligned; only
        // accessed through atomics.
        unsafe { &*(self.0.ptr().add(4 * i) as *const AtomicU32) }
    }
}

fn helper_loop(addr: usize) {
    // SAFETY: the shared page stays mapped in the helper.
    let word = unsafe { &*(addr as *const AtomicU32) };
    let seen = unsafe { &*((addr + 4) as *const AtomicU32) };
    loop {
        let g = word.load(Ordering::SeqCst);
        seen.store(g, Ordering::SeqCst);
        let _ = wait(word, g, false, None);
    }
}

struct State {
    shared: Shared,
    helper: Helper,
    seen: Vec<Arc<Seen>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn setup(waiters: usize) -> Result<State, String> {
    let map = sys::mmap(
        4096,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        None,
        0,
    )
    .map_err(|e| format!("mmap: {e}"))?;
    let shared = Shared(map);
    shared.word(0).store(1, Ordering::SeqCst);
    let addr = shared.0.addr();
    let mut helper = family::spawn("helper waiting on the shared futex", move |req| match req {
        "init" => std::thread::Builder::new()
            .spawn(move || helper_loop(addr))
            .map(|_| "started".into())
            .map_err(|e| format!("thread: {e}")),
        _ => Err(format!("unknown request `{req}`")),
    })?;
    helper.ask("init")?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut seen = Vec::new();
    let mut threads = Vec::new();
    for i in 0..waiters {
        let s = Arc::new(Seen::default());
        let (s2, st) = (s.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .spawn(move || waiter(i, s2, st))
                .map_err(|e| format!("thread: {e}"))?,
        );
        seen.push(s);
    }
    Ok(State {
        shared,
        helper,
        seen,
        stop,
        threads,
    })
}

impl State {
    fn bump(&self) {
        GENERATION.fetch_add(1, Ordering::SeqCst);
        wake_all(&GENERATION, true);
        self.shared.word(0).fetch_add(1, Ordering::SeqCst);
        wake_all(self.shared.word(0), false);
    }

    fn problems(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let now = GENERATION.load(Ordering::SeqCst);
        for (i, s) in self.seen.iter().enumerate() {
            if let Some(e) = s.problem.lock().unwrap().clone() {
                p.push(format!("waiter thread {i}: {e}"));
            }
            let last = s.last.load(Ordering::SeqCst);
            if last > now {
                p.push(format!(
                    "waiter thread {i}: saw generation {last}, beyond the current {now}"
                ));
            }
        }
        p.into_result()
    }

    fn catch_up(&self) -> Result<(), String> {
        self.bump();
        let target = GENERATION.load(Ordering::SeqCst);
        let shared_target = self.shared.word(0).load(Ordering::SeqCst);
        let start = Instant::now();
        loop {
            let behind: Vec<usize> = (0..self.seen.len())
                .filter(|&i| self.seen[i].last.load(Ordering::SeqCst) != target)
                .collect();
            let helper_seen = self.shared.word(1).load(Ordering::SeqCst);
            if behind.is_empty() && helper_seen == shared_target {
                return Ok(());
            }
            if start.elapsed() > CATCH_UP {
                let mut p = Problems::new();
                for i in behind {
                    p.push(format!(
                        "waiter thread {i} still saw generation {} {} ms after the final wake to {target} (lost on its futex?)",
                        self.seen[i].last.load(Ordering::SeqCst),
                        CATCH_UP.as_millis()
                    ));
                }
                if helper_seen != shared_target {
                    p.push(format!(
                        "{} still saw {helper_seen} {} ms after the wake to {shared_target}",
                        self.helper.who(),
                        CATCH_UP.as_millis()
                    ));
                }
                return p.into_result();
            }
            // Wake again in case a waiter was between its load and its wait.
            wake_all(&GENERATION, true);
            wake_all(self.shared.word(0), false);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) -> Result<u64, String> {
        self.stop.store(true, Ordering::SeqCst);
        GENERATION.fetch_add(1, Ordering::SeqCst);
        wake_all(&GENERATION, true);
        let mut p = Problems::new();
        for t in self.threads {
            if t.join().is_err() {
                p.push("a waiter thread panicked".to_string());
            }
        }
        let wakes = self
            .seen
            .iter()
            .map(|s| s.wakes.load(Ordering::SeqCst))
            .sum();
        self.helper.kill();
        p.into_result().map(|_| wakes)
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let waiters = args.get("waiters") as usize;
    let st = setup(waiters).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "{waiters} threads on a private futex, helper={} on a shared one at {:#x}",
        st.helper.pid,
        st.shared.0.addr()
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| {
        st.problems()?;
        st.bump();
        Ok(())
    })
    .and_then(|t| {
        st.problems()?;
        st.catch_up()?;
        st.problems()?;
        Ok(t)
    });
    match outcome {
        Ok(ticks) => {
            let wakes = st.stop()?;
            Ok(format!(
                "{waiters} futex waiter threads and a waiting process were woken every tick over {ticks} ticks ({wakes} thread wakes) and all saw the final value"
            ))
        }
        Err(e) => {
            let _ = st.stop();
            Err(e)
        }
    }
}
