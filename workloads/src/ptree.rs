//! `ptree1`: a tree of processes that all keep counting in one shared memory region.
//!
//! The root maps a `MAP_SHARED | MAP_ANONYMOUS` region with one [`Slot`] per process, then
//! forks a complete tree: every process at a level below `--depth` forks `--width` children
//! (processes are numbered breadth-first, see [`Shape`]). Each process records its pid and
//! parent pid in its slot and then increments its counter every `--tick-ms`, keeping a
//! private copy too. The root announces ready once every slot is filled; progress is the
//! sum of all counters.
//!
//! On SIGTERM the root snapshots the counters, waits [`WINDOW`], and requires every other
//! process's counter to have grown (each kept running). It then sends SIGTERM to every other
//! process by the pid recorded in its slot. Each of them checks `getpid()`/`getppid()`
//! against its slot, its private counter against the shared one and its children's pids,
//! reaps its children (killing those that do not exit in time), writes ok or the reason
//! into its slot and exits. The root reaps its own children and reports every failure,
//! naming the process (number, pid, level) and the reason. The root's parent pid is not
//! checked: the restorer legitimately changes it.
//!
//! Children watch their parent: a child whose parent pid changes before SIGTERM (its parent
//! died) records that and exits, so no counting orphans are left behind.

use crate::args::{Args, Opt};
use crate::protocol::{sleep_polling, verify_requested, Workload};
use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};
use std::io::Write;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "ptree1";
/// Largest tree the workload agrees to build.
pub const MAX_PROCESSES: usize = 512;
/// How long the root watches the counters after SIGTERM.
pub const WINDOW: Duration = Duration::from_millis(300);
/// How long the tree may take to start before the root gives up.
pub const START_LIMIT: Duration = Duration::from_secs(10);
/// How long a process waits for its children to exit after SIGTERM, per level below it.
pub const EXIT_LIMIT_PER_LEVEL: Duration = Duration::from_secs(2);
/// Bytes of failure reason a slot holds.
pub const REASON_LEN: usize = 192;

/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    Opt {
        name: "depth",
        metavar: "D",
        default: 2,
        min: 0,
        max: 8,
        help: "levels below the root",
    },
    Opt {
        name: "width",
        metavar: "W",
        default: 3,
        min: 1,
        max: 64,
        help: "children of every process above the last level",
    },
    Opt {
        name: "tick-ms",
        metavar: "MS",
        default: 20,
        min: 1,
        max: 60_000,
        help: "time between counter increments",
    },
];

/// The shape of a complete tree, numbered breadth-first: the root is 0 and the children of
/// process `i` are `width*i + 1 ..= width*i + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub depth: u32,
    pub width: usize,
}

impl Shape {
    /// Number of processes, `sum(width^i, i = 0..=depth)`; `None` on overflow.
    pub fn count(&self) -> Option<usize> {
        let mut total = 0usize;
        let mut level = 1usize;
        for _ in 0..=self.depth {
            total = total.checked_add(level)?;
            level = level.checked_mul(self.width)?;
        }
        Some(total)
    }

    /// The children of process `index` (empty on the last level).
    pub fn children(&self, index: usize) -> Range<usize> {
        let count = self.count().unwrap_or(0);
        let first = (self.width * index + 1).min(count);
        let end = (self.width * index + self.width + 1).min(count);
        first..end
    }

    /// The parent of process `index` (`None` for the root).
    pub fn parent(&self, index: usize) -> Option<usize> {
        (index > 0).then(|| (index - 1) / self.width)
    }

    /// The level of process `index` (0 for the root).
    pub fn level(&self, index: usize) -> u32 {
        let mut level = 0;
        let mut i = index;
        while let Some(p) = self.parent(i) {
            level += 1;
            i = p;
        }
        level
    }
}

/// Validated settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub shape: Shape,
    pub tick: Duration,
}

impl Config {
    /// Settings from parsed [`OPTIONS`]; rejects trees over [`MAX_PROCESSES`].
    pub fn from_args(args: &Args) -> Result<Config, String> {
        let shape = Shape {
            depth: args.get("depth") as u32,
            width: args.get("width") as usize,
        };
        match shape.count() {
            Some(n) if n <= MAX_PROCESSES => Ok(Config {
                shape,
                tick: Duration::from_millis(args.get("tick-ms")),
            }),
            _ => Err(format!(
                "--depth {} --width {} makes more than {MAX_PROCESSES} processes",
                shape.depth, shape.width
            )),
        }
    }
}

