//! `zombies`: children that have exited and are not reaped yet.
//!
//! The workload forks three children that end at once: one exits with status 3, one with
//! status 7, one is killed by `SIGUSR1`. It does not reap them. A fourth child, a helper,
//! stays alive and answers. Every tick the workload checks that each zombie is still a
//! zombie (`Z` in `/proc/PID/stat`), still its child, and still reports the same end
//! through `waitid(WNOWAIT)` (which leaves it unreaped), and that the helper answers. On
//! SIGTERM it checks the same, then reaps each zombie (`waitpid` must give the same end),
//! and ends the helper (exit status 0).

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::Workload;
use crate::{procfs, steady, sys};
use nix::libc;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Pid};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "zombies";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// How a child ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Killed(i32),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Exited(c) => write!(f, "exited with status {c}"),
            End::Killed(s) => write!(f, "killed by {}", crate::signals::name(*s)),
        }
    }
}

/// `waitid(P_PID, pid, WEXITED|WNOWAIT|WNOHANG)`: how the child ended, without reaping it
/// (`None` if it has not ended).
pub fn peek_end(pid: Pid) -> Result<Option<End>, String> {
    // SAFETY: waitid fills the siginfo.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe {
        libc::waitid(
            libc::P_PID,
            pid.as_raw() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    })
    .map_err(|e| format!("waitid({pid}, WNOWAIT): {e}"))?;
    // SAFETY: reading the fields waitid filled.
    let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
    if child == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => End::Exited(status),
        _ => End::Killed(status),
    }))
}

struct Zombie {
    pid: Pid,
    end: End,
}

struct State {
    zombies: Vec<Zombie>,
    helper: Helper,
}

fn spawn_ending(end: End) -> Result<Pid, String> {
    // SAFETY: single-threaded; the child only calls async-signal-safe functions.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => unsafe {
            match end {
                End::Exited(code) => libc::_exit(code),
                End::Killed(sig) => {
                    libc::signal(sig, libc::SIG_DFL);
                    libc::kill(libc::getpid(), sig);
                    libc::_exit(99)
                }
            }
        },
        Ok(ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(format!("fork: {e}")),
    }
}

fn setup() -> Result<State, String> {
    let helper = family::spawn("live helper", |req| match req {
        "ping" => Ok("pong".into()),
        _ => Err(format!("unknown request `{req}`")),
    })?;
    let mut zombies = Vec::new();
    for end in [
        End::Exited(3),
        End::Exited(7),
        End::Killed(Signal::SIGUSR1 as i32),
    ] {
        zombies.push(Zombie {
            pid: spawn_ending(end)?,
            end,
        });
    }
    let start = Instant::now();
    for z in &zombies {
        while peek_end(z.pid)?.is_none() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("child {} did not end within 10 s", z.pid));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(State { zombies, helper })
}

impl State {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        let me = getpid().as_raw();
        for z in &self.zombies {
            let who = format!("zombie {} (it {})", z.pid, z.end);
            match procfs::stat(z.pid.as_raw()) {
                Some(s) if s.state == 'Z' && s.ppid == me => {}
                Some(s) => p.push(format!(
                    "{who}: state {} with parent {}, expected state Z with parent {me}",
                    s.state, s.ppid
                )),
                None => p.push(format!("{who}: /proc/{} is gone", z.pid)),
            }
            match peek_end(z.pid) {
                Ok(Some(end)) if end == z.end => {}
                Ok(Some(end)) => p.push(format!("{who}: waitid(WNOWAIT) says it {end}")),
                Ok(None) => p.push(format!("{who}: waitid(WNOWAIT) says it has not ended")),
                Err(e) => p.push(format!("{who}: {e}")),
            }
        }
        p.take(self.helper.ask("ping"));
        match peek_end(self.helper.pid) {
            Ok(None) => {}
            Ok(Some(end)) => p.push(format!("{}: expected alive, it {end}", self.helper.who())),
            Err(e) => p.push(format!("{}: {e}", self.helper.who())),
        }
        p.into_result()
    }

    fn reap(self) -> Result<(), String> {
        let mut p = Problems::new();
        for z in &self.zombies {
            let got = match waitpid(z.pid, None) {
                Ok(WaitStatus::Exited(_, c)) => End::Exited(c),
                Ok(WaitStatus::Signaled(_, s, _)) => End::Killed(s as i32),
                Ok(other) => {
                    p.push(format!("waitpid({}): {other:?}", z.pid));
                    continue;
                }
                Err(e) => {
                    p.push(format!("waitpid({}): {e}", z.pid));
                    continue;
                }
            };
            if got != z.end {
                p.push(format!(
                    "zombie {}: reaped, it {got}, expected it {}",
                    z.pid, z.end
                ));
            }
        }
        p.check(self.helper.finish());
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let zs: Vec<String> = st
        .zombies
        .iter()
        .map(|z| format!("{} ({})", z.pid, z.end))
        .collect();
    let detail = format!("zombies {}; helper={}", zs.join(", "), st.helper.pid);
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| st.check()).and_then(|t| {
        st.check()?;
        Ok(t)
    });
    let ticks = match outcome {
        Ok(t) => t,
        Err(e) => {
            st.helper.kill();
            return Err(e);
        }
    };
    st.reap()?;
    Ok(format!(
        "3 zombies stayed unreaped with their exit statuses over {ticks} checks and were reaped with them; the live helper answered throughout"
    ))
}
