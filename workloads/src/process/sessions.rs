//! `sessions`: process groups and sessions inside one tree.
//!
//! The workload (a session leader, as the harness starts it) forks helpers:
//!
//! | helper | does | pgid | sid |
//! |---|---|---|---|
//! | A | `setpgid(0, 0)` | A | workload |
//! | B | nothing | workload | workload |
//! | E | `setpgid(0, A)`, joins A's group | A | workload |
//! | C | `setsid()` | C | C |
//! | D (C's child) | `setpgid(0, 0)` | D | C |
//!
//! Every tick it asks each helper for its pid, process group, session and parent, and
//! compares them with what they were at start (and its own group and session with its
//! pid). On SIGTERM it checks the same, then moves B into A's group (`setpgid` must still
//! work) and ends the helpers.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::Workload;
use crate::steady;
use nix::unistd::{getpgrp, getpid, getppid, getsid, setpgid, setsid, Pid};

/// Program name.
pub const NAME: &str = "sessions";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// `pid pgid sid ppid` of the calling process.
fn my_ids() -> String {
    format!(
        "{} {} {} {}",
        getpid(),
        getpgrp(),
        getsid(None).map(|s| s.as_raw()).unwrap_or(-1),
        getppid()
    )
}

/// A helper answering `ids`, `join PGID` and (once) `init`, which runs `init`.
fn spawn_member(name: &str, init: impl FnOnce() -> Result<(), String>) -> Result<Helper, String> {
    let mut init = Some(init);
    let mut h = family::spawn(name, move |req| {
        let words: Vec<&str> = req.split_whitespace().collect();
        match words.as_slice() {
            ["init"] => init.take().map_or(Ok(()), |f| f()).map(|_| "done".into()),
            ["ids"] => Ok(my_ids()),
            ["join", pgid] => {
                let pgid: i32 = pgid.parse().map_err(|_| format!("bad pgid {pgid}"))?;
                setpgid(Pid::from_raw(0), Pid::from_raw(pgid))
                    .map(|_| "done".into())
                    .map_err(|e| format!("setpgid(0, {pgid}): {e}"))
            }
            _ => Err(format!("unknown request `{req}`")),
        }
    })?;
    h.ask("init")?;
    Ok(h)
}

/// Helper C: a new session, with its own helper D in a new group of that session.
fn spawn_session_leader() -> Result<Helper, String> {
    let mut d: Option<Helper> = None;
    let mut h = family::spawn("helper C (session leader)", move |req| match req {
        "init" => {
            setsid().map_err(|e| format!("setsid: {e}"))?;
            d = Some(spawn_member("helper D (in C's session)", || {
                setpgid(Pid::from_raw(0), Pid::from_raw(0))
                    .map_err(|e| format!("setpgid(0, 0): {e}"))
            })?);
            Ok("done".into())
        }
        "ids" => Ok(my_ids()),
        "d ids" => d.as_mut().ok_or("no helper D")?.ask("ids"),
        "d exit" => d
            .take()
            .ok_or("no helper D")?
            .finish()
            .map(|_| "done".into()),
        _ => Err(format!("unknown request `{req}`")),
    })?;
    h.ask("init")?;
    Ok(h)
}

/// (pid, pgid, sid, ppid)
type Ids = (i32, i32, i32, i32);

fn parse_ids(who: &str, text: &str) -> Result<Ids, String> {
    let v: Vec<i32> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match v.as_slice() {
        [a, b, c, d] => Ok((*a, *b, *c, *d)),
        _ => Err(format!("{who}: bad ids `{text}`")),
    }
}

struct Member {
    label: &'static str,
    helper: Helper,
    ids: Ids,
}

struct State {
    a: Member,
    b: Member,
    e: Member,
    c: Member,
    d_ids: Ids,
}

fn ask_ids(h: &mut Helper, req: &str) -> Result<Ids, String> {
    let who = h.who();
    parse_ids(&who, &h.ask(req)?)
}