const RUNNING: u32 = 0;
const PASSED: u32 = 1;
const FAILED: u32 = 2;

/// What a process reported about its own check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Nothing reported yet.
    Running,
    /// Every check passed.
    Ok,
    /// A check failed, with the reason.
    Failed(String),
}

/// One process's entry in the shared region. All-zero bytes are a valid empty slot.
#[repr(C)]
#[derive(Debug)]
pub struct Slot {
    /// The pid the process saw at start (0 until it started).
    pub pid: AtomicI32,
    /// The parent pid the process saw at start.
    pub ppid: AtomicI32,
    /// The shared copy of the process's counter.
    pub counter: AtomicU64,
    status: AtomicU32,
    reason: [AtomicU8; REASON_LEN],
}

impl Default for Slot {
    fn default() -> Slot {
        Slot {
            pid: AtomicI32::new(0),
            ppid: AtomicI32::new(0),
            counter: AtomicU64::new(0),
            status: AtomicU32::new(RUNNING),
            reason: std::array::from_fn(|_| AtomicU8::new(0)),
        }
    }
}

impl Slot {
    /// Records the outcome of the process's check (the reason is cut to fit).
    pub fn set_status(&self, ok: bool, reason: &str) {
        let bytes = reason.as_bytes();
        for (i, cell) in self.reason.iter().enumerate() {
            // The last byte stays 0 as a terminator.
            let b = if i + 1 < REASON_LEN {
                bytes.get(i).copied().unwrap_or(0)
            } else {
                0
            };
            cell.store(b, Ordering::Relaxed);
        }
        self.status
            .store(if ok { PASSED } else { FAILED }, Ordering::Release);
    }

    /// The outcome recorded by [`Slot::set_status`], if any.
    pub fn status(&self) -> Status {
        match self.status.load(Ordering::Acquire) {
            RUNNING => Status::Running,
            PASSED => Status::Ok,
            FAILED => {
                let bytes: Vec<u8> = self
                    .reason
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .take_while(|&b| b != 0)
                    .collect();
                Status::Failed(String::from_utf8_lossy(&bytes).into_owned())
            }
            other => Status::Failed(format!("slot holds an unknown status {other}")),
        }
    }
}

/// Maps the shared, zero-filled region of `count` slots (never unmapped).
pub fn map_slots(count: usize) -> nix::Result<&'static [Slot]> {
    let len =
        NonZeroUsize::new(count.max(1) * std::mem::size_of::<Slot>()).expect("at least one slot");
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing; it aliases
    // nothing in this process.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }?;
    // SAFETY: the mapping is page aligned (enough for Slot), `count` slots long, zero-filled
    // (a valid Slot: only atomics), only ever accessed through atomics, and never unmapped.
    Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<Slot>(), count) })
}

/// The current counters of all slots.
pub fn counters(slots: &[Slot]) -> Vec<u64> {
    slots
        .iter()
        .map(|s| s.counter.load(Ordering::SeqCst))
        .collect()
}

/// Indices (other than the root) whose counter did not grow from `before` to `after`.
pub fn stalled(before: &[u64], after: &[u64]) -> Vec<usize> {
    (1..before.len().min(after.len()))
        .filter(|&i| after[i] <= before[i])
        .collect()
}

/// One process of the tree, as seen by itself.
struct Node<'a> {
    shape: Shape,
    tick: Duration,
    slots: &'a [Slot],
    index: usize,
    /// (slot index, pid returned by fork)
    children: Vec<(usize, Pid)>,
    counter: u64,
}

