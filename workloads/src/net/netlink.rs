//! `netlink`: a bound `NETLINK_ROUTE` socket with multicast memberships.
//!
//! `route` is bound with an address the kernel picks (its port id) and the groups
//! `RTMGRP_TC | RTMGRP_IPV4_MROUTE`, and joins `RTNLGRP_IPV6_MROUTE` with
//! `NETLINK_ADD_MEMBERSHIP`; `SO_RCVBUF` is set. The groups are ones nothing in the guest
//! sends to (traffic control, multicast routing): criu 3.17 refuses a netlink socket with
//! a message waiting (`netlink: The socket has data to read`), and link or address events
//! (an IPv6 address coming up on a bridge) would arrive at any time. Every tick it checks the port id and
//! groups (`getsockname`), the memberships (`NETLINK_LIST_MEMBERSHIPS`) and the buffer
//! size. On SIGTERM it checks the same, then asks the kernel for its links (an
//! `RTM_GETLINK` dump) through the socket: every answer must be addressed to its port id,
//! and the loopback must be among them.

use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{args::Args, args::Opt, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Program name.
pub const NAME: &str = "netlink";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const GROUPS: u32 = (libc::RTMGRP_TC | libc::RTMGRP_IPV4_MROUTE) as u32;
/// Joined with `NETLINK_ADD_MEMBERSHIP` (a group number, not a mask).
const JOINED: u32 = libc::RTNLGRP_IPV6_MROUTE;
const RCVBUF: libc::c_int = 65536;

fn addr(fd: RawFd) -> std::io::Result<libc::sockaddr_nl> {
    // SAFETY: getsockname fills at most `len` bytes of `a`.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    sys::cvt(unsafe {
        libc::getsockname(fd, (&mut a as *mut libc::sockaddr_nl).cast(), &mut len)
    })?;
    Ok(a)
}

/// The memberships as a bit mask of group numbers 1..=32 (bit `n - 1` for group `n`).
pub fn memberships(fd: RawFd) -> std::io::Result<u32> {
    let mut v = [0u32; 4];
    let mut len = std::mem::size_of_val(&v) as libc::socklen_t;
    // SAFETY: getsockopt fills at most `len` bytes.
    sys::cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_NETLINK,
            libc::NETLINK_LIST_MEMBERSHIPS,
            v.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    Ok(v[0])
}

struct Route {
    fd: OwnedFd,
    portid: u32,
    /// `nl_groups` of getsockname: the bound groups and the joined ones below 33.
    groups: u32,
    memberships: u32,
    rcvbuf: libc::c_int,
}

fn setup() -> Result<Route, String> {
    let err = |what: &str, e: std::io::Error| format!("{what}: {}", errno_text(&e));
    // SAFETY: plain syscall.
    let fd = sys::owned(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })
    .map_err(|e| err("socket(AF_NETLINK, NETLINK_ROUTE)", e))?;
    // SAFETY: a zeroed sockaddr_nl is valid; bind reads it.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    a.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    a.nl_groups = GROUPS;
    sys::cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&a as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })
    .map_err(|e| err("bind", e))?;
    sys::setsockopt_int(
        fd.as_raw_fd(),
        libc::SOL_NETLINK,
        libc::NETLINK_ADD_MEMBERSHIP,
        JOINED as libc::c_int,
    )
    .map_err(|e| err("NETLINK_ADD_MEMBERSHIP", e))?;
    sys::setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF)
        .map_err(|e| err("SO_RCVBUF", e))?;
    let bound = addr(fd.as_raw_fd()).map_err(|e| err("getsockname", e))?;
    let memberships =
        memberships(fd.as_raw_fd()).map_err(|e| err("NETLINK_LIST_MEMBERSHIPS", e))?;
    let rcvbuf = sys::getsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF)
        .map_err(|e| err("SO_RCVBUF", e))?;
    Ok(Route {
        fd,
        portid: bound.nl_pid,
        groups: bound.nl_groups,
        memberships,
        rcvbuf,
    })
}

