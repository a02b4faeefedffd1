//! `epoll`: an epoll instance watching pipes, sockets and an eventfd.
//!
//! | target | events | data | state |
//! |---|---|---|---|
//! | pipe read end | `EPOLLIN` | `0x1001` | 10 bytes waiting: ready |
//! | socket `b` | `EPOLLIN\|EPOLLRDHUP` | `0x1002` | 20 bytes waiting: ready |
//! | socket `a` | `EPOLLOUT\|EPOLLET` | `0x1003` | writable (edge-triggered) |
//! | eventfd | `EPOLLIN` | `0x1004` | count 0: not ready |
//! | second pipe | `EPOLLIN\|EPOLLONESHOT` | `0x1005` | empty: not ready |
//!
//! Every tick it compares the interest list in the epoll fdinfo (target fd, events, data)
//! with what was registered, and polls with `epoll_wait(0)`: the two level-triggered
//! ready targets must be reported with `EPOLLIN`, the idle ones not (the edge-triggered
//! one may or may not: a restore registers it afresh). On SIGTERM it checks the same, then
//! makes the eventfd and the second pipe ready (both must be reported, the one-shot only
//! once), and empties the first pipe (it must drop out).

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::files::fd_err;
use crate::protocol::Workload;
use crate::{procfs, steady, sys};
use nix::libc;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Program name.
pub const NAME: &str = "epoll";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const PIPE: u64 = 0x1001;
const SOCK_IN: u64 = 0x1002;
const SOCK_OUT_ET: u64 = 0x1003;
const EVENTFD: u64 = 0x1004;
const ONESHOT: u64 = 0x1005;

fn data_name(data: u64) -> &'static str {
    match data {
        PIPE => "pipe",
        SOCK_IN => "socket b",
        SOCK_OUT_ET => "socket a (edge-triggered)",
        EVENTFD => "eventfd",
        ONESHOT => "second pipe (one-shot)",
        _ => "unknown target",
    }
}

/// (target fd, events, data) of every registration, by data.
type Interest = BTreeMap<u64, (RawFd, u32)>;

struct State {
    ep: OwnedFd,
    pipe: (OwnedFd, OwnedFd),
    socks: (OwnedFd, OwnedFd),
    efd: OwnedFd,
    second: (OwnedFd, OwnedFd),
    interest: Interest,
}

fn add(ep: &OwnedFd, fd: RawFd, events: u32, data: u64) -> Result<(), String> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: a valid event struct.
    sys::cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
        .map(|_| ())
        .map_err(|e| format!("epoll_ctl(ADD {}): {e}", data_name(data)))
}

/// The interest list as fdinfo shows it.
fn interest(ep: &OwnedFd) -> Result<Interest, String> {
    let info = procfs::fdinfo(ep.as_raw_fd())?;
    let mut out = Interest::new();
    for line in procfs::lines_with(&info, "tfd:") {
        let get = |k| procfs::word_value(line, k);
        let (Some(tfd), Some(events), Some(data)) = (get("tfd"), get("events"), get("data")) else {
            return Err(format!("cannot parse epoll fdinfo line `{line}`"));
        };
        let parsed = (
            tfd.parse::<RawFd>(),
            u32::from_str_radix(events, 16),
            u64::from_str_radix(data, 16),
        );
        match parsed {
            (Ok(t), Ok(e), Ok(d)) => {
                out.insert(d, (t, e));
            }
            _ => return Err(format!("cannot parse epoll fdinfo line `{line}`")),
        }
    }
    Ok(out)
}

/// `epoll_wait` without waiting: data -> events.
fn ready(ep: &OwnedFd) -> Result<BTreeMap<u64, u32>, String> {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
    // SAFETY: a valid buffer of 16 events.
    let n = sys::cvt(unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 16, 0) })
        .map_err(|e| format!("epoll_wait: {e}"))?;
    Ok(evs[..n as usize]
        .iter()
        .map(|e| (e.u64, e.events))
        .collect())
}

fn show(ready: &BTreeMap<u64, u32>) -> String {
    let v: Vec<String> = ready
        .iter()
        .map(|(d, e)| format!("{} ({d:#x}) events {e:#x}", data_name(*d)))
        .collect();
    format!("[{}]", v.join(", "))
}