impl<'a> Node<'a> {
    fn new(cfg: Config, slots: &'a [Slot], index: usize) -> Node<'a> {
        Node {
            shape: cfg.shape,
            tick: cfg.tick,
            slots,
            index,
            children: Vec::new(),
            counter: 0,
        }
    }

    fn slot(&self) -> &Slot {
        &self.slots[self.index]
    }

    /// Records this process's pid and parent pid in its slot.
    fn register(&self) {
        let slot = self.slot();
        slot.ppid.store(getppid().as_raw(), Ordering::SeqCst);
        slot.pid.store(getpid().as_raw(), Ordering::SeqCst);
    }

    fn who(&self, index: usize) -> String {
        who(self.slots, self.shape, index)
    }

    fn tick_counter(&mut self) {
        self.counter += 1;
        self.slot().counter.store(self.counter, Ordering::SeqCst);
    }

    /// Forks this process's children; each runs [`child_main`] and never returns here.
    fn fork_children(&mut self) -> Result<(), String> {
        let cfg = Config {
            shape: self.shape,
            tick: self.tick,
        };
        for child in self.shape.children(self.index) {
            // Nothing buffered may be written twice.
            let _ = std::io::stdout().flush();
            // SAFETY: the workload is single-threaded, so the child may run any code.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => child_main(cfg, self.slots, child),
                Ok(ForkResult::Parent { child: pid }) => self.children.push((child, pid)),
                Err(e) => return Err(format!("fork of process #{child}: {e}")),
            }
        }
        Ok(())
    }

    /// Compares what this process sees now with its slot; `ppid` is `None` for the root.
    fn identity_problems(&self, pid: i32, ppid: Option<i32>) -> Vec<String> {
        let slot = self.slot();
        let mut problems = Vec::new();
        let slot_pid = slot.pid.load(Ordering::SeqCst);
        if pid != slot_pid {
            problems.push(format!(
                "getpid() is {pid} but the slot recorded {slot_pid}"
            ));
        }
        if let Some(ppid) = ppid {
            let slot_ppid = slot.ppid.load(Ordering::SeqCst);
            if ppid != slot_ppid {
                problems.push(format!(
                    "getppid() is {ppid} but the slot recorded {slot_ppid}"
                ));
            }
        }
        let shared = slot.counter.load(Ordering::SeqCst);
        if self.counter != shared {
            problems.push(format!(
                "private counter is {} but the shared counter is {shared}",
                self.counter
            ));
        }
        for &(child, pid) in &self.children {
            let recorded = self.slots[child].pid.load(Ordering::SeqCst);
            if recorded != pid.as_raw() {
                problems.push(format!(
                    "child #{child}: fork returned pid {pid} but its slot says {recorded}"
                ));
            }
        }
        problems
    }

