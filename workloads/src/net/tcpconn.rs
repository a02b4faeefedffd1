//! `tcpconn`: an established TCP connection on the loopback with data in flight both ways
//! (criu needs `--tcp-established`).
//!
//! The workload connects a client to its own listener, accepts the server side and closes
//! the listener. The server has a small receive buffer; the client writes until the kernel
//! refuses more (`EAGAIN`), so the server's receive queue is full and more data waits in
//! the client's send queue. The server writes 1000 bytes the client does not read. The
//! client has `TCP_NODELAY`; the server has `SO_KEEPALIVE` with `TCP_KEEPIDLE` 77.
//!
//! Every tick it checks that no byte was lost or made up in either direction (bytes queued
//! at the receiver plus bytes in the sender's send queue equal what was written), both
//! sockets are `ESTABLISHED`, keep their addresses and their options. On SIGTERM it checks
//! the same, reads everything on both sides and compares it byte for byte with what was
//! written, then sends a message each way.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::ipc::set_nonblocking;
use crate::net::{self, name_text, tcp_state, tcp_state_name};
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "tcpconn";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const BACK: usize = 1000;

struct State {
    client: OwnedFd,
    server: OwnedFd,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    names: Vec<(&'static str, RawFd, bool, String)>,
}

fn opt(fd: RawFd, level: libc::c_int, name: libc::c_int, what: &str) -> Result<i32, String> {
    sys::getsockopt_int(fd, level, name)
        .map_err(|e| format!("getsockopt {what}: {}", errno_text(&e)))
}

fn setup() -> Result<State, String> {
    let listener = net::socket(libc::SOCK_STREAM)?;
    let set = |fd: &OwnedFd, level, name, v, what: &str| {
        sys::setsockopt_int(fd.as_raw_fd(), level, name, v)
            .map_err(|e| format!("setsockopt {what}: {e}"))
    };
    set(
        &listener,
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        1,
        "SO_REUSEADDR",
    )?;
    set(
        &listener,
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        8192,
        "SO_RCVBUF",
    )?;
    net::bind(&listener, &net::loopback(0))?;
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::listen(listener.as_raw_fd(), 1) })
        .map_err(|e| format!("listen: {e}"))?;
    let at = net::name(listener.as_raw_fd(), true).map_err(|e| format!("getsockname: {e}"))?;
    let client = net::socket(libc::SOCK_STREAM)?;
    set(
        &client,
        libc::SOL_SOCKET,
        libc::SO_SNDBUF,
        16384,
        "SO_SNDBUF",
    )?;
    set(
        &client,
        libc::IPPROTO_TCP,
        libc::TCP_NODELAY,
        1,
        "TCP_NODELAY",
    )?;
    net::connect(&client, &at)?;
    // SAFETY: no address wanted.
    let server = sys::owned(unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })
    .map_err(|e| format!("accept: {e}"))?;
    drop(listener);
    set(
        &server,
        libc::SOL_SOCKET,
        libc::SO_KEEPALIVE,
        1,
        "SO_KEEPALIVE",
    )?;
    set(
        &server,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPIDLE,
        77,
        "TCP_KEEPIDLE",
    )?;
    set_nonblocking(&client)?;
    set_nonblocking(&server)?;

    // Fill the server's receive queue and then the client's send queue.
    let stream = pattern(111, 4 << 20);
    let mut sent = 0;
    let mut refused = 0;
    while refused < 5 && sent < stream.len() {
        match sys::write(
            client.as_raw_fd(),
            &stream[sent..(sent + 4096).min(stream.len())],
        ) {
            Ok(n) => {
                sent += n;
                refused = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                refused += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("client write: {e}")),
        }
    }
    let to_client = pattern(112, BACK);
    sys::write_all(server.as_raw_fd(), &to_client).map_err(|e| format!("server write: {e}"))?;
    std::thread::sleep(Duration::from_millis(10));
    let names = vec![
        (
            "client",
            client.as_raw_fd(),
            true,
            name_text(client.as_raw_fd(), true),
        ),
        (
            "client",
            client.as_raw_fd(),
            false,
            name_text(client.as_raw_fd(), false),
        ),
        (
            "server",
            server.as_raw_fd(),
            true,
            name_text(server.as_raw_fd(), true),
        ),
        (
            "server",
            server.as_raw_fd(),
            false,
            name_text(server.as_raw_fd(), false),
        ),
    ];
    Ok(State {
        client,
        server,
        to_server: stream[..sent].to_vec(),
        to_client,
        names,
    })
}

/// Bytes at the receiver plus bytes in the sender's queue for one direction.
fn in_flight(rx: RawFd, tx: RawFd) -> Result<(usize, usize), String> {
    let inq = sys::queued_bytes(rx).map_err(|e| format!("SIOCINQ: {e}"))?;
    let outq = sys::unsent_bytes(tx).map_err(|e| format!("SIOCOUTQ: {e}"))?;
    Ok((inq, outq))
}