fn setup() -> Result<State, String> {
    // SAFETY: plain syscalls.
    let ep = sys::owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
        .map_err(|e| format!("epoll_create1: {e}"))?;
    let pipe = sys::pipe(libc::O_NONBLOCK | libc::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    sys::write_all(pipe.1.as_raw_fd(), b"ten bytes!").map_err(|e| format!("write: {e}"))?;
    let socks = sys::socketpair(libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        .map_err(|e| format!("socketpair: {e}"))?;
    sys::write_all(socks.0.as_raw_fd(), b"twenty bytes of data")
        .map_err(|e| format!("write: {e}"))?;
    let efd = sys::owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
        .map_err(|e| format!("eventfd: {e}"))?;
    let second = sys::pipe(libc::O_NONBLOCK | libc::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (inn, out, et, rdhup, oneshot) = (
        libc::EPOLLIN as u32,
        libc::EPOLLOUT as u32,
        libc::EPOLLET as u32,
        libc::EPOLLRDHUP as u32,
        libc::EPOLLONESHOT as u32,
    );
    add(&ep, pipe.0.as_raw_fd(), inn, PIPE)?;
    add(&ep, socks.1.as_raw_fd(), inn | rdhup, SOCK_IN)?;
    add(&ep, socks.0.as_raw_fd(), out | et, SOCK_OUT_ET)?;
    add(&ep, efd.as_raw_fd(), inn, EVENTFD)?;
    add(&ep, second.0.as_raw_fd(), inn | oneshot, ONESHOT)?;
    let interest = interest(&ep)?;
    if interest.len() != 5 {
        return Err(format!(
            "the epoll fdinfo lists {} targets, expected 5",
            interest.len()
        ));
    }
    Ok(State {
        ep,
        pipe,
        socks,
        efd,
        second,
        interest,
    })
}

impl State {
    fn check_interest(&self, p: &mut Problems, want: &Interest) {
        match interest(&self.ep) {
            Ok(got) if &got == want => {}
            Ok(got) => {
                for (d, w) in want {
                    match got.get(d) {
                        Some(g) if g == w => {}
                        Some(g) => p.push(format!(
                            "epoll fd {}: {} ({d:#x}) registered as fd {} events {:#x}, expected fd {} events {:#x}",
                            self.ep.as_raw_fd(),
                            data_name(*d),
                            g.0,
                            g.1,
                            w.0,
                            w.1
                        )),
                        None => p.push(format!(
                            "epoll fd {}: {} ({d:#x}) is no longer in the interest list",
                            self.ep.as_raw_fd(),
                            data_name(*d)
                        )),
                    }
                }
                for (d, g) in &got {
                    if !want.contains_key(d) {
                        p.push(format!(
                            "epoll fd {}: unexpected target fd {} events {:#x} data {d:#x}",
                            self.ep.as_raw_fd(),
                            g.0,
                            g.1
                        ));
                    }
                }
            }
            Err(e) => p.push(e),
        }
    }

    fn check_ready(&self, p: &mut Problems, yes: &[u64], no: &[u64]) -> Option<BTreeMap<u64, u32>> {
        let got = p.take(ready(&self.ep))?;
        for d in yes {
            if got.get(d).map_or(true, |e| e & libc::EPOLLIN as u32 == 0) {
                p.push(format!(
                    "epoll fd {}: {} ({d:#x}) not reported ready for EPOLLIN; reported: {}",
                    self.ep.as_raw_fd(),
                    data_name(*d),
                    show(&got)
                ));
            }
        }
        for d in no {
            if got.contains_key(d) {
                p.push(format!(
                    "epoll fd {}: {} ({d:#x}) reported ready but must not be; reported: {}",
                    self.ep.as_raw_fd(),
                    data_name(*d),
                    show(&got)
                ));
            }
        }
        Some(got)
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        self.check_interest(&mut p, &self.interest);
        self.check_ready(&mut p, &[PIPE, SOCK_IN], &[EVENTFD, ONESHOT]);
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let mut p = Problems::new();
        p.check(
            sys::write_all(self.efd.as_raw_fd(), &1u64.to_ne_bytes())
                .map_err(|e| fd_err("eventfd", self.efd.as_raw_fd(), "write", &e)),
        );
        p.check(
            sys::write_all(self.second.1.as_raw_fd(), b"x")
                .map_err(|e| fd_err("second pipe", self.second.1.as_raw_fd(), "write", &e)),
        );
        self.check_ready(&mut p, &[PIPE, SOCK_IN, EVENTFD, ONESHOT], &[]);
        // One-shot: reported once, then disarmed though still readable.
        self.check_ready(&mut p, &[PIPE, SOCK_IN, EVENTFD], &[ONESHOT]);
        let _ = sys::read_available(self.pipe.0.as_raw_fd());
        self.check_ready(&mut p, &[SOCK_IN, EVENTFD], &[PIPE, ONESHOT]);
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "epoll={} watching pipe={} b={} a={} eventfd={} pipe2={}",
        st.ep.as_raw_fd(),
        st.pipe.0.as_raw_fd(),
        st.socks.1.as_raw_fd(),
        st.socks.0.as_raw_fd(),
        st.efd.as_raw_fd(),
        st.second.0.as_raw_fd()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "the epoll interest list (5 targets, events and data) and its ready set held over {ticks} checks; new events, one-shot and level-triggered rules still work"
    ))
}