    /// Waits for the children to exit; kills those still there after the limit.
    fn reap_children(&self) -> Vec<String> {
        let levels_below = self
            .shape
            .depth
            .saturating_sub(self.shape.level(self.index));
        let limit = EXIT_LIMIT_PER_LEVEL * levels_below;
        let start = Instant::now();
        let mut problems = Vec::new();
        let mut pending = self.children.clone();
        while !pending.is_empty() {
            pending.retain(
                |&(child, pid)| match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(..)) => false,
                    Ok(WaitStatus::Signaled(_, signal, _)) => {
                        problems.push(format!("{} was killed by {signal:?}", self.who(child)));
                        false
                    }
                    Ok(_) => true,
                    Err(e) => {
                        problems.push(format!("waitpid for {}: {e}", self.who(child)));
                        false
                    }
                },
            );
            if pending.is_empty() {
                break;
            }
            if start.elapsed() > limit {
                for &(child, pid) in &pending {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    problems.push(format!(
                        "{} did not exit within {} ms of SIGTERM and was killed",
                        self.who(child),
                        limit.as_millis()
                    ));
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        problems
    }
}

/// `process #i (pid P, level L)`.
fn who(slots: &[Slot], shape: Shape, index: usize) -> String {
    format!(
        "process #{index} (pid {}, level {})",
        slots[index].pid.load(Ordering::SeqCst),
        shape.level(index)
    )
}

/// Life of every process but the root, right after its fork.
fn child_main(cfg: Config, slots: &[Slot], index: usize) -> ! {
    let mut node = Node::new(cfg, slots, index);
    node.register();
    if let Err(e) = node.fork_children() {
        node.slot().set_status(false, &e);
        std::process::exit(1);
    }
    let ppid = node.slot().ppid.load(Ordering::SeqCst);
    while sleep_polling(node.tick) {
        let now = getppid().as_raw();
        if now != ppid {
            node.slot().set_status(
                false,
                &format!("parent pid {ppid} went away before SIGTERM (now a child of {now})"),
            );
            std::process::exit(1);
        }
        node.tick_counter();
    }
    let mut problems = node.identity_problems(getpid().as_raw(), Some(getppid().as_raw()));
    problems.extend(node.reap_children());
    node.slot()
        .set_status(problems.is_empty(), &problems.join("; "));
    std::process::exit(if problems.is_empty() { 0 } else { 1 })
}

fn kill_tree(slots: &[Slot]) {
    for slot in &slots[1..] {
        let pid = slot.pid.load(Ordering::SeqCst);
        if pid > 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The workload (run by the root); returns the verdict (setup errors exit through
/// [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let cfg = Config::from_args(args).unwrap_or_else(|e| wl.setup_failed(&e));
    let shape = cfg.shape;
    let count = shape.count().expect("checked by Config::from_args");
    let slots = map_slots(count).unwrap_or_else(|e| {
        wl.setup_failed(&format!(
            "mmap(MAP_SHARED|MAP_ANONYMOUS) of {count} slots: {e}"
        ))
    });
    let mut root = Node::new(cfg, slots, 0);
    root.register();
    if let Err(e) = root.fork_children() {
        kill_tree(slots);
        wl.setup_failed(&e);
    }

    let started = Instant::now();
    let mut ready = false;
    wl.progress(0);
    while wl.sleep(cfg.tick) {
        root.tick_counter();
        wl.progress(counters(slots).iter().sum());
        if ready {
            continue;
        }
        if let Some((i, why)) = (1..count).find_map(|i| match slots[i].status() {
            Status::Failed(why) => Some((i, why)),
            _ => None,
        }) {
            kill_tree(slots);
            wl.setup_failed(&format!("{}: {why}", who(slots, shape, i)));
        }
        let missing: Vec<usize> = (1..count)
            .filter(|&i| slots[i].pid.load(Ordering::SeqCst) == 0)
            .collect();
        if missing.is_empty() {
            let pids: Vec<String> = slots
                .iter()
                .map(|s| s.pid.load(Ordering::SeqCst).to_string())
                .collect();
            wl.ready(&format!(
                "{count} processes (depth {}, width {}) counting every {} ms; pids {}",
                shape.depth,
                shape.width,
                cfg.tick.as_millis(),
                pids.join(" ")
            ));
            ready = true;
        } else if started.elapsed() > START_LIMIT {
            kill_tree(slots);
            wl.setup_failed(&format!(
                "after {} s, {} of {count} processes had not started (#{:?})",
                START_LIMIT.as_secs(),
                missing.len(),
                missing
            ));
        }
    }
    debug_assert!(verify_requested());

    // 1. Every process keeps counting.
    let before = counters(slots);
    std::thread::sleep(WINDOW);
    let after = counters(slots);
    wl.progress(after.iter().sum());
    let mut problems: Vec<String> = stalled(&before, &after)
        .into_iter()
        .map(|i| {
            format!(
                "{} did not count during the {} ms window after SIGTERM (counter stayed at {})",
                who(slots, shape, i),
                WINDOW.as_millis(),
                before[i]
            )
        })
        .collect();
    // 2. The root itself (not its parent pid: the restorer changes that).
    problems.extend(
        root.identity_problems(getpid().as_raw(), None)
            .into_iter()
            .map(|p| format!("root (process #0): {p}")),
    );
    // 3. Every other process checks itself.
    for i in 1..count {
        let pid = slots[i].pid.load(Ordering::SeqCst);
        if pid <= 0 {
            // Never started (reported below); kill(0) would signal the whole group.
            continue;
        }
        if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
            problems.push(format!(
                "cannot send SIGTERM to {}: {e}",
                who(slots, shape, i)
            ));
        }
    }
    problems.extend(root.reap_children());
    for i in 1..count {
        match slots[i].status() {
            Status::Ok => {}
            Status::Failed(why) => problems.push(format!("{}: {why}", who(slots, shape, i))),
            Status::Running => problems.push(format!(
                "{} never reported its check (it exited or was killed first)",
                who(slots, shape, i)
            )),
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{count} processes (depth {}, width {}) kept counting; pids, parent pids, children and counters match in every process",
            shape.depth, shape.width
        ))
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_counts_and_links() {
        let s = Shape { depth: 2, width: 3 };
        assert_eq!(s.count(), Some(13));
        assert_eq!(s.children(0), 1..4);
        assert_eq!(s.children(1), 4..7);
        assert_eq!(s.children(3), 10..13);
        assert!(s.children(4).is_empty());
        assert!(s.children(12).is_empty());
        assert_eq!(s.parent(0), None);
        assert_eq!(s.parent(6), Some(1));
        assert_eq!(s.parent(12), Some(3));
        assert_eq!(s.level(0), 0);
        assert_eq!(s.level(3), 1);
        assert_eq!(s.level(4), 2);
        // Every non-root process is the child of its parent, exactly once.
        for i in 1..13 {
            assert!(s.children(s.parent(i).unwrap()).contains(&i));
        }
        assert_eq!(Shape { depth: 0, width: 5 }.count(), Some(1));
        assert!(Shape { depth: 0, width: 5 }.children(0).is_empty());
        assert_eq!(Shape { depth: 3, width: 1 }.count(), Some(4));
        assert_eq!(Shape { depth: 3, width: 1 }.children(2), 3..4);
        assert_eq!(
            Shape {
                depth: 64,
                width: 64
            }
            .count(),
            None
        );
    }

    #[test]
    fn config_rejects_big_trees() {
        let parsed = crate::args::parse(OPTIONS, ["--depth", "8", "--width", "4"]).unwrap();
        let crate::args::Parsed::Run(args) = parsed else {
            unreachable!()
        };
        let e = Config::from_args(&args).unwrap_err();
        assert!(e.contains("more than 512"), "{e}");
    }

    #[test]
    fn slot_status_round_trip() {
        let slot = Slot::default();
        assert_eq!(slot.status(), Status::Running);
        slot.set_status(false, "getppid() is 1 but the slot recorded 42");
        assert_eq!(
            slot.status(),
            Status::Failed("getppid() is 1 but the slot recorded 42".into())
        );
        slot.set_status(false, &"x".repeat(1000));
        assert_eq!(slot.status(), Status::Failed("x".repeat(REASON_LEN - 1)));
        slot.set_status(true, "");
        assert_eq!(slot.status(), Status::Ok);
    }

    #[test]
    fn stalled_ignores_root() {
        assert_eq!(stalled(&[5, 1, 2, 3], &[5, 2, 2, 1]), vec![2, 3]);
        assert!(stalled(&[0, 1], &[0, 2]).is_empty());
    }

    #[test]
    fn identity_problems_name_each_mismatch() {
        let slots: Vec<Slot> = (0..4).map(|_| Slot::default()).collect();
        let cfg = Config {
            shape: Shape { depth: 1, width: 3 },
            tick: Duration::from_millis(1),
        };
        let mut node = Node::new(cfg, &slots, 0);
        slots[0].pid.store(100, Ordering::SeqCst);
        slots[0].ppid.store(1, Ordering::SeqCst);
        for (i, pid) in [(1, 101), (2, 102), (3, 103)] {
            slots[i].pid.store(pid, Ordering::SeqCst);
            node.children.push((i, Pid::from_raw(pid)));
        }
        node.tick_counter();
        node.tick_counter();
        assert!(node.identity_problems(100, Some(1)).is_empty());

        slots[0].counter.store(1, Ordering::SeqCst);
        slots[2].pid.store(555, Ordering::SeqCst);
        let problems = node.identity_problems(200, Some(7));
        assert_eq!(
            problems,
            vec![
                "getpid() is 200 but the slot recorded 100".to_string(),
                "getppid() is 7 but the slot recorded 1".to_string(),
                "private counter is 2 but the shared counter is 1".to_string(),
                "child #2: fork returned pid 102 but its slot says 555".to_string(),
            ]
        );
        // The root does not check its parent pid.
        assert_eq!(node.identity_problems(200, None).len(), 3);
        assert_eq!(node.who(2), "process #2 (pid 555, level 1)");
    }

    #[test]
    fn shared_region_is_zeroed_slots() {
        let slots = map_slots(3).unwrap();
        assert_eq!(slots.len(), 3);
        assert_eq!(counters(slots), vec![0, 0, 0]);
        assert_eq!(slots[2].status(), Status::Running);
        slots[2].counter.store(9, Ordering::SeqCst);
        assert_eq!(counters(slots), vec![0, 0, 9]);
    }
}