impl Route {
    fn who(&self) -> String {
        format!("netlink route socket (fd {})", self.fd.as_raw_fd())
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let fd = self.fd.as_raw_fd();
        let who = self.who();
        match addr(fd) {
            Ok(a) => {
                p.expect_eq(&format!("{who}: port id"), self.portid, a.nl_pid);
                p.expect_eq(
                    &format!("{who}: bound groups"),
                    format!("{:#x}", self.groups),
                    format!("{:#x}", a.nl_groups),
                );
            }
            Err(e) => p.push(format!("{who}: getsockname: {}", errno_text(&e))),
        }
        match memberships(fd) {
            Ok(m) => p.expect_eq(
                &format!("{who}: memberships"),
                format!("{:#x}", self.memberships),
                format!("{m:#x}"),
            ),
            Err(e) => p.push(format!(
                "{who}: NETLINK_LIST_MEMBERSHIPS: {}",
                errno_text(&e)
            )),
        }
        match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF) {
            Ok(b) => p.expect_eq(&format!("{who}: SO_RCVBUF"), self.rcvbuf, b),
            Err(e) => p.push(format!("{who}: SO_RCVBUF: {}", errno_text(&e))),
        }
        p.into_result()
    }

    /// An `RTM_GETLINK` dump: the number of links, each answer addressed to our port id.
    fn dump_links(&self) -> Result<usize, String> {
        let who = self.who();
        #[repr(C)]
        struct Req {
            h: libc::nlmsghdr,
            g: [u8; 16],
        }
        let req = Req {
            h: libc::nlmsghdr {
                nlmsg_len: std::mem::size_of::<Req>() as u32,
                nlmsg_type: libc::RTM_GETLINK,
                nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
                nlmsg_seq: 7,
                nlmsg_pid: 0,
            },
            g: [0; 16],
        };
        // SAFETY: the request is plain bytes of its own size.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&req as *const Req).cast::<u8>(),
                std::mem::size_of::<Req>(),
            )
        };
        sys::write_all(self.fd.as_raw_fd(), bytes)
            .map_err(|e| format!("{who}: send RTM_GETLINK: {}", errno_text(&e)))?;
        let mut links = 0;
        let mut buf = vec![0u8; 32768];
        loop {
            let n = sys::read(self.fd.as_raw_fd(), &mut buf)
                .map_err(|e| format!("{who}: recv: {}", errno_text(&e)))?;
            let mut at = 0;
            while at + std::mem::size_of::<libc::nlmsghdr>() <= n {
                // SAFETY: at least a header's worth of bytes is there; read unaligned.
                let h: libc::nlmsghdr =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                if h.nlmsg_len < 16 {
                    return Err(format!(
                        "{who}: a malformed answer of {} bytes",
                        h.nlmsg_len
                    ));
                }
                if h.nlmsg_seq == 7 && h.nlmsg_pid != self.portid {
                    return Err(format!(
                        "{who}: an answer addressed to port id {}, expected {}",
                        h.nlmsg_pid, self.portid
                    ));
                }
                match h.nlmsg_type as libc::c_int {
                    libc::NLMSG_DONE if h.nlmsg_seq == 7 => return Ok(links),
                    libc::NLMSG_ERROR => {
                        return Err(format!(
                            "{who}: the kernel answered RTM_GETLINK with an error"
                        ))
                    }
                    t if t == libc::RTM_NEWLINK as libc::c_int && h.nlmsg_seq == 7 => links += 1,
                    _ => {} // a multicast notification of a joined group
                }
                at += (h.nlmsg_len as usize + 3) & !3;
            }
        }
    }
}

/// Binds the socket, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let route = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "route={} portid={} groups={:#x} memberships={:#x}",
        route.fd.as_raw_fd(),
        route.portid,
        route.groups,
        route.memberships
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| route.check())?;
    route.check()?;
    let links = route.dump_links()?;
    if links == 0 {
        return Err(format!(
            "{}: RTM_GETLINK listed no link (not even lo)",
            route.who()
        ));
    }
    Ok(format!(
        "the netlink socket kept its port id, groups and memberships over {ticks} checks; an RTM_GETLINK dump listed {links} links"
    ))
}