impl State {
    fn check_conservation(&self, p: &mut Problems) {
        for (label, rx, tx, want) in [
            (
                "client -> server",
                self.server.as_raw_fd(),
                self.client.as_raw_fd(),
                self.to_server.len(),
            ),
            (
                "server -> client",
                self.client.as_raw_fd(),
                self.server.as_raw_fd(),
                self.to_client.len(),
            ),
        ] {
            // The kernel may be moving a segment right now: look again before blaming.
            let mut last = None;
            for _ in 0..5 {
                match in_flight(rx, tx) {
                    Ok((inq, outq)) if inq + outq == want => {
                        last = None;
                        break;
                    }
                    Ok(v) => last = Some(Ok(v)),
                    Err(e) => last = Some(Err(e)),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            match last {
                None => {}
                Some(Ok((inq, outq))) => p.push(format!(
                    "{label}: {inq} bytes wait at the receiver and {outq} in the sender's queue, {} in all, but {want} were written and none read",
                    inq + outq
                )),
                Some(Err(e)) => p.push(format!("{label}: {e}")),
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        self.check_conservation(&mut p);
        for (label, fd) in [
            ("client", self.client.as_raw_fd()),
            ("server", self.server.as_raw_fd()),
        ] {
            match tcp_state(fd) {
                Ok(1) => {}
                Ok(s) => p.push(format!(
                    "{label} (fd {fd}): TCP state {}, expected ESTABLISHED",
                    tcp_state_name(s)
                )),
                Err(e) => p.push(format!("{label} (fd {fd}): TCP_INFO: {}", errno_text(&e))),
            }
        }
        for (label, fd, local, want) in &self.names {
            let which = if *local {
                "local address"
            } else {
                "peer address"
            };
            p.expect_eq(
                &format!("{label} (fd {fd}): {which}"),
                want.clone(),
                name_text(*fd, *local),
            );
        }
        let (c, s) = (self.client.as_raw_fd(), self.server.as_raw_fd());
        for (label, fd, level, name, want) in [
            (
                "client TCP_NODELAY",
                c,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                1,
            ),
            (
                "server SO_KEEPALIVE",
                s,
                libc::SOL_SOCKET,
                libc::SO_KEEPALIVE,
                1,
            ),
            (
                "server TCP_KEEPIDLE",
                s,
                libc::IPPROTO_TCP,
                libc::TCP_KEEPIDLE,
                77,
            ),
        ] {
            if let Some(v) = p.take(opt(fd, level, name, label)) {
                p.expect_eq(label, want, v);
            }
        }
        p.into_result()
    }

    /// Reads `len` bytes from `fd`, waiting up to 5 s for them to arrive.
    fn read_exactly(fd: RawFd, len: usize) -> Result<Vec<u8>, String> {
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < len && start.elapsed() < Duration::from_secs(5) {
            let mut buf = vec![0u8; 64 * 1024];
            match sys::read(fd, &mut buf) {
                Ok(0) => return Err(format!("end of stream after {} of {len} bytes", got.len())),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = sys::poll_one(&fd, libc::POLLIN, 50);
                }
                Err(e) => return Err(format!("read: {}", errno_text(&e))),
            }
        }
        Ok(got)
    }

    fn drain_and_use(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let (c, s) = (self.client.as_raw_fd(), self.server.as_raw_fd());
        for (label, rx, want) in [
            ("client -> server", s, &self.to_server),
            ("server -> client", c, &self.to_client),
        ] {
            match Self::read_exactly(rx, want.len()) {
                Ok(got) => p.check(compare_bytes(&format!("{label} stream"), want, &got)),
                Err(e) => p.push(format!("{label}: {e}")),
            }
        }
        for (label, tx, rx) in [("client -> server", c, s), ("server -> client", s, c)] {
            let msg = format!("new message {label}");
            let result = sys::write_all(tx, msg.as_bytes())
                .map_err(|e| format!("write: {e}"))
                .and_then(|_| Self::read_exactly(rx, msg.len()));
            match result {
                Ok(got) if got == msg.as_bytes() => {}
                Ok(got) => p.push(format!(
                    "{label}: a new message came back as {}",
                    crate::check::show_bytes(&got)
                )),
                Err(e) => p.push(format!("{label}: a new message: {e}")),
            }
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let (inq, outq) = in_flight(st.server.as_raw_fd(), st.client.as_raw_fd()).unwrap_or((0, 0));
    let detail = format!(
        "client={} ({}) server={} ({}); client -> server {} bytes ({inq} at the server, {outq} in the client's send queue), server -> client {BACK} bytes",
        st.client.as_raw_fd(),
        st.names[0].3,
        st.server.as_raw_fd(),
        st.names[2].3,
        st.to_server.len()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.drain_and_use()?;
    Ok(format!(
        "the TCP connection stayed ESTABLISHED with its addresses and options over {ticks} checks; all {} + {BACK} bytes in flight arrived intact, and new data still flows",
        st.to_server.len()
    ))
}
