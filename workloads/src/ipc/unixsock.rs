//! `unixstream`, `unixdgram`, `unixseqpacket`: UNIX sockets of one type with messages
//! queued in both directions.
//!
//! For its socket type the workload makes:
//!
//! - a socketpair `a`/`b`: messages of 10, 300 and 1 bytes queued from `a` to `b`, of 50
//!   and 7 bytes from `b` to `a`; `b` has `SO_PASSCRED`, `a` a `SO_SNDBUF` of its own;
//! - a named pair through `unix.sock` in the work dir: `server`/`client` (for stream and
//!   seqpacket a listening socket accepted the client and stays open; for datagrams the
//!   server is bound there and the client connected to it), with 20 and 30 bytes queued
//!   from the client.
//!
//! Every tick it checks the bytes waiting at each receiver (`SIOCINQ`), the options, and
//! the socket names. On SIGTERM it checks the same, then receives every message: for
//! datagrams and seqpackets each message whole and in order, for streams the bytes in
//! order. Then every direction carries a new message, and (stream, seqpacket) the listener
//! accepts a new connection.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, show_bytes, Problems};
use crate::files::fd_err;
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `unixstream`.
pub mod stream {
    use super::*;
    /// Program name.
    pub const NAME: &str = "unixstream";
    /// Command-line options.
    pub const OPTIONS: &[Opt] = &[steady::TICK_MS];
    /// The workload (see [`super`]).
    pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
        super::run_type(wl, args, libc::SOCK_STREAM)
    }
}

/// `unixdgram`.
pub mod dgram {
    use super::*;
    /// Program name.
    pub const NAME: &str = "unixdgram";
    /// Command-line options.
    pub const OPTIONS: &[Opt] = &[steady::TICK_MS];
    /// The workload (see [`super`]).
    pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
        super::run_type(wl, args, libc::SOCK_DGRAM)
    }
}

/// `unixseqpacket`.
pub mod seqpacket {
    use super::*;
    /// Program name.
    pub const NAME: &str = "unixseqpacket";
    /// Command-line options.
    pub const OPTIONS: &[Opt] = &[steady::TICK_MS];
    /// The workload (see [`super`]).
    pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
        super::run_type(wl, args, libc::SOCK_SEQPACKET)
    }
}

fn type_name(kind: libc::c_int) -> &'static str {
    match kind {
        libc::SOCK_STREAM => "SOCK_STREAM",
        libc::SOCK_DGRAM => "SOCK_DGRAM",
        _ => "SOCK_SEQPACKET",
    }
}

fn sockaddr(path: &Path) -> Result<(libc::sockaddr_un, libc::socklen_t), String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: plain old data.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= a.sun_path.len() {
        return Err(format!("socket path {} is too long", path.display()));
    }
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in a.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    Ok((a, len))
}

fn socket(kind: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: plain syscall.
    sys::owned(unsafe { libc::socket(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0) })
        .map_err(|e| format!("socket(AF_UNIX, {}): {e}", type_name(kind)))
}

fn bind(fd: &OwnedFd, path: &Path) -> Result<(), String> {
    let (a, len) = sockaddr(path)?;
    // SAFETY: a valid address of the given length.
    sys::cvt(unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })
        .map(|_| ())
        .map_err(|e| format!("bind {}: {e}", path.display()))
}

fn connect(fd: &OwnedFd, path: &Path) -> Result<(), String> {
    let (a, len) = sockaddr(path)?;
    // SAFETY: a valid address of the given length.
    sys::cvt(unsafe { libc::connect(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })
        .map(|_| ())
        .map_err(|e| format!("connect {}: {e}", path.display()))
}

fn accept(fd: &OwnedFd) -> Result<OwnedFd, String> {
    // SAFETY: no address wanted.
    sys::owned(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })
    .map_err(|e| format!("accept: {e}"))
}

