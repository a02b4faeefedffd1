//! `lsm`: the security labels of the major LSM (AppArmor or SELinux) of a process and its
//! child, and of a socket pair between them.
//!
//! At setup it reads the label of the workload (`/proc/self/attr/current`, and the
//! AppArmor-specific `/proc/self/attr/apparmor/current` where it exists), forks a helper
//! and reads its label, and asks for the peer label of a unix socket pair (`SO_PEERSEC`).
//! Every tick and on SIGTERM it reads them all again: criu must restore each task's label
//! (it records the profile or context of every task) and the sockets' peers must still
//! carry it. A kernel without an LSM that has labels is a setup failure naming that.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::protocol::Workload;
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "lsm";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const ATTRS: &[&str] = &["attr/current", "attr/apparmor/current"];

/// The labels of `pid` (`self` or a number) that can be read, as `(attr, label)`.
pub fn labels(pid: &str) -> Vec<(String, String)> {
    ATTRS
        .iter()
        .filter_map(|a| {
            let t = std::fs::read(format!("/proc/{pid}/{a}")).ok()?;
            let t = String::from_utf8_lossy(&t)
                .trim_end_matches(['\n', '\0'])
                .to_string();
            Some((a.to_string(), t))
        })
        .collect()
}

fn peersec(fd: &OwnedFd) -> Result<String, String> {
    let label = sys::getsockopt_bytes(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERSEC, 512)
        .map_err(|e| format!("SO_PEERSEC: {}", crate::protocol::errno_text(&e)))?;
    Ok(String::from_utf8_lossy(&label)
        .trim_end_matches(['\n', '\0'])
        .to_string())
}

struct Labelled {
    mine: Vec<(String, String)>,
    child: Helper,
    childs: Vec<(String, String)>,
    pair: (OwnedFd, OwnedFd),
    peer: Option<String>,
}

impl Labelled {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        p.expect_eq("the workload's labels", &self.mine, &labels("self"));
        let who = self.child.who();
        p.expect_eq(
            &format!("{who}: labels"),
            &self.childs,
            &labels(&self.child.pid.to_string()),
        );
        p.check(self.child.ask("ping").map(|_| ()));
        if let Some(want) = &self.peer {
            match peersec(&self.pair.0) {
                Ok(got) => p.expect_eq("socket pair: SO_PEERSEC", want, &got),
                Err(e) => p.push(format!("socket pair: {e}")),
            }
        }
        p.into_result()
    }
}

/// Reads the labels, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mine = labels("self");
    if mine.is_empty() {
        wl.setup_failed("no LSM label in /proc/self/attr/current: the kernel runs no LSM with labels (AppArmor, SELinux)");
    }
    let child = family::spawn("labelled child", |req| match req {
        "ping" => Ok("pong".into()),
        other => Err(format!("unknown request `{other}`")),
    })
    .unwrap_or_else(|e| wl.setup_failed(&e));
    let childs = labels(&child.pid.to_string());
    let pair = sys::socketpair(libc::SOCK_STREAM | libc::SOCK_CLOEXEC)
        .unwrap_or_else(|e| wl.setup_failed(&format!("socketpair: {e}")));
    // Not every LSM gives socket peers a label (AppArmor does from 5.x on).
    let peer = peersec(&pair.0).ok();
    let mut l = Labelled {
        mine,
        child,
        childs,
        pair,
        peer,
    };
    let detail = format!(
        "child={} label={:?} peer={:?}",
        l.child.pid,
        l.mine.first().map(|m| m.1.clone()).unwrap_or_default(),
        l.peer
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| l.check())
        .and_then(|n| l.check().map(|()| n));
    match outcome {
        Ok(ticks) => {
            l.child.finish()?;
            Ok(format!(
                "the workload, its child and their socket pair kept their LSM labels ({}) over {ticks} checks",
                l.mine.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", ")
            ))
        }
        Err(e) => {
            l.child.kill();
            Err(e)
        }
    }
}
