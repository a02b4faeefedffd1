//! `stopped`: a child stopped by SIGSTOP beside one that runs.
//!
//! Two helper children; the workload stops the first (`SIGSTOP`, and sees the stop with
//! `waitpid(WUNTRACED)`). Every tick it checks that the first is in state `T` and the
//! second is not (a stopped child may run for a moment after a restore, see [`SETTLE`]),
//! and asks the second a question. On SIGTERM it checks the same, then
//! continues the first (`SIGCONT`), sees it continue (`waitpid(WCONTINUED)`) and asks it
//! a question: criu must restore a stopped task stopped, and able to go on.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::Workload;
use crate::{procfs, steady};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "stopped";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

fn spawn(name: &str) -> Result<Helper, String> {
    family::spawn(name, |req| match req {
        "state" => procfs::stat(nix::unistd::getpid().as_raw())
            .map(|s| s.state.to_string())
            .ok_or_else(|| "no /proc/self/stat".to_string()),
        other => Err(format!("unknown request `{other}`")),
    })
}

fn state(h: &Helper) -> Result<char, String> {
    procfs::stat(h.pid.as_raw())
        .map(|s| s.state)
        .ok_or_else(|| format!("{}: gone from /proc", h.who()))
}

/// How long a stopped child may show another state before it stops again: criu sends a
/// restored stopped task its SIGSTOP at the very end of the restore, so for a moment it
/// runs (state `R`) until it takes the signal.
const SETTLE: Duration = Duration::from_secs(2);

/// The child's state, waiting up to [`SETTLE`] for it to be `T`.
fn settled_state(h: &Helper) -> Result<char, String> {
    let end = Instant::now() + SETTLE;
    loop {
        let s = state(h)?;
        if s == 'T' || Instant::now() > end {
            return Ok(s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Pair {
    stopped: Helper,
    running: Helper,
}

impl Pair {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        if let Some(s) = p.take(settled_state(&self.stopped)) {
            if s != 'T' {
                p.push(format!(
                    "{}: state {s}, expected T (stopped)",
                    self.stopped.who()
                ));
            }
        }
        if let Some(s) = p.take(state(&self.running)) {
            if s == 'T' || s == 't' {
                p.push(format!(
                    "{}: state {s}, expected not stopped",
                    self.running.who()
                ));
            }
        }
        if let Some(s) = p.take(self.running.ask("state")) {
            if s != "R" {
                p.push(format!(
                    "{}: sees itself in state {s}, expected R",
                    self.running.who()
                ));
            }
        }
        p.into_result()
    }

    fn resume(&mut self) -> Result<(), String> {
        let who = self.stopped.who();
        kill(self.stopped.pid, Signal::SIGCONT).map_err(|e| format!("{who}: SIGCONT: {e}"))?;
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match waitpid(self.stopped.pid, Some(WaitPidFlag::WCONTINUED | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Continued(_)) => break,
                Ok(WaitStatus::StillAlive) if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(other) => {
                    return Err(format!(
                        "{who}: after SIGCONT waitpid(WCONTINUED) reports {other:?}, expected it continued"
                    ))
                }
                Err(e) => return Err(format!("{who}: waitpid(WCONTINUED): {e}")),
            }
        }
        match self.stopped.ask("state")?.as_str() {
            "R" => Ok(()),
            s => Err(format!(
                "{who}: after SIGCONT sees itself in state {s}, expected R"
            )),
        }
    }
}

fn setup() -> Result<Pair, String> {
    let stopped = spawn("stopped child")?;
    let running = spawn("running child")?;
    let who = stopped.who();
    kill(stopped.pid, Signal::SIGSTOP).map_err(|e| format!("{who}: SIGSTOP: {e}"))?;
    match waitpid(stopped.pid, Some(WaitPidFlag::WUNTRACED)) {
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
        other => {
            return Err(format!(
                "{who}: waitpid(WUNTRACED) after SIGSTOP: {other:?}"
            ))
        }
    }
    Ok(Pair { stopped, running })
}

/// Stops one child, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut pair = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    pair.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("stopped={} running={}", pair.stopped.pid, pair.running.pid);
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| pair.check())
        .and_then(|n| pair.check().map(|()| n))
        .and_then(|n| pair.resume().map(|()| n));
    match outcome {
        Ok(ticks) => {
            let mut p = Problems::new();
            p.check(pair.stopped.finish());
            p.check(pair.running.finish());
            p.into_result()?;
            Ok(format!(
                "a SIGSTOPped child stayed stopped beside a running one over {ticks} checks, then went on after SIGCONT"
            ))
        }
        Err(e) => {
            pair.stopped.kill();
            pair.running.kill();
            Err(e)
        }
    }
}
