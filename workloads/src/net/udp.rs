//! `udp`: UDP sockets on the loopback, with `--queued` datagrams waiting.
//!
//! `receiver` is bound to `127.0.0.1` (`SO_RCVBUF` set); `sender` is bound too and
//! connected to it. With `--queued N` the sender has sent N datagrams (5, 15, 25...
//! bytes) that the receiver has not read.
//!
//! Every tick it checks both sockets' addresses, the receiver's buffer size, and the
//! size of the next waiting datagram (`SIOCINQ`; 0 when none). On SIGTERM it checks the
//! same, receives every waiting datagram (each whole, in order, from the sender's
//! address), then sends one each way.
//!
//! criu 3.17 does not carry UDP receive queues (the kernel has no interface to restore
//! them), so with `--queued` above 0 a correct restore still loses them: the scenario
//! that queues datagrams is expected to fail with exactly that difference.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, show_bytes, Problems};
use crate::net::{self, addr_text, name_text};
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Program name.
pub const NAME: &str = "udp";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    steady::TICK_MS,
    Opt {
        name: "queued",
        metavar: "N",
        default: 0,
        min: 0,
        max: 64,
        help: "datagrams left waiting at the receiver",
    },
];

struct State {
    receiver: OwnedFd,
    sender: OwnedFd,
    datagrams: Vec<Vec<u8>>,
    recv_addr: String,
    send_addr: String,
    rcvbuf: i32,
}

/// One datagram and where it came from; `None` when nothing waits.
pub(crate) fn recv_from(fd: RawFd) -> std::io::Result<Option<(Vec<u8>, String)>> {
    let mut buf = vec![0u8; 65536];
    // SAFETY: plain old data; recvfrom fills at most the given sizes.
    unsafe {
        let mut from: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let n = libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            (&mut from as *mut libc::sockaddr_in).cast(),
            &mut len,
        );
        let Some(n) = crate::sys::unless_would_block(n)? else {
            return Ok(None);
        };
        buf.truncate(n);
        Ok(Some((buf, addr_text(&from))))
    }
}

pub(crate) fn send(fd: RawFd, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: the buffer is valid for its length.
    sys::cvt_long(unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), 0) } as i64).map(|_| ())
}