/// The path a socket is bound to (`local`) or connected to; empty when unnamed.
fn name(fd: RawFd, local: bool) -> std::io::Result<String> {
    // SAFETY: the call fills at most len bytes of the address.
    unsafe {
        let mut a: libc::sockaddr_un = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        let p = (&mut a as *mut libc::sockaddr_un).cast();
        let r = if local {
            libc::getsockname(fd, p, &mut len)
        } else {
            libc::getpeername(fd, p, &mut len)
        };
        sys::cvt(r)?;
        let n = (len as usize).saturating_sub(std::mem::size_of::<libc::sa_family_t>());
        let bytes: Vec<u8> = a.sun_path[..n.min(a.sun_path.len())]
            .iter()
            .map(|&c| c as u8)
            .take_while(|&b| b != 0)
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn send(fd: RawFd, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: the buffer is valid for its length.
    let n = sys::cvt_long(unsafe {
        libc::send(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    } as i64)?;
    if n as usize != data.len() {
        return Err(std::io::Error::other(format!(
            "short send: {n} of {}",
            data.len()
        )));
    }
    Ok(())
}

/// One message (or, for a stream, what is there); `None` when nothing waits.
fn recv(fd: RawFd) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

/// Messages queued from one socket to another.
struct Channel {
    label: String,
    tx: RawFd,
    rx: RawFd,
    msgs: Vec<Vec<u8>>,
    inq: usize,
}

struct State {
    kind: libc::c_int,
    path: std::path::PathBuf,
    a: OwnedFd,
    b: OwnedFd,
    client: OwnedFd,
    server: OwnedFd,
    listener: Option<OwnedFd>,
    channels: Vec<Channel>,
    sndbuf: i32,
}

fn setup(wl: &Workload, kind: libc::c_int) -> Result<State, String> {
    let (a, b) =
        sys::socketpair(kind | libc::SOCK_CLOEXEC).map_err(|e| format!("socketpair: {e}"))?;
    sys::setsockopt_int(b.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PASSCRED, 1)
        .map_err(|e| format!("SO_PASSCRED: {e}"))?;
    sys::setsockopt_int(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 65536)
        .map_err(|e| format!("SO_SNDBUF: {e}"))?;
    let sndbuf = sys::getsockopt_int(a.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF)
        .map_err(|e| format!("SO_SNDBUF: {e}"))?;
    let path = wl.path("unix.sock");
    let (client, server, listener) = if kind == libc::SOCK_DGRAM {
        let server = socket(kind)?;
        bind(&server, &path)?;
        let client = socket(kind)?;
        connect(&client, &path)?;
        (client, server, None)
    } else {
        let listener = socket(kind)?;
        bind(&listener, &path)?;
        // SAFETY: plain syscall.
        sys::cvt(unsafe { libc::listen(listener.as_raw_fd(), 4) })
            .map_err(|e| format!("listen: {e}"))?;
        let client = socket(kind)?;
        connect(&client, &path)?;
        let server = accept(&listener)?;
        (client, server, Some(listener))
    };
    let plan: [(&str, RawFd, RawFd, &[usize], u64); 3] = [
        ("a -> b", a.as_raw_fd(), b.as_raw_fd(), &[10, 300, 1], 71),
        ("b -> a", b.as_raw_fd(), a.as_raw_fd(), &[50, 7], 74),
        (
            "client -> server (unix.sock)",
            client.as_raw_fd(),
            server.as_raw_fd(),
            &[20, 30],
            76,
        ),
    ];
    let mut channels = Vec::new();
    for (label, tx, rx, sizes, seed) in plan {
        let msgs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| pattern(seed + i as u64, n))
            .collect();
        for m in &msgs {
            send(tx, m).map_err(|e| format!("{label}: send: {e}"))?;
        }
        let inq = sys::queued_bytes(rx).map_err(|e| format!("{label}: SIOCINQ: {e}"))?;
        channels.push(Channel {
            label: label.to_string(),
            tx,
            rx,
            msgs,
            inq,
        });
    }
    Ok(State {
        kind,
        path,
        a,
        b,
        client,
        server,
        listener,
        channels,
        sndbuf,
    })
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for c in &self.channels {
            match sys::queued_bytes(c.rx) {
                Ok(n) => p.expect_eq(&format!("{} (fd {}): SIOCINQ", c.label, c.rx), c.inq, n),
                Err(e) => p.push(fd_err(&c.label, c.rx, "SIOCINQ", &e)),
            }
        }
        for (label, fd, opt, want) in [
            ("b", self.b.as_raw_fd(), libc::SO_PASSCRED, 1),
            ("a", self.a.as_raw_fd(), libc::SO_SNDBUF, self.sndbuf),
            ("a", self.a.as_raw_fd(), libc::SO_TYPE, self.kind),
        ] {
            match sys::getsockopt_int(fd, libc::SOL_SOCKET, opt) {
                Ok(v) => p.expect_eq(&format!("{label} (fd {fd}): socket option {opt}"), want, v),
                Err(e) => p.push(fd_err(label, fd, "getsockopt", &e)),
            }
        }
        let path = self.path.to_string_lossy().into_owned();
        let mut names = vec![
            ("a", self.a.as_raw_fd(), true, String::new()),
            ("b", self.b.as_raw_fd(), false, String::new()),
            ("server", self.server.as_raw_fd(), true, path.clone()),
            ("client", self.client.as_raw_fd(), false, path.clone()),
        ];
        if let Some(l) = &self.listener {
            names.push(("listener", l.as_raw_fd(), true, path.clone()));
        }
        for (label, fd, local, want) in names {
            let which = if local { "getsockname" } else { "getpeername" };
            match name(fd, local) {
                Ok(n) => p.expect_eq(&format!("{label} (fd {fd}): {which}"), want, n),
                Err(e) => p.push(format!("{label} (fd {fd}): {which}: {}", errno_text(&e))),
            }
        }
        p.into_result()
    }

    fn drain(&self, p: &mut Problems) {
        for c in &self.channels {
            let mut got = Vec::new();
            loop {
                match recv(c.rx) {
                    Ok(Some(m)) if !m.is_empty() || self.kind != libc::SOCK_STREAM => got.push(m),
                    Ok(_) => break,
                    Err(e) => {
                        p.push(fd_err(&c.label, c.rx, "recv", &e));
                        break;
                    }
                }
                if got.len() > 100 {
                    break;
                }
            }
            if self.kind == libc::SOCK_STREAM {
                p.check(compare_bytes(
                    &format!("{} bytes", c.label),
                    &c.msgs.concat(),
                    &got.concat(),
                ));
                continue;
            }
            let sizes = |v: &[Vec<u8>]| {
                v.iter()
                    .map(|m| m.len().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if got.len() != c.msgs.len() {
                p.push(format!(
                    "{}: received {} messages of [{}] bytes, expected {} of [{}]",
                    c.label,
                    got.len(),
                    sizes(&got),
                    c.msgs.len(),
                    sizes(&c.msgs)
                ));
                continue;
            }
            for (i, (want, m)) in c.msgs.iter().zip(&got).enumerate() {
                p.check(compare_bytes(
                    &format!("{} message #{}", c.label, i + 1),
                    want,
                    m,
                ));
            }
        }
    }

    fn use_again(&self, p: &mut Problems) {
        for c in &self.channels {
            let msg = format!("after restore via {}", c.label).into_bytes();
            if let Err(e) = send(c.tx, &msg) {
                p.push(fd_err(&c.label, c.tx, "send", &e));
                continue;
            }
            match recv(c.rx) {
                Ok(Some(m)) if m == msg => {}
                Ok(other) => p.push(format!(
                    "{}: a new message came back as {}",
                    c.label,
                    other.map_or("nothing".into(), |m| show_bytes(&m))
                )),
                Err(e) => p.push(fd_err(&c.label, c.rx, "recv", &e)),
            }
        }
        if let Some(l) = &self.listener {
            let result = socket(self.kind).and_then(|c| {
                connect(&c, &self.path)?;
                let s = accept(l)?;
                send(c.as_raw_fd(), b"new").map_err(|e| format!("send: {e}"))?;
                match recv(s.as_raw_fd()) {
                    Ok(Some(m)) if m == b"new" => Ok(()),
                    other => Err(format!("the new connection carried {other:?}")),
                }
            });
            if let Err(e) = result {
                p.push(format!(
                    "listener on unix.sock: a new connection failed: {e}"
                ));
            }
        }
    }
}

fn run_type(wl: &mut Workload, args: &Args, kind: libc::c_int) -> Result<String, String> {
    let st = setup(wl, kind).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "{}: a={} b={} client={} server={}{}; 7 messages queued",
        type_name(kind),
        st.a.as_raw_fd(),
        st.b.as_raw_fd(),
        st.client.as_raw_fd(),
        st.server.as_raw_fd(),
        st.listener
            .as_ref()
            .map_or(String::new(), |l| format!(" listener={}", l.as_raw_fd()))
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    let mut p = Problems::new();
    st.drain(&mut p);
    st.use_again(&mut p);
    p.finish(|| {
        format!(
            "{} sockets kept 7 queued messages in 3 directions, their names and options over {ticks} checks; every message came back{} and new ones pass",
            type_name(kind),
            if kind == libc::SOCK_STREAM { " in order" } else { " whole and in order" }
        )
    })
}
