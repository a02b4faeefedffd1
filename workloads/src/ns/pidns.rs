//! `pidns`: a process tree in a PID namespace of its own (needs root).
//!
//! The started process enters a new PID namespace with `unshare(CLONE_NEWPID)` and forks:
//! the child is pid 1 of the namespace. It starts a session of its own (`setsid`), so the
//! tree's session and process group lead from inside the namespace (criu refuses to dump
//! a tree whose session leader is outside its PID namespace). It forks two helpers (pid 2
//! and 3 in the namespace, in its session and group) and names itself in `ready` with its
//! pid as the harness sees it (the first `NSpid` of `/proc/self/status`), so the harness
//! checkpoints the namespace's init. The started process waits for `ready` and exits.
//!
//! Every tick the init checks `getpid()`, `getpgrp()` and `getsid(0)` are 1 and asks each
//! helper for its pid, parent, process group and session as seen inside (2 and 3, all the
//! rest 1). On SIGTERM it checks the same, forks one more helper (a child of 1 with a new
//! pid), and ends them all.
//!
//! After a restore the init's pid outside the namespace is new (criu makes a new
//! namespace); inside, every pid, process group and session must be what it was.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::ns::unshare;
use crate::protocol::Workload;
use crate::{procfs, steady};
use nix::libc;
use nix::unistd::{getpgrp, getpid, getppid, getsid, setsid};

/// Program name.
pub const NAME: &str = "pidns";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// A process's ids as seen inside the namespace: pid, parent, process group, session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ids {
    pid: i32,
    ppid: i32,
    pgid: i32,
    sid: i32,
}

impl Ids {
    fn of_self() -> Ids {
        Ids {
            pid: getpid().as_raw(),
            ppid: getppid().as_raw(),
            pgid: getpgrp().as_raw(),
            // getsid(0) fails only for a session leader outside the namespace: show 0.
            sid: getsid(None).map_or(0, |s| s.as_raw()),
        }
    }

    /// What a helper with inner pid `pid` must see: a child of the init, in its group
    /// and session.
    fn helper(pid: i32) -> Ids {
        Ids {
            pid,
            ppid: 1,
            pgid: 1,
            sid: 1,
        }
    }
}

impl std::fmt::Display for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} parent {} pgid {} sid {}",
            self.pid, self.ppid, self.pgid, self.sid
        )
    }
}

fn spawn_member(n: usize) -> Result<Helper, String> {
    family::spawn(&format!("helper {n} of the namespace"), |req| match req {
        "ids" => {
            let i = Ids::of_self();
            Ok(format!("{} {} {} {}", i.pid, i.ppid, i.pgid, i.sid))
        }
        _ => Err(format!("unknown request `{req}`")),
    })
}

fn ids(h: &mut Helper) -> Result<Ids, String> {
    let text = h.ask("ids")?;
    let v: Vec<i32> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match v.as_slice() {
        [pid, ppid, pgid, sid] => Ok(Ids {
            pid: *pid,
            ppid: *ppid,
            pgid: *pgid,
            sid: *sid,
        }),
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
        let me = Ids::of_self();
        p.expect_eq("getpid() of the namespace's init", 1, me.pid);
        p.expect_eq(
            "getpgrp() of the namespace's init (it leads its own group)",
            1,
            me.pgid,
        );
        p.expect_eq(
            "getsid(0) of the namespace's init (it leads its own session)",
            1,
            me.sid,
        );
        for (i, h) in self.helpers.iter_mut().enumerate() {
            if let Some(got) = p.take(ids(h)) {
                let want = Ids::helper(i as i32 + 2);
                if got != want {
                    p.push(format!(
                        "{}: inside the namespace it has {got}, expected {want}",
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
            Ok(i) if i.pid > 3 && i == Ids::helper(i.pid) => Ok(()),
            Ok(other) => Err(format!(
                "a helper forked after the restore has {other}, expected a new pid above 3, parent 1, pgid 1, sid 1"
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
    // Lead a session (and process group) of our own, inside the namespace: the starter's
    // session is led from outside it, which criu cannot restore.
    if let Err(e) = setsid() {
        wl.setup_failed(&format!("setsid in the namespace's init: {e}"));
    }
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
        "init={outer} (pid 1 of its own PID namespace, leading its session) with helpers at pids 2 and 3: {}",
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
                "the PID namespace's init (pid 1) and its helpers kept their pids 2 and 3, their parent, process group and session over {ticks} checks; a new child got a new pid"
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
    crate::ns::run_in_child(wl, args, "the namespace's init", init_main)
}