fn setup() -> Result<State, String> {
    let me = getpid();
    if getsid(None).ok() != Some(me) {
        return Err(format!(
            "the workload must be a session leader (pid {me}, session {:?})",
            getsid(None)
        ));
    }
    let mut a = spawn_member("helper A (own group)", || {
        setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(|e| format!("setpgid(0, 0): {e}"))
    })?;
    let a_pid = a.pid;
    let mut b = spawn_member("helper B (workload's group)", || Ok(()))?;
    let mut e = spawn_member("helper E (in A's group)", move || {
        setpgid(Pid::from_raw(0), a_pid).map_err(|e| format!("setpgid(0, {a_pid}): {e}"))
    })?;
    let mut c = spawn_session_leader()?;
    let d_ids = ask_ids(&mut c, "d ids")?;
    let st = State {
        a: Member {
            label: "A",
            ids: ask_ids(&mut a, "ids")?,
            helper: a,
        },
        b: Member {
            label: "B",
            ids: ask_ids(&mut b, "ids")?,
            helper: b,
        },
        e: Member {
            label: "E",
            ids: ask_ids(&mut e, "ids")?,
            helper: e,
        },
        c: Member {
            label: "C",
            ids: ask_ids(&mut c, "ids")?,
            helper: c,
        },
        d_ids,
    };
    // The shape itself, once.
    let m = me.as_raw();
    let (a, c) = (st.a.ids.0, st.c.ids.0);
    let want = [
        ("A", st.a.ids, (a, a, m, m)),
        ("B", st.b.ids, (st.b.ids.0, m, m, m)),
        ("E", st.e.ids, (st.e.ids.0, a, m, m)),
        ("C", st.c.ids, (c, c, c, m)),
        ("D", st.d_ids, (st.d_ids.0, st.d_ids.0, c, c)),
    ];
    for (label, got, want) in want {
        if got != want {
            return Err(format!(
                "helper {label}: (pid, pgid, sid, ppid) is {got:?}, expected {want:?}"
            ));
        }
    }
    Ok(st)
}

impl State {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        let me = getpid();
        p.expect_eq("workload's process group", me, getpgrp());
        p.expect_eq("workload's session", Ok(me), getsid(None));
        for m in [&mut self.a, &mut self.b, &mut self.e, &mut self.c] {
            if let Some(ids) = p.take(ask_ids(&mut m.helper, "ids")) {
                p.expect_eq(
                    &format!("helper {} (pid, pgid, sid, ppid)", m.label),
                    m.ids,
                    ids,
                );
            }
        }
        if let Some(ids) = p.take(ask_ids(&mut self.c.helper, "d ids")) {
            p.expect_eq("helper D (pid, pgid, sid, ppid)", self.d_ids, ids);
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let a = self.a.ids.0;
        self.b.helper.ask(&format!("join {a}"))?;
        let ids = ask_ids(&mut self.b.helper, "ids")?;
        if ids.1 != a {
            return Err(format!(
                "helper B: after setpgid(0, {a}) its group is {}, expected {a}",
                ids.1
            ));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), String> {
        let mut p = Problems::new();
        p.take(self.c.helper.ask("d exit"));
        for m in [self.a, self.b, self.e, self.c] {
            p.check(m.helper.finish());
        }
        p.into_result()
    }

    fn kill(mut self) {
        let _ = self.c.helper.ask("d exit");
        for m in [self.a, self.b, self.e, self.c] {
            m.helper.kill();
        }
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "helpers: a={} b={} e={} c={} d={} (C leads its own session)",
        st.a.ids.0, st.b.ids.0, st.e.ids.0, st.c.ids.0, st.d_ids.0
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| st.check()).and_then(|t| {
        st.check()?;
        st.exercise()?;
        Ok(t)
    });
    match outcome {
        Ok(ticks) => {
            st.finish()?;
            Ok(format!(
                "6 processes in 2 sessions and 4 process groups kept their pids, groups, sessions and parents over {ticks} checks; setpgid still works"
            ))
        }
        Err(e) => {
            st.kill();
            Err(e)
        }
    }
}
