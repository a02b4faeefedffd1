//! `packet`: an `AF_PACKET` socket bound to the loopback.
//!
//! `raw` is a `SOCK_RAW` packet socket for `ETH_P_IP` bound to `lo`, with
//! `PACKET_AUXDATA` on and `SO_RCVBUF` set. Every tick it checks the bound interface and
//! protocol (`getsockname`), the option and the buffer size. On SIGTERM it checks the same,
//! sends a UDP datagram to 127.0.0.1 and must see it go by on `lo` through the packet
//! socket (an IPv4 packet to the port it chose).

use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{args::Args, args::Opt, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "packet";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const RCVBUF: libc::c_int = 262144;
/// The UDP port the final check sends to.
const PORT: u16 = 47231;

fn proto() -> u16 {
    (libc::ETH_P_IP as u16).to_be()
}

fn bound(fd: RawFd) -> std::io::Result<libc::sockaddr_ll> {
    // SAFETY: getsockname fills at most `len` bytes of `a`.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    sys::cvt(unsafe {
        libc::getsockname(fd, (&mut a as *mut libc::sockaddr_ll).cast(), &mut len)
    })?;
    Ok(a)
}

struct Raw {
    fd: OwnedFd,
    ifindex: i32,
    rcvbuf: libc::c_int,
}

fn setup() -> Result<Raw, String> {
    let err = |what: &str, e: std::io::Error| format!("{what}: {}", errno_text(&e));
    // SAFETY: plain syscalls; the name is a C string.
    let ifindex = unsafe { libc::if_nametoindex(c"lo".as_ptr()) } as i32;
    if ifindex == 0 {
        return Err("no `lo` interface".into());
    }
    let fd = sys::owned(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            proto() as libc::c_int,
        )
    })
    .map_err(|e| err("socket(AF_PACKET, SOCK_RAW)", e))?;
    // SAFETY: a zeroed sockaddr_ll is valid; bind reads it.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = proto();
    a.sll_ifindex = ifindex;
    sys::cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&a as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map_err(|e| err("bind to lo", e))?;
    sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)
        .map_err(|e| err("PACKET_AUXDATA", e))?;
    sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF)
        .map_err(|e| err("SO_RCVBUF", e))?;
    let rcvbuf = sys::getsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF)
        .map_err(|e| err("SO_RCVBUF", e))?;
    Ok(Raw {
        fd,
        ifindex,
        rcvbuf,
    })
}

impl Raw {
    fn who(&self) -> String {
        format!("packet socket (fd {})", self.fd.as_raw_fd())
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let fd = self.fd.as_raw_fd();
        let who = self.who();
        match bound(fd) {
            Ok(a) => {
                p.expect_eq(
                    &format!("{who}: bound ifindex"),
                    self.ifindex,
                    a.sll_ifindex,
                );
                p.expect_eq(
                    &format!("{who}: bound protocol"),
                    format!("{:#06x}", u16::from_be(proto())),
                    format!("{:#06x}", u16::from_be(a.sll_protocol)),
                );
            }
            Err(e) => p.push(format!("{who}: getsockname: {}", errno_text(&e))),
        }
        match sys::getsockopt_int(fd, libc::SOL_PACKET, libc::PACKET_AUXDATA) {
            Ok(v) => p.expect_eq(&format!("{who}: PACKET_AUXDATA"), 1, v),
            Err(e) => p.push(format!("{who}: PACKET_AUXDATA: {}", errno_text(&e))),
        }
        match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF) {
            Ok(b) => p.expect_eq(&format!("{who}: SO_RCVBUF"), self.rcvbuf, b),
            Err(e) => p.push(format!("{who}: SO_RCVBUF: {}", errno_text(&e))),
        }
        p.into_result()
    }

    /// Sends a datagram to 127.0.0.1:PORT and waits to see its IPv4 packet on `lo`.
    fn sees_a_datagram(&self) -> Result<(), String> {
        let who = self.who();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("udp: {e}"))?;
        let mut buf = vec![0u8; 65536];
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            udp.send_to(b"crtest-packet", ("127.0.0.1", PORT))
                .map_err(|e| format!("udp send: {e}"))?;
            std::thread::sleep(Duration::from_millis(20));
            while let Ok(n) = sys::read(self.fd.as_raw_fd(), &mut buf) {
                // A frame of lo (a zeroed Ethernet header, IPv4, UDP): our port and payload
                // must be in it.
                let seen = &buf[..n];
                let port = PORT.to_be_bytes();
                if seen.windows(2).any(|w| w == port)
                    && seen.windows(13).any(|w| w == b"crtest-packet")
                {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "{who}: did not see a datagram to 127.0.0.1:{PORT} go by on lo in 5 s"
        ))
    }
}

/// Binds the socket, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let raw = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "raw={} ifindex={} rcvbuf={}",
        raw.fd.as_raw_fd(),
        raw.ifindex,
        raw.rcvbuf
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| raw.check())?;
    raw.check()?;
    raw.sees_a_datagram()?;
    Ok(format!(
        "the packet socket stayed bound to lo with PACKET_AUXDATA and its buffer over {ticks} checks, and saw a datagram go by"
    ))
}