fn setup(queued: usize) -> Result<State, String> {
    let receiver = net::socket(libc::SOCK_DGRAM)?;
    sys::setsockopt_int(
        receiver.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        65536,
    )
    .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    net::bind(&receiver, &net::loopback(0))?;
    let at = net::name(receiver.as_raw_fd(), true).map_err(|e| format!("getsockname: {e}"))?;
    let sender = net::socket(libc::SOCK_DGRAM)?;
    net::bind(&sender, &net::loopback(0))?;
    net::connect(&sender, &at)?;
    let datagrams: Vec<Vec<u8>> = (0..queued)
        .map(|i| pattern(121 + i as u64, 5 + 10 * i))
        .collect();
    for d in &datagrams {
        send(sender.as_raw_fd(), d).map_err(|e| format!("send: {e}"))?;
    }
    Ok(State {
        rcvbuf: sys::getsockopt_int(receiver.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?,
        recv_addr: addr_text(&at),
        send_addr: name_text(sender.as_raw_fd(), true),
        receiver,
        sender,
        datagrams,
    })
}

impl State {
    fn who(&self) -> String {
        format!(
            "receiver (fd {}, {})",
            self.receiver.as_raw_fd(),
            self.recv_addr
        )
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let (r, s) = (self.receiver.as_raw_fd(), self.sender.as_raw_fd());
        for (what, got, want) in [
            (
                "receiver local address",
                name_text(r, true),
                &self.recv_addr,
            ),
            ("sender local address", name_text(s, true), &self.send_addr),
            ("sender peer address", name_text(s, false), &self.recv_addr),
        ] {
            p.expect_eq(what, want.clone(), got);
        }
        match sys::getsockopt_int(r, libc::SOL_SOCKET, libc::SO_RCVBUF) {
            Ok(v) => p.expect_eq(&format!("{}: SO_RCVBUF", self.who()), self.rcvbuf, v),
            Err(e) => p.push(format!("{}: SO_RCVBUF: {}", self.who(), errno_text(&e))),
        }
        let next = self.datagrams.first().map_or(0, |d| d.len());
        match sys::queued_bytes(r) {
            Ok(n) if n != next => p.push(format!(
                "{}: the next waiting datagram (SIOCINQ) is {n} bytes, expected {next} ({} datagrams were queued)",
                self.who(),
                self.datagrams.len()
            )),
            Ok(_) => {}
            Err(e) => p.push(format!("{}: SIOCINQ: {}", self.who(), errno_text(&e))),
        }
        p.into_result()
    }

    fn drain_and_use(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let r = self.receiver.as_raw_fd();
        let mut got = Vec::new();
        loop {
            match recv_from(r) {
                Ok(Some(d)) => got.push(d),
                Ok(None) => break,
                Err(e) => {
                    p.push(format!("{}: recvfrom: {}", self.who(), errno_text(&e)));
                    break;
                }
            }
        }
        let sizes = |v: &mut dyn Iterator<Item = usize>| {
            v.map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
        };
        if got.len() != self.datagrams.len() {
            p.push(format!(
                "{}: {} datagrams waited ([{}] bytes), expected {} ([{}] bytes)",
                self.who(),
                got.len(),
                sizes(&mut got.iter().map(|(d, _)| d.len())),
                self.datagrams.len(),
                sizes(&mut self.datagrams.iter().map(|d| d.len()))
            ));
        } else {
            for (i, (want, (d, from))) in self.datagrams.iter().zip(&got).enumerate() {
                p.check(compare_bytes(&format!("datagram #{}", i + 1), want, d));
                p.expect_eq(
                    &format!("datagram #{} source", i + 1),
                    self.send_addr.clone(),
                    from.clone(),
                );
            }
        }
        // A new datagram each way.
        let s = self.sender.as_raw_fd();
        match send(s, b"ping").map_err(|e| e.to_string()).and_then(|_| {
            let _ = sys::poll_one(&r, libc::POLLIN, 2000);
            recv_from(r).map_err(|e| e.to_string())
        }) {
            Ok(Some((d, _))) if d == b"ping" => {}
            other => p.push(format!(
                "sender -> receiver: a new datagram came back as {other:?}"
            )),
        }
        let back = net::name(s, true)
            .map_err(|e| e.to_string())
            .and_then(|to| {
                // SAFETY: a valid address and buffer.
                sys::cvt_long(unsafe {
                    libc::sendto(
                        r,
                        b"pong".as_ptr().cast(),
                        4,
                        0,
                        (&to as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                } as i64)
                .map_err(|e| e.to_string())?;
                let _ = sys::poll_one(&s, libc::POLLIN, 2000);
                recv_from(s).map_err(|e| e.to_string())
            });
        match back {
            Ok(Some((d, _))) if d == b"pong" => {}
            Ok(other) => p.push(format!(
                "receiver -> sender: a new datagram came back as {}",
                other.map_or("nothing".into(), |(d, _)| show_bytes(&d))
            )),
            Err(e) => p.push(format!("receiver -> sender: {e}")),
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let queued = args.get("queued") as usize;
    let st = setup(queued).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "receiver={} ({}) sender={} ({}, connected); {queued} datagrams queued",
        st.receiver.as_raw_fd(),
        st.recv_addr,
        st.sender.as_raw_fd(),
        st.send_addr
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.drain_and_use()?;
    Ok(format!(
        "2 UDP sockets kept their addresses and options over {ticks} checks; {queued} queued datagrams arrived whole and in order, and new ones pass both ways"
    ))
}
