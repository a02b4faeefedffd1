//! Workloads about network sockets on the loopback: an established TCP connection with data
//! in flight both ways (criu needs `--tcp-established`), a half-closed one, a listening TCP
//! socket, UDP sockets with and without queued datagrams, IPv6 and dual-stack sockets, a
//! netlink socket, a packet socket, raw IP sockets and classic BPF socket filters.
//! Scenario tag `net`.
//!
//! This module holds what they share: IPv4 loopback sockets, their addresses and options.

pub mod ipv6;
pub mod netlink;
pub mod packet;
pub mod rawsock;
pub mod sockfilter;
pub mod tcpconn;
pub mod tcphalf;
pub mod tcplisten;
pub mod udp;

use crate::sys;
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// An IPv4 address as `a.b.c.d:port`.
pub fn addr_text(a: &libc::sockaddr_in) -> String {
    let ip = u32::from_be(a.sin_addr.s_addr).to_be_bytes();
    format!(
        "{}.{}.{}.{}:{}",
        ip[0],
        ip[1],
        ip[2],
        ip[3],
        u16::from_be(a.sin_port)
    )
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> libc::sockaddr_in {
    // SAFETY: plain old data.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    a
}

/// A new IPv4 socket of `kind` (`SOCK_STREAM`, `SOCK_DGRAM`), close-on-exec.
pub fn socket(kind: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: plain syscall.
    sys::owned(unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) })
        .map_err(|e| format!("socket(AF_INET): {e}"))
}

const LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// Binds `fd` to `a`.
pub fn bind(fd: &OwnedFd, a: &libc::sockaddr_in) -> Result<(), String> {
    // SAFETY: a valid address.
    sys::cvt(unsafe { libc::bind(fd.as_raw_fd(), (a as *const libc::sockaddr_in).cast(), LEN) })
        .map(|_| ())
        .map_err(|e| format!("bind {}: {e}", addr_text(a)))
}

/// Connects `fd` to `a` (blocking).
pub fn connect(fd: &OwnedFd, a: &libc::sockaddr_in) -> Result<(), String> {
    // SAFETY: a valid address.
    sys::cvt(unsafe { libc::connect(fd.as_raw_fd(), (a as *const libc::sockaddr_in).cast(), LEN) })
        .map(|_| ())
        .map_err(|e| format!("connect {}: {e}", addr_text(a)))
}

/// The local (`local`) or peer address of `fd`.
pub fn name(fd: RawFd, local: bool) -> std::io::Result<libc::sockaddr_in> {
    // SAFETY: the call fills at most len bytes.
    unsafe {
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        let mut len = LEN;
        let p = (&mut a as *mut libc::sockaddr_in).cast();
        sys::cvt(if local {
            libc::getsockname(fd, p, &mut len)
        } else {
            libc::getpeername(fd, p, &mut len)
        })?;
        Ok(a)
    }
}

/// The local or peer address of `fd` as text, or the errno.
pub fn name_text(fd: RawFd, local: bool) -> String {
    match name(fd, local) {
        Ok(a) => addr_text(&a),
        Err(e) => crate::protocol::errno_text(&e),
    }
}

/// The TCP state of `fd` (`TCP_INFO.tcpi_state`: 1 established, 10 listen, 7 close...).
pub fn tcp_state(fd: RawFd) -> std::io::Result<u8> {
    // SAFETY: TCP_INFO fills at most len bytes.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        sys::cvt(libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        ))?;
        Ok(info.tcpi_state)
    }
}

/// The name of a TCP state number.
pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_print() {
        assert_eq!(addr_text(&loopback(8080)), "127.0.0.1:8080");
        assert_eq!(tcp_state_name(10), "LISTEN");
    }
}
