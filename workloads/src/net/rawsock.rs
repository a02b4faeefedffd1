//! `rawsock`: raw IP sockets (needs root, `CAP_NET_RAW`).
//!
//! An ICMP raw socket bound to 127.0.0.1 whose `ICMP_FILTER` lets only echo replies in; an
//! ICMPv6 raw socket with an `ICMPV6_FILTER` of its own; a raw socket of an experimental
//! protocol (253) with `IP_HDRINCL` and `IP_NODEFRAG` on. Every tick it checks each socket's
//! bound address and options. On SIGTERM it checks the same and pings 127.0.0.1 through
//! the ICMP socket: the kernel's echo reply (and not the request) must come back through
//! the filter with the identifier and sequence it sent.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{net, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "rawsock";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// `ICMP_FILTER` of `SOL_RAW`, `ICMPV6_FILTER` of `SOL_ICMPV6`.
pub const ICMP_FILTER: libc::c_int = 1;
/// Every ICMP type blocked but echo reply (type 0).
pub const FILTER4: u32 = !1;
/// The ICMPv6 filter: echo request (128) and reply (129) pass, the rest is blocked.
pub const FILTER6: [u32; 8] = [!0, !0, !0, !0, !0b11, !0, !0, !0];
const EXPERIMENTAL: libc::c_int = 253;

fn set_bytes(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &[u8]) -> std::io::Result<()> {
    // SAFETY: setsockopt reads `v`.
    sys::cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            v.as_ptr().cast(),
            v.len() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn words(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

struct Raw {
    /// The ICMP socket's bound address (a raw socket's port is its protocol).
    icmp_name: String,
    icmp: OwnedFd,
    icmp6: OwnedFd,
    hdrincl: OwnedFd,
}

fn raw(family: libc::c_int, proto: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: plain syscall.
    sys::owned(unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            proto,
        )
    })
    .map_err(|e| {
        format!(
            "socket(SOCK_RAW, {proto}): {} (needs CAP_NET_RAW)",
            errno_text(&e)
        )
    })
}

fn setup() -> Result<Raw, String> {
    let e = |what: &str, err: std::io::Error| format!("{what}: {}", errno_text(&err));
    let icmp = raw(libc::AF_INET, libc::IPPROTO_ICMP)?;
    net::bind(&icmp, &net::loopback(0))?;
    set_bytes(
        icmp.as_raw_fd(),
        libc::SOL_RAW,
        ICMP_FILTER,
        &FILTER4.to_ne_bytes(),
    )
    .map_err(|err| e("ICMP_FILTER", err))?;
    let icmp6 = raw(libc::AF_INET6, libc::IPPROTO_ICMPV6)?;
    set_bytes(
        icmp6.as_raw_fd(),
        libc::SOL_ICMPV6,
        ICMP_FILTER,
        &words(&FILTER6),
    )
    .map_err(|err| e("ICMPV6_FILTER", err))?;
    let hdrincl = raw(libc::AF_INET, EXPERIMENTAL)?;
    sys::setsockopt_int(hdrincl.as_raw_fd(), libc::IPPROTO_IP, libc::IP_HDRINCL, 1)
        .map_err(|err| e("IP_HDRINCL", err))?;
    sys::setsockopt_int(hdrincl.as_raw_fd(), libc::IPPROTO_IP, libc::IP_NODEFRAG, 1)
        .map_err(|err| e("IP_NODEFRAG", err))?;
    let icmp_name = net::name_text(icmp.as_raw_fd(), true);
    Ok(Raw {
        icmp_name,
        icmp,
        icmp6,
        hdrincl,
    })
}

impl Raw {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let i = self.icmp.as_raw_fd();
        match sys::getsockopt_bytes(i, libc::SOL_RAW, ICMP_FILTER, 4) {
            Ok(v) => p.expect_eq(
                &format!("ICMP raw socket (fd {i}): ICMP_FILTER"),
                FILTER4.to_ne_bytes().to_vec(),
                v,
            ),
            Err(e) => p.push(format!(
                "ICMP raw socket (fd {i}): ICMP_FILTER: {}",
                errno_text(&e)
            )),
        }
        p.expect_eq(
            &format!("ICMP raw socket (fd {i}): bound address"),
            self.icmp_name.clone(),
            net::name_text(i, true),
        );
        let i6 = self.icmp6.as_raw_fd();
        match sys::getsockopt_bytes(i6, libc::SOL_ICMPV6, ICMP_FILTER, 32) {
            Ok(v) => p.expect_eq(
                &format!("ICMPv6 raw socket (fd {i6}): ICMPV6_FILTER"),
                words(&FILTER6),
                v,
            ),
            Err(e) => p.push(format!(
                "ICMPv6 raw socket (fd {i6}): ICMPV6_FILTER: {}",
                errno_text(&e)
            )),
        }
        let h = self.hdrincl.as_raw_fd();
        for (name, opt) in [
            ("IP_HDRINCL", libc::IP_HDRINCL),
            ("IP_NODEFRAG", libc::IP_NODEFRAG),
        ] {
            match sys::getsockopt_int(h, libc::IPPROTO_IP, opt) {
                Ok(v) => p.expect_eq(
                    &format!("raw socket of protocol 253 (fd {h}): {name}"),
                    1,
                    v,
                ),
                Err(e) => p.push(format!(
                    "raw socket of protocol 253 (fd {h}): {name}: {}",
                    errno_text(&e)
                )),
            }
        }
        p.into_result()
    }

    /// Pings 127.0.0.1 and waits for the reply through the filter.
    fn ping(&self) -> Result<(), String> {
        let id: u16 = (std::process::id() & 0xffff) as u16;
        let seq: u16 = 7;
        let mut pkt = vec![8u8, 0, 0, 0];
        pkt.extend_from_slice(&id.to_be_bytes());
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(b"crtest rawsock ping");
        let sum = checksum(&pkt);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
        let to = net::loopback(0);
        // SAFETY: sendto reads the packet and the address.
        sys::cvt(unsafe {
            libc::sendto(
                self.icmp.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ) as libc::c_int
        })
        .map_err(|e| format!("ICMP raw socket: sendto: {}", errno_text(&e)))?;
        let end = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            match sys::read(self.icmp.as_raw_fd(), &mut buf) {
                Ok(n) => {
                    // An IPv4 header (IHL words) then the ICMP message.
                    let ihl = usize::from(buf[0] & 0xf) * 4;
                    let icmp = &buf[ihl.min(n)..n];
                    if icmp.len() < 8 {
                        continue;
                    }
                    if icmp[0] != 0 {
                        return Err(format!(
                            "ICMP raw socket: ICMP type {} came through a filter that passes only echo replies",
                            icmp[0]
                        ));
                    }
                    if icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(format!("ICMP raw socket: read: {}", errno_text(&e))),
            }
        }
        Err("ICMP raw socket: no echo reply from 127.0.0.1 within 5 s".into())
    }
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Opens the sockets, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let raw = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    raw.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "icmp={} icmp6={} hdrincl={}",
        raw.icmp.as_raw_fd(),
        raw.icmp6.as_raw_fd(),
        raw.hdrincl.as_raw_fd()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| raw.check())?;
    raw.check()?;
    raw.ping()?;
    Ok(format!(
        "ICMP, ICMPv6 and header-including raw sockets kept their filters, options and address over {ticks} checks; a ping came back through the filter"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internet_checksum() {
        // An echo request with id 1 seq 1 and no payload: 0xf7fd.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
        // A message holding its own checksum sums to zero.
        assert_eq!(checksum(&[8, 0, 0xf7, 0xfd, 0, 1, 0, 1]), 0);
    }
}
