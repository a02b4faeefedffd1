//! `threads`: threads with their own state.
//!
//! The workload starts `--threads` threads. Thread `i` names itself `crt-worker-i`
//! (`PR_SET_NAME`), stores its own value in a thread-local variable, blocks its own signals
//! (`SIGUSR1` in even threads, `SIGUSR2` in odd ones, `SIGTERM` in all, so SIGTERM reaches
//! the main thread), and sets up its own alternate signal stack. It then counts, checking
//! every tick that its thread id, thread-local value, name, signal mask and alternate stack
//! are still its own; a difference is recorded and fails the workload at its next tick.
//!
//! On SIGTERM the main thread requires every thread's counter to grow within
//! [`WINDOW`] (each still runs), checks each thread's name and blocked set from
//! `/proc/self/task/TID`, then stops and joins them.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::Workload;
use crate::signals::{self, mask_text};
use crate::sys::{self, Mapping};
use crate::{procfs, steady};
use nix::libc;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Program name.
pub const NAME: &str = "threads";
/// How long every thread's counter must take to grow after SIGTERM.
pub const WINDOW: Duration = Duration::from_millis(300);
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    steady::TICK_MS,
    Opt {
        name: "threads",
        metavar: "N",
        default: 4,
        min: 1,
        max: 64,
        help: "threads started besides the main one",
    },
];

thread_local! {
    static OWN_VALUE: Cell<u64> = const { Cell::new(0) };
}

/// What one thread keeps for the main thread to see.
#[derive(Default)]
struct Slot {
    tid: AtomicI32,
    /// Address of the thread's thread-local value.
    tls: std::sync::atomic::AtomicUsize,
    counter: AtomicU64,
    problem: Mutex<Option<String>>,
}

fn thread_name(i: usize) -> String {
    format!("crt-worker-{i}")
}

fn own_value(i: usize) -> u64 {
    0x7115_0000_0000 + i as u64 * 0x1111
}

fn blocked_by(i: usize) -> Vec<i32> {
    let own = if i % 2 == 0 {
        libc::SIGUSR1
    } else {
        libc::SIGUSR2
    };
    vec![own, libc::SIGTERM]
}

fn current_mask() -> u64 {
    // SAFETY: querying the calling thread's mask.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old);
        signals::set_mask(&old)
    }
}

struct Worker {
    i: usize,
    tid: i32,
    mask: u64,
    stack: Mapping,
}

impl Worker {
    fn start(i: usize) -> Result<Worker, String> {
        let name = std::ffi::CString::new(thread_name(i)).expect("no NUL");
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        sys::cvt(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) })
            .map_err(|e| format!("PR_SET_NAME: {e}"))?;
        OWN_VALUE.with(|v| v.set(own_value(i)));
        signals::block(&blocked_by(i)).map_err(|e| format!("blocking signals: {e}"))?;
        // Kept in the Worker: mapped for the thread's life.
        let stack = signals::set_altstack()?;
        Ok(Worker {
            i,
            tid: sys::gettid(),
            mask: current_mask(),
            stack,
        })
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        p.expect_eq("gettid()", self.tid, sys::gettid());
        p.expect_eq(
            "thread-local value",
            format!("{:#x}", own_value(self.i)),
            format!("{:#x}", OWN_VALUE.with(|v| v.get())),
        );
        match std::fs::read_to_string("/proc/thread-self/comm") {
            Ok(name) => p.expect_eq("name", thread_name(self.i), name.trim_end().to_string()),
            Err(e) => p.push(format!("cannot read /proc/thread-self/comm: {e}")),
        }
        let mask = current_mask();
        if mask != self.mask {
            p.push(format!(
                "blocked signals: expected {}, got {}",
                mask_text(self.mask),
                mask_text(mask)
            ));
        }
        signals::check_altstack(&self.stack, &mut p);
        p.into_result()
            .map_err(|e| format!("thread {} (tid {}): {e}", self.i, self.tid))
    }
}

