//! `tcpconn`: an established TCP connection on the loopback with data in flight both ways
//! (criu needs `--tcp-established`).
//!
//! The workload connects a client to its own listener, accepts the server side and closes
//! the listener. The server has a small receive buffer; the client writes until the kernel
//! refuses more (`EAGAIN`), so the server's receive queue is full and more data waits in
//! the client's send queue. The server writes 1000 bytes the client does not read. The
//! client has `TCP_NODELAY`; the server has `SO_KEEPALIVE` with `TCP_KEEPIDLE` 77.
//!
//! Every tick it bounds what is in flight in each direction (nothing is read before
//! SIGTERM): the receiver cannot hold more than was written, nor the sender's queue, and
//! together they hold at least what was written (a byte not yet in the receive queue is
//! not acknowledged, so it is still in the send queue). They may hold more: `SIOCOUTQ`
//! counts bytes sent but not acknowledged, which can already sit in the receive queue
//! (after a restore the whole unacknowledged tail is back in the send queue and is sent
//! again; the receiver drops what it has). It also checks that both sockets are
//! `ESTABLISHED`, keep their addresses and their options. On SIGTERM it checks the same,
//! then drains both directions: the bytes must be exactly what was written (order and
//! content), and once the sender's queue is empty (all acknowledged) not one byte more
//! may arrive. Then it sends a message each way.

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
    /// The most bytes seen counted at both ends at once (received, not yet acknowledged).
    both_ends: std::cell::Cell<usize>,
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
        both_ends: std::cell::Cell::new(0),
    })
}

/// Bytes at the receiver plus bytes in the sender's queue for one direction.
fn in_flight(rx: RawFd, tx: RawFd) -> Result<(usize, usize), String> {
    let inq = sys::queued_bytes(rx).map_err(|e| format!("SIOCINQ: {e}"))?;
    let outq = sys::unsent_bytes(tx).map_err(|e| format!("SIOCOUTQ: {e}"))?;
    Ok((inq, outq))
}

impl State {
    /// The two directions: label, receiving fd, sending fd, bytes written.
    fn directions(&self) -> [(&'static str, RawFd, RawFd, &[u8]); 2] {
        let (c, s) = (self.client.as_raw_fd(), self.server.as_raw_fd());
        [
            ("client -> server", s, c, &self.to_server),
            ("server -> client", c, s, &self.to_client),
        ]
    }

    /// Bounds on what is in flight: see the module documentation. An exact account is
    /// not possible while bytes may be counted at both ends; the drain on SIGTERM is.
    fn check_in_flight(&self, p: &mut Problems) {
        for (label, rx, tx, written) in self.directions() {
            let want = written.len();
            // The kernel may be moving a segment right now: look again before blaming.
            let mut last = None;
            for _ in 0..5 {
                match in_flight(rx, tx) {
                    Ok((inq, outq)) => match flight_problem(inq, outq, want) {
                        None => {
                            let twice = (inq + outq).saturating_sub(want);
                            self.both_ends.set(self.both_ends.get().max(twice));
                            last = None;
                            break;
                        }
                        Some(problem) => last = Some(problem),
                    },
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Some(problem) = last {
                p.push(format!("{label}: {problem}"));
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        self.check_in_flight(&mut p);
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

    /// After the receiver got all `want` bytes: waits until the sender's queue is empty
    /// (everything acknowledged, nothing left to send again), then nothing more may wait.
    fn nothing_more(rx: RawFd, tx: RawFd, want: usize) -> Result<(), String> {
        let start = Instant::now();
        loop {
            match sys::unsent_bytes(tx) {
                Ok(0) => break,
                Ok(n) if start.elapsed() > Duration::from_secs(5) => {
                    return Err(format!(
                        "the sender's queue still holds {n} bytes 5 s after the receiver got all {want} written"
                    ))
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("SIOCOUTQ: {}", errno_text(&e))),
            }
        }
        match sys::read_available(rx) {
            Ok(more) if more.is_empty() => Ok(()),
            Ok(more) => Err(format!(
                "{} bytes more than the {want} written arrived: {}",
                more.len(),
                crate::check::show_bytes(&more)
            )),
            Err(e) => Err(format!("read: {}", errno_text(&e))),
        }
    }

    fn drain_and_use(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for (label, rx, tx, want) in self.directions() {
            match Self::read_exactly(rx, want.len()) {
                Ok(got) => {
                    let same = compare_bytes(&format!("{label} stream"), want, &got);
                    let whole = same.is_ok();
                    p.check(same);
                    if whole {
                        p.check(
                            Self::nothing_more(rx, tx, want.len())
                                .map_err(|e| format!("{label}: {e}")),
                        );
                    }
                }
                Err(e) => p.push(format!("{label}: {e}")),
            }
        }
        for (label, rx, tx, _) in self.directions() {
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

/// What is wrong with `inq` bytes at the receiver and `outq` in the sender's queue when
/// `want` were written and none read; `None` when the numbers are possible.
fn flight_problem(inq: usize, outq: usize, want: usize) -> Option<String> {
    if inq > want {
        Some(format!(
            "{inq} bytes wait at the receiver, more than the {want} that were written and none read"
        ))
    } else if outq > want {
        Some(format!(
            "{outq} bytes are in the sender's queue, more than the {want} that were written and none read"
        ))
    } else if inq + outq < want {
        Some(format!(
            "{inq} bytes wait at the receiver and {outq} in the sender's queue, {} in all: {} of the {want} that were written and none read are missing",
            inq + outq,
            want - inq - outq
        ))
    } else {
        None
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
    let both = match st.both_ends.get() {
        0 => String::new(),
        n => {
            format!(" (up to {n} of them counted at both ends, received but not yet acknowledged)")
        }
    };
    Ok(format!(
        "the TCP connection stayed ESTABLISHED with its addresses and options over {ticks} checks; all {} + {BACK} bytes in flight arrived intact{both}, and new data still flows",
        st.to_server.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::flight_problem;

    #[test]
    fn bytes_counted_at_both_ends_are_possible() {
        // The numbers of a restored connection: 2620 bytes at the receiver are still
        // unacknowledged in the sender's queue.
        assert_eq!(flight_problem(10812, 28672, 36864), None);
        assert_eq!(flight_problem(8192, 28672, 36864), None);
        assert_eq!(flight_problem(0, 36864, 36864), None);
    }

    #[test]
    fn lost_or_made_up_bytes_are_not() {
        let lost = flight_problem(8092, 28672, 36864).unwrap();
        assert!(lost.contains("100 of the 36864"), "{lost}");
        let made_up = flight_problem(1100, 0, 1000).unwrap();
        assert!(
            made_up.starts_with("1100 bytes wait at the receiver, more than the 1000"),
            "{made_up}"
        );
        assert!(flight_problem(0, 1001, 1000).is_some());
    }
}
