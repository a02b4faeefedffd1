//! `pidns`: a process tree in a PID namespace of its own (needs root).
//!
//! The started process enters a new PID namespace with `unshare(CLONE_NEWPID)` and forks:
//! the child is pid 1 of the namespace. It forks two helpers (pid 2 and 3 in the
//! namespace) and names itself in `ready` with its pid as the harness sees it (the first
//! `NSpid` of `/proc/self/status`), so the harness checkpoints the namespace's init. The
//! started process waits for `ready` and exits.
//!
//! Every tick the init checks `getpid()` is 1 and asks each helper for its pid and parent
//! as seen inside (2 and 3, both children of 1). On SIGTERM it checks the same, forks one
//! more helper (a child of 1 with a new pid), and ends them all.
//!
//! After a restore the init's pid outside the namespace is new (criu makes a new
//! namespace); inside, every pid must be what it was.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::ns::unshare;
use crate::protocol::{Workload, READY_FILE};
use crate::{procfs, steady};
use nix::libc;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "pidns";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

fn spawn_member(n: usize) -> Result<Helper, String> {
    family::spawn(&format!("helper {n} of the namespace"), |req| match req {
        "ids" => Ok(format!("{} {}", getpid(), getppid())),
        _ => Err(format!("unknown request `{req}`")),
    })
}

fn ids(h: &mut Helper) -> Result<(i32, i32), String> {
    let text = h.ask("ids")?;
    let v: Vec<i32> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match v.as_slice() {
        [a, b] => Ok((*a, *b)),
        _ => Err(format!("{}: bad ids `{text}`", h.who())),
    }
}

/// The pid of the caller in the outermost namespace `/proc` shows (the first `NSpid`).
fn outer_pid() -> Result<u32, String> {
    let text = procfs::status_field(None, "NSpid")?;
    text.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("bad NSpid `{text}`"))
}

struct Init {
    helpers: Vec<Helper>,
}

impl Init {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        p.expect_eq("getpid() of the namespace's init", 1, getpid().as_raw());
        for (i, h) in self.helpers.iter_mut().enumerate() {
            if let Some(got) = p.take(ids(h)) {
                let want = (i as i32 + 2, 1);
                if got != want {
                    p.push(format!(
                        "{}: (pid, parent) inside the namespace is {got:?}, expected {want:?}",
                        h.who()
                    ));
                }
            }
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let mut h = spawn_member(3)?;
        let got = ids(&mut h);
        let result = match got {
            Ok((pid, 1)) if pid > 3 => Ok(()),
            Ok(other) => Err(format!(
                "a helper forked after the restore has (pid, parent) {other:?}, expected a new pid above 3 and parent 1"
            )),
            Err(e) => Err(e),
        };
        self.helpers.push(h);
        result
    }

    fn finish(self) -> Result<(), String> {
        let mut p = Problems::new();
        for h in self.helpers {
            p.check(h.finish());
        }
        p.into_result()
    }
}

/// The namespace's init: the workload proper.
fn init_main(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut init = Init {
        helpers: Vec::new(),
    };
    for n in 1..=2 {
        match spawn_member(n) {
            Ok(h) => init.helpers.push(h),
            Err(e) => wl.setup_failed(&e),
        }
    }
    init.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let outer = outer_pid().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "init={outer} (pid 1 of its own PID namespace) with helpers at pids 2 and 3: {}",
        init.helpers
            .iter()
            .map(|h| h.pid.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    // ready names the init, not the process the harness started.
    let mut ticks = wl.progress_value();
    wl.progress(ticks);
    wl.ready_as(outer, &detail);
    let tick = steady::tick(args);
    let outcome = (|| {
        while wl.sleep(tick) {
            ticks += 1;
            init.check().map_err(|e| format!("tick {ticks}: {e}"))?;
            wl.progress(ticks);
        }
        init.check()?;
        init.exercise()
    })();
    match outcome {
        Ok(()) => {
            init.finish()?;
            Ok(format!(
                "the PID namespace's init (pid 1) and its helpers kept their pids 2 and 3 and their parent over {ticks} checks; a new child got a new pid"
            ))
        }
        Err(e) => {
            for h in init.helpers {
                h.kill();
            }
            Err(e)
        }
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    unshare(libc::CLONE_NEWPID, "CLONE_NEWPID").unwrap_or_else(|e| wl.setup_failed(&e));
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: single-threaded; the child runs the workload, the parent only waits.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => return init_main(wl, args),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => wl.setup_failed(&format!("fork into the new PID namespace: {e}")),
    };
    // The starter: wait for the init to be ready (or to die), then leave without a verdict
    // of its own; the init writes the result.
    let ready = wl.path(READY_FILE);
    let start = Instant::now();
    loop {
        if ready.exists() {
            // Linger a moment, so whoever waits for `ready` sees it before seeing the
            // starter gone.
            std::thread::sleep(Duration::from_millis(200));
            std::process::exit(0);
        }
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(..)) => {
                wl.setup_failed("the namespace's init was killed before ready")
            }
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            wl.setup_failed("the namespace's init was not ready within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