fn worker_main(i: usize, slot: Arc<Slot>, stop: Arc<AtomicBool>, tick: Duration) {
    let worker = match Worker::start(i) {
        Ok(w) => w,
        Err(e) => {
            *slot.problem.lock().unwrap() = Some(format!("thread {i}: setup: {e}"));
            return;
        }
    };
    slot.tls.store(
        OWN_VALUE.with(|v| v as *const Cell<u64> as usize),
        Ordering::SeqCst,
    );
    slot.tid.store(worker.tid, Ordering::SeqCst);
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(tick);
        if let Err(e) = worker.check() {
            let mut problem = slot.problem.lock().unwrap();
            if problem.is_none() {
                *problem = Some(e);
            }
        }
        slot.counter.fetch_add(1, Ordering::SeqCst);
    }
}

struct State {
    slots: Vec<Arc<Slot>>,
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl State {
    fn problems(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for s in &self.slots {
            if let Some(e) = s.problem.lock().unwrap().clone() {
                p.push(e);
            }
        }
        p.into_result()
    }

    fn counters(&self) -> Vec<u64> {
        self.slots
            .iter()
            .map(|s| s.counter.load(Ordering::SeqCst))
            .collect()
    }

    fn check_from_outside(&self, p: &mut Problems) {
        for (i, s) in self.slots.iter().enumerate() {
            let tid = s.tid.load(Ordering::SeqCst);
            let who = format!("thread {i} (tid {tid})");
            match std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) {
                Ok(n) => p.expect_eq(
                    &format!("{who}: name in /proc/self/task"),
                    thread_name(i),
                    n.trim_end().to_string(),
                ),
                Err(e) => p.push(format!("{who}: /proc/self/task/{tid}/comm: {e}")),
            }
            match signals::proc_mask(Some(tid), "SigBlk") {
                Ok(m) if m != signals::mask_of(&blocked_by(i)) => p.push(format!(
                    "{who}: SigBlk expected {}, got {}",
                    mask_text(signals::mask_of(&blocked_by(i))),
                    mask_text(m)
                )),
                Ok(_) => {}
                Err(e) => p.push(format!("{who}: {e}")),
            }
            if let Ok(tgid) = procfs::status_field(Some(tid), "Tgid") {
                p.expect_eq(
                    &format!("{who}: Tgid"),
                    std::process::id().to_string(),
                    tgid,
                );
            }
        }
    }
}

fn setup(threads: usize, tick: Duration) -> Result<State, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut slots = Vec::new();
    let mut handles = Vec::new();
    for i in 0..threads {
        let slot = Arc::new(Slot::default());
        let (s, st) = (slot.clone(), stop.clone());
        let h = std::thread::Builder::new()
            .spawn(move || worker_main(i, s, st, tick))
            .map_err(|e| format!("starting thread {i}: {e}"))?;
        slots.push(slot);
        handles.push(h);
    }
    let state = State {
        slots,
        stop,
        handles,
    };
    for _ in 0..1000 {
        state.problems()?;
        if state
            .slots
            .iter()
            .all(|s| s.tid.load(Ordering::SeqCst) != 0)
        {
            return Ok(state);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err("the threads did not start within 5 s".into())
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let threads = args.get("threads") as usize;
    let tick = steady::tick(args);
    let st = setup(threads, tick).unwrap_or_else(|e| wl.setup_failed(&e));
    let tids: Vec<String> = st
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{}={} tls-{i}={:#x}",
                thread_name(i),
                s.tid.load(Ordering::SeqCst),
                s.tls.load(Ordering::SeqCst)
            )
        })
        .collect();
    let detail = format!("{threads} threads: {}", tids.join(" "));
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.problems())?;

    let mut p = Problems::new();
    let before = st.counters();
    std::thread::sleep(WINDOW.max(tick * 5));
    let after = st.counters();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if a <= b {
            p.push(format!(
                "thread {i} (tid {}) did not count during the {} ms after SIGTERM (stayed at {b})",
                st.slots[i].tid.load(Ordering::SeqCst),
                WINDOW.max(tick * 5).as_millis()
            ));
        }
    }
    st.check_from_outside(&mut p);
    st.stop.store(true, Ordering::SeqCst);
    for h in st.handles {
        if h.join().is_err() {
            p.push("a thread panicked".to_string());
        }
    }
    for s in &st.slots {
        if let Some(e) = s.problem.lock().unwrap().clone() {
            p.push(e);
        }
    }
    p.finish(|| {
        format!(
            "{threads} threads kept their ids, names, thread-local values, signal masks and alternate stacks over {ticks} checks, and kept counting"
        )
    })
}
