//! `ipv6`: IPv6 and dual-stack sockets on the loopback (criu needs `--tcp-established`).
//!
//! A dual-stack TCP listener on `[::]` (`IPV6_V6ONLY` off), an IPv6 connection to it from
//! `[::1]` and an IPv4 one from `127.0.0.1` (accepted as `::ffff:127.0.0.1`), each with a
//! little data waiting unread at the server, and a UDP socket bound to `[::1]` with
//! `IPV6_V6ONLY` on (nothing queued: criu keeps no UDP receive queue, see `udp-queued`).
//! Every tick it checks every socket's local and peer address, the connections' state
//! (`ESTABLISHED`), `IPV6_V6ONLY` of the listener and of the UDP socket, and what waits at
//! the servers. On SIGTERM it checks the same, reads
//! the waiting data, sends a reply both ways on both connections, accepts one more IPv4
//! client and sends the UDP socket a datagram it must receive.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::net::{tcp_state, tcp_state_name};
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Program name.
pub const NAME: &str = "ipv6";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const HELLO: &[u8] = b"crtest ipv6 waiting data";
const DATAGRAM: &[u8] = b"crtest ipv6 datagram";

struct Conn {
    name: &'static str,
    client: TcpStream,
    server: TcpStream,
    /// (client local, server local, server's view of the peer).
    addrs: (SocketAddr, SocketAddr, SocketAddr),
}

struct State {
    listener: TcpListener,
    conns: Vec<Conn>,
    udp: UdpSocket,
    udp_addr: SocketAddr,
}

fn dual_stack_listener() -> Result<TcpListener, String> {
    let e = |what: &str, err: std::io::Error| format!("listener: {what}: {}", errno_text(&err));
    // SAFETY: plain syscalls on a new socket.
    let fd = sys::owned(unsafe {
        libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
    })
    .map_err(|err| e("socket(AF_INET6)", err))?;
    sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)
        .map_err(|err| e("IPV6_V6ONLY 0", err))?;
    // SAFETY: a zeroed sockaddr_in6 is [::]:0.
    let mut a: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sys::cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&a as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    })
    .map_err(|err| e("bind [::]:0", err))?;
    sys::cvt(unsafe { libc::listen(fd.as_raw_fd(), 8) }).map_err(|err| e("listen", err))?;
    Ok(TcpListener::from(fd))
}

fn connect(listener: &TcpListener, name: &'static str, to: SocketAddr) -> Result<Conn, String> {
    let client = TcpStream::connect(to).map_err(|e| format!("{name}: connect {to}: {e}"))?;
    let (server, peer) = listener
        .accept()
        .map_err(|e| format!("{name}: accept: {e}"))?;
    (&client)
        .write_all(HELLO)
        .map_err(|e| format!("{name}: write: {e}"))?;
    let local = client.local_addr().map_err(|e| e.to_string())?;
    let server_local = server.local_addr().map_err(|e| e.to_string())?;
    Ok(Conn {
        name,
        client,
        server,
        addrs: (local, server_local, peer),
    })
}

fn setup() -> Result<State, String> {
    let listener = dual_stack_listener()?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let conns = vec![
        connect(
            &listener,
            "IPv6 connection",
            format!("[::1]:{port}").parse().unwrap(),
        )?,
        connect(
            &listener,
            "IPv4-mapped connection",
            format!("127.0.0.1:{port}").parse().unwrap(),
        )?,
    ];
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    // SAFETY: plain syscall; the fd goes into a UdpSocket.
    let fd = sys::owned(unsafe {
        libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })
    .map_err(|e| format!("udp socket: {}", errno_text(&e)))?;
    sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)
        .map_err(|e| format!("udp IPV6_V6ONLY: {}", errno_text(&e)))?;
    let a = v6_loopback();
    // SAFETY: a valid address.
    sys::cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&a as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    })
    .map_err(|e| format!("udp bind [::1]:0: {}", errno_text(&e)))?;
    let udp = UdpSocket::from(fd);
    udp.set_nonblocking(true).map_err(|e| e.to_string())?;
    let udp_addr = udp.local_addr().map_err(|e| e.to_string())?;
    Ok(State {
        listener,
        conns,
        udp,
        udp_addr,
    })
}

fn v6_loopback() -> libc::sockaddr_in6 {
    // SAFETY: plain old data.
    let mut a: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    a.sin6_addr.s6_addr[15] = 1;
    a
}

