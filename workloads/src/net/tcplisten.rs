//! `tcplisten`: a listening TCP socket that must still accept.
//!
//! The workload listens on `127.0.0.1` (a port the kernel picks, `SO_REUSEADDR`, backlog
//! 16) and makes no connection before SIGTERM, so a checkpoint needs no
//! `--tcp-established`. Every tick it checks the socket still listens (`SO_ACCEPTCONN`,
//! state `LISTEN`), on the same address, with its option, and that no connection waits. On
//! SIGTERM it checks the same, then connects to it twice: each connection must be
//! accepted and carry data both ways.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::net::{self, name_text, tcp_state, tcp_state_name};
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "tcplisten";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

struct State {
    listener: OwnedFd,
    addr: String,
}

fn setup() -> Result<State, String> {
    let listener = net::socket(libc::SOCK_STREAM | libc::SOCK_NONBLOCK)?;
    sys::setsockopt_int(
        listener.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        1,
    )
    .map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    net::bind(&listener, &net::loopback(0))?;
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::listen(listener.as_raw_fd(), 16) })
        .map_err(|e| format!("listen: {e}"))?;
    let addr = name_text(listener.as_raw_fd(), true);
    Ok(State { listener, addr })
}

fn accept(l: &OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: no address wanted.
    sys::owned(unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })
}

impl State {
    fn who(&self) -> String {
        format!("listener (fd {}, {})", self.listener.as_raw_fd(), self.addr)
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let fd = self.listener.as_raw_fd();
        match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) {
            Ok(1) => {}
            Ok(v) => p.push(format!(
                "{}: SO_ACCEPTCONN is {v}, it no longer listens",
                self.who()
            )),
            Err(e) => p.push(format!("{}: SO_ACCEPTCONN: {}", self.who(), errno_text(&e))),
        }
        match tcp_state(fd) {
            Ok(10) => {}
            Ok(s) => p.push(format!(
                "{}: TCP state {}, expected LISTEN",
                self.who(),
                tcp_state_name(s)
            )),
            Err(e) => p.push(format!("{}: TCP_INFO: {}", self.who(), errno_text(&e))),
        }
        p.expect_eq(
            &format!("{}: local address", self.who()),
            self.addr.clone(),
            name_text(fd, true),
        );
        match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR) {
            Ok(v) => p.expect_eq(&format!("{}: SO_REUSEADDR", self.who()), 1, v),
            Err(e) => p.push(format!("{}: SO_REUSEADDR: {}", self.who(), errno_text(&e))),
        }
        match accept(&self.listener) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => p.push(format!("{}: accept: {}", self.who(), errno_text(&e))),
            Ok(c) => p.push(format!(
                "{}: accepted a connection from {} nobody made",
                self.who(),
                name_text(c.as_raw_fd(), false)
            )),
        }
        p.into_result()
    }

    fn connect_once(&self, n: usize) -> Result<(), String> {
        let at =
            net::name(self.listener.as_raw_fd(), true).map_err(|e| format!("getsockname: {e}"))?;
        let client = net::socket(libc::SOCK_STREAM)?;
        net::connect(&client, &at)?;
        if sys::poll_one(&self.listener, libc::POLLIN, 5000).map_err(|e| format!("poll: {e}"))? == 0
        {
            return Err("the connection did not show up within 5 s".into());
        }
        let server = accept(&self.listener).map_err(|e| format!("accept: {}", errno_text(&e)))?;
        for (from, to, msg) in [
            (&client, &server, "hello listener"),
            (&server, &client, "hello client"),
        ] {
            sys::write_all(from.as_raw_fd(), msg.as_bytes()).map_err(|e| format!("write: {e}"))?;
            let mut buf = vec![0u8; msg.len()];
            let mut got = 0;
            while got < msg.len() {
                match sys::read(to.as_raw_fd(), &mut buf[got..]) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            if &buf[..got] != msg.as_bytes() {
                return Err(format!(
                    "connection {n}: `{msg}` arrived as {}",
                    crate::check::show_bytes(&buf[..got])
                ));
            }
        }
        Ok(())
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "listener={} on {} (backlog 16, no connection)",
        st.listener.as_raw_fd(),
        st.addr
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    for n in 1..=2 {
        st.connect_once(n)
            .map_err(|e| format!("{}: new connection {n}: {e}", st.who()))?;
    }
    Ok(format!(
        "the socket kept listening on {} over {ticks} checks and accepted 2 new connections that carried data both ways",
        st.addr
    ))
}