fn v6only(fd: i32) -> Result<i32, String> {
    sys::getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)
        .map_err(|e| format!("IPV6_V6ONLY: {}", errno_text(&e)))
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        match v6only(self.listener.as_raw_fd()) {
            Ok(v) => p.expect_eq("dual-stack listener: IPV6_V6ONLY", 0, v),
            Err(e) => p.push(format!("dual-stack listener: {e}")),
        }
        match v6only(self.udp.as_raw_fd()) {
            Ok(v) => p.expect_eq("UDP socket on [::1]: IPV6_V6ONLY", 1, v),
            Err(e) => p.push(format!("UDP socket on [::1]: {e}")),
        }
        match self.udp.local_addr() {
            Ok(a) => p.expect_eq("UDP socket on [::1]: local address", self.udp_addr, a),
            Err(e) => p.push(format!("UDP socket on [::1]: getsockname: {e}")),
        }
        for c in &self.conns {
            let n = c.name;
            let got = (
                c.client.local_addr().map_err(|e| e.to_string()),
                c.server.local_addr().map_err(|e| e.to_string()),
                c.server.peer_addr().map_err(|e| e.to_string()),
            );
            match got {
                (Ok(a), Ok(b), Ok(peer)) => {
                    p.expect_eq(&format!("{n}: client address"), c.addrs.0, a);
                    p.expect_eq(&format!("{n}: server address"), c.addrs.1, b);
                    p.expect_eq(&format!("{n}: server's peer"), c.addrs.2, peer);
                }
                other => p.push(format!("{n}: addresses: {other:?}")),
            }
            for (end, s) in [("client", &c.client), ("server", &c.server)] {
                match tcp_state(s.as_raw_fd()) {
                    Ok(st) => p.expect_eq(
                        &format!("{n}: {end} state"),
                        "ESTABLISHED",
                        tcp_state_name(st),
                    ),
                    Err(e) => p.push(format!("{n}: {end}: TCP_INFO: {}", errno_text(&e))),
                }
            }
            match sys::queued_bytes(c.server.as_raw_fd()) {
                Ok(q) => p.expect_eq(&format!("{n}: bytes waiting at the server"), HELLO.len(), q),
                Err(e) => p.push(format!("{n}: server: FIONREAD: {}", errno_text(&e))),
            }
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        for c in &mut self.conns {
            let n = c.name;
            let r = (|| -> std::io::Result<()> {
                for s in [&c.client, &c.server] {
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                }
                let mut got = vec![0u8; HELLO.len()];
                c.server.read_exact(&mut got)?;
                if got != HELLO {
                    return Err(std::io::Error::other(format!("server read {got:?}")));
                }
                c.server.write_all(b"reply")?;
                let mut back = [0u8; 5];
                c.client.read_exact(&mut back)?;
                if &back != b"reply" {
                    return Err(std::io::Error::other(format!("client read {back:?}")));
                }
                Ok(())
            })();
            if let Err(e) = r {
                p.push(format!("{n}: data after the restore: {e}"));
            }
        }
        let lport = self.listener.local_addr().map(|a| a.port());
        match lport {
            Ok(lport) => {
                let r = TcpStream::connect(("127.0.0.1", lport)).and_then(|_c| {
                    self.listener.set_nonblocking(false)?;
                    self.listener.accept()
                });
                match r {
                    Ok((_, peer)) if peer.ip().to_string() == "::ffff:127.0.0.1" => {}
                    Ok((_, peer)) => p.push(format!(
                        "dual-stack listener: a new IPv4 client came as {peer}, expected ::ffff:127.0.0.1"
                    )),
                    Err(e) => p.push(format!("dual-stack listener: a new IPv4 client: {e}")),
                }
            }
            Err(e) => p.push(format!("dual-stack listener: getsockname: {e}")),
        }
        let mut buf = [0u8; 128];
        let r = UdpSocket::bind("[::1]:0").and_then(|s| s.send_to(DATAGRAM, self.udp_addr));
        if let Err(e) = r {
            p.push(format!("UDP socket on [::1]: send a new datagram: {e}"));
        } else {
            let _ = self.udp.set_nonblocking(false);
            let _ = self.udp.set_read_timeout(Some(Duration::from_secs(5)));
            match self.udp.recv_from(&mut buf) {
                Ok((len, _)) if &buf[..len] == DATAGRAM => {}
                other => p.push(format!("UDP socket on [::1]: a new datagram: {other:?}")),
            }
        }
        p.into_result()
    }
}

/// Opens the sockets, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "listener={} v6client={} v6server={} v4client={} v4server={} udp={}",
        st.listener.as_raw_fd(),
        st.conns[0].client.as_raw_fd(),
        st.conns[0].server.as_raw_fd(),
        st.conns[1].client.as_raw_fd(),
        st.conns[1].server.as_raw_fd(),
        st.udp.as_raw_fd()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "a dual-stack listener, an IPv6 and an IPv4-mapped connection and an IPv6-only UDP socket kept their addresses, states and data over {ticks} checks; all still carry data"
    ))
}
