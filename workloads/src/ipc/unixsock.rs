//! `unixstream`, `unixdgram`, `unixseqpacket`: UNIX sockets of one type with messages
//! queued in both directions.
//!
//! For its socket type the workload makes:
//!
//! - a socketpair `a`/`b`: messages of 10, 300 and 1 bytes queued from `a` to `b`, of 50
//!   and 7 bytes from `b` to `a`; `a` has a `SO_SNDBUF` of its own, `b` a `SO_PRIORITY`;
//! - a named pair through `unix.sock` in the work dir: `server`/`client` (for stream and
//!   seqpacket a listening socket accepted the client and stays open; for datagrams the
//!   server is bound there and the client connected to it), with 20 and 30 bytes queued
//!   from the client.
//!
//! By default no queued message carries a control message. Two options add them to the
//! `a -> b` queue:
//!
//! - `--passcred 1`: `b` has `SO_PASSCRED`, so every message waiting there comes with
//!   `SCM_CREDENTIALS` (the sender's pid, uid and gid). criu 3.17 cannot dump such a queue
//!   (`skqueue: Control messages in queue, not supported`).
//! - `--pass-fd 1`: the 300-byte message carries, with `SCM_RIGHTS`, a descriptor of
//!   `passed.dat` (`O_RDONLY`, offset 123) whose own copy the workload then closes: the
//!   queue holds the only reference to that open file.
//!
//! Every tick it checks the bytes waiting at each receiver (`SIOCINQ`), the descriptors
//! in flight to `b` (`scm_fds` in its fdinfo), the options, and the socket names. The
//! accepted socket's own name and its client's peer name (both the listener's path) are
//! left out with `--accepted-names 0`: criu does not restore the name of an established
//! stream or seqpacket socket (`bind_unix_sk` in criu/sk-unix.c skips it, "FIXME this can
//! be done"). On
//! SIGTERM it checks the same, then receives every message: for datagrams and seqpackets
//! each message whole and in order, for streams the bytes in order; the passed descriptor
//! with its message (still `passed.dat`, its flags, offset and content), the credentials
//! on every message to `b`, and nothing else. Then every direction carries a new message,
//! and (stream, seqpacket) the listener accepts a new connection.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, show_bytes, Problems};
use crate::files::{self, fd_err, FdExpect};
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `--passcred 1`: `b` has `SO_PASSCRED`, the messages to it carry `SCM_CREDENTIALS`.
pub const PASSCRED: Opt = Opt {
    name: "passcred",
    metavar: "0|1",
    default: 0,
    min: 0,
    max: 1,
    help: "set SO_PASSCRED on b: every message queued to it carries SCM_CREDENTIALS",
};

/// `--pass-fd 1`: a message to `b` carries a file descriptor (`SCM_RIGHTS`).
pub const PASS_FD: Opt = Opt {
    name: "pass-fd",
    metavar: "0|1",
    default: 0,
    min: 0,
    max: 1,
    help: "send a descriptor of passed.dat with SCM_RIGHTS along with the 300-byte message to b",
};

/// `--accepted-names 0`: leave out the names an accepted socket and its client inherit.
pub const ACCEPTED_NAMES: Opt = Opt {
    name: "accepted-names",
    metavar: "0|1",
    default: 1,
    min: 0,
    max: 1,
    help: "check the accepted socket's own name and its client's peer name (stream, seqpacket), which criu does not restore",
};

/// `unixstream`.
pub mod stream {
    use super::*;
    /// Program name.
    pub const NAME: &str = "unixstream";
    /// Command-line options.
    pub const OPTIONS: &[Opt] = &[steady::TICK_MS, PASSCRED, PASS_FD, ACCEPTED_NAMES];
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
    pub const OPTIONS: &[Opt] = &[steady::TICK_MS, PASSCRED, PASS_FD, ACCEPTED_NAMES];
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
    pub const OPTIONS: &[Opt] = &[steady::TICK_MS, PASSCRED, PASS_FD, ACCEPTED_NAMES];
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
    send_with_fd(fd, data, None)
}

/// Sends `data` as one message, with `passed` as `SCM_RIGHTS` when given.
fn send_with_fd(fd: RawFd, data: &[u8], passed: Option<RawFd>) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain old data; every pointer in it stays valid during the call,
    // and the control buffer is large enough for one descriptor (CMSG_SPACE checked).
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(passed) = passed {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            assert!(space <= std::mem::size_of_val(&control));
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), passed);
        }
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    let n = sys::cvt_long(n as i64)?;
    if n as usize != data.len() {
        return Err(std::io::Error::other(format!(
            "short send: {n} of {}",
            data.len()
        )));
    }
    Ok(())
}

/// What one receive gave: the bytes and the control messages that came with them.
#[derive(Debug, Default)]
struct Received {
    data: Vec<u8>,
    /// Descriptors passed with `SCM_RIGHTS` (installed close-on-exec).
    fds: Vec<OwnedFd>,
    /// `SCM_CREDENTIALS`: pid, uid, gid.
    creds: Option<(i32, u32, u32)>,
    /// Control messages of other kinds, as `level/type`.
    other: Vec<String>,
    /// The kernel cut the control messages short (`MSG_CTRUNC`).
    truncated: bool,
}

/// One message (or, for a stream, what is there) with its control messages; `None`
/// when nothing waits.
fn recv(fd: RawFd) -> std::io::Result<Option<Received>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 64];
    // SAFETY: msghdr is plain old data; the buffers it points to outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: as above.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
    let Some(n) = crate::sys::unless_would_block(n)? else {
        return Ok(None);
    };
    buf.truncate(n);
    let mut got = Received {
        data: buf,
        truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        ..Received::default()
    };
    // SAFETY: the kernel filled msg_controllen bytes of control messages; CMSG_* walk
    // them within that length, and the data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            let len = (*c).cmsg_len - libc::CMSG_LEN(0) as usize;
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                    for i in 0..len / std::mem::size_of::<RawFd>() {
                        let raw = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                        if let Ok(fd) = sys::owned(raw) {
                            got.fds.push(fd);
                        }
                    }
                }
                (libc::SOL_SOCKET, libc::SCM_CREDENTIALS)
                    if len >= std::mem::size_of::<libc::ucred>() =>
                {
                    let u = std::ptr::read_unaligned(data.cast::<libc::ucred>());
                    got.creds = Some((u.pid, u.uid, u.gid));
                }
                (level, kind) => got.other.push(format!("{level}/{kind}")),
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some(got))
}

/// The file whose descriptor travels in the `a -> b` queue (`--pass-fd 1`).
struct Passed {
    /// Its state when sent (the number is that of the sender's copy, since closed).
    expect: FdExpect,
    data: Vec<u8>,
    /// Which message of `a -> b` carries it.
    with: usize,
}

const PASSED_OFFSET: u64 = 123;

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
    /// Whether the names of the accepted pair are compared (`--accepted-names`).
    accepted_names: bool,
    passcred: bool,
    passed: Option<Passed>,
    path: std::path::PathBuf,
    a: OwnedFd,
    b: OwnedFd,
    client: OwnedFd,
    server: OwnedFd,
    listener: Option<OwnedFd>,
    channels: Vec<Channel>,
    sndbuf: i32,
}

/// `SO_PRIORITY` of `b`.
const B_PRIORITY: i32 = 5;

fn setup(
    wl: &Workload,
    kind: libc::c_int,
    accepted_names: bool,
    passcred: bool,
    pass_fd: bool,
) -> Result<State, String> {
    let (a, b) =
        sys::socketpair(kind | libc::SOCK_CLOEXEC).map_err(|e| format!("socketpair: {e}"))?;
    sys::setsockopt_int(
        b.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_PRIORITY,
        B_PRIORITY,
    )
    .map_err(|e| format!("SO_PRIORITY: {e}"))?;
    if passcred {
        sys::setsockopt_int(b.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PASSCRED, 1)
            .map_err(|e| format!("SO_PASSCRED: {e}"))?;
    }
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
    // The descriptor to pass: the sender's copy is closed once it is queued.
    let passing = if pass_fd {
        let path = wl.path("passed.dat");
        let data = pattern(79, 4096);
        files::create_with(&path, &data)?;
        let fd = files::open(&path, libc::O_RDONLY | libc::O_CLOEXEC)?;
        files::seek("passed.dat", &fd, PASSED_OFFSET)?;
        let expect = FdExpect::record("passed.dat (received from the a -> b queue)", &fd)?;
        Some((
            fd,
            Passed {
                expect,
                data,
                with: 1,
            },
        ))
    } else {
        None
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
        for (i, m) in msgs.iter().enumerate() {
            let with_fd = match &passing {
                Some((fd, _)) if tx == a.as_raw_fd() && i == 1 => Some(fd.as_raw_fd()),
                _ => None,
            };
            send_with_fd(tx, m, with_fd).map_err(|e| format!("{label}: send: {e}"))?;
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
        accepted_names,
        passcred,
        passed: passing.map(|(fd, passed)| {
            drop(fd);
            passed
        }),
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
        for (label, fd, opt, name, want) in [
            (
                "b",
                self.b.as_raw_fd(),
                libc::SO_PASSCRED,
                "SO_PASSCRED",
                self.passcred as i32,
            ),
            (
                "b",
                self.b.as_raw_fd(),
                libc::SO_PRIORITY,
                "SO_PRIORITY",
                B_PRIORITY,
            ),
            (
                "a",
                self.a.as_raw_fd(),
                libc::SO_SNDBUF,
                "SO_SNDBUF",
                self.sndbuf,
            ),
            ("a", self.a.as_raw_fd(), libc::SO_TYPE, "SO_TYPE", self.kind),
        ] {
            match sys::getsockopt_int(fd, libc::SOL_SOCKET, opt) {
                Ok(v) => p.expect_eq(&format!("{label} (fd {fd}): {name}"), want, v),
                Err(e) => p.push(fd_err(label, fd, "getsockopt", &e)),
            }
        }
        // Descriptors in flight to b (the kernel shows them since Linux 5.6).
        let b = self.b.as_raw_fd();
        match procfs::fdinfo(b) {
            Ok(info) => {
                if let Some(n) = procfs::field(&info, "scm_fds") {
                    p.expect_eq(
                        &format!("b (fd {b}): descriptors queued to it (scm_fds in fdinfo)"),
                        self.passed.is_some() as u32 as usize,
                        n.trim().parse().unwrap_or(usize::MAX),
                    );
                }
            }
            Err(e) => p.push(e),
        }
        let path = self.path.to_string_lossy().into_owned();
        let mut names = vec![
            ("a", self.a.as_raw_fd(), true, String::new()),
            ("b", self.b.as_raw_fd(), false, String::new()),
        ];
        // An accepted socket's name and its client's peer name are the listener's path.
        if self.listener.is_none() || self.accepted_names {
            names.push(("server", self.server.as_raw_fd(), true, path.clone()));
            names.push(("client", self.client.as_raw_fd(), false, path.clone()));
        }
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
            let mut got: Vec<Received> = Vec::new();
            loop {
                match recv(c.rx) {
                    Ok(Some(m)) if !m.data.is_empty() || self.kind != libc::SOCK_STREAM => {
                        got.push(m)
                    }
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
            self.check_control(c, &got, p);
            if self.kind == libc::SOCK_STREAM {
                let bytes: Vec<u8> = got.iter().flat_map(|m| m.data.iter().copied()).collect();
                p.check(compare_bytes(
                    &format!("{} bytes", c.label),
                    &c.msgs.concat(),
                    &bytes,
                ));
                continue;
            }
            let sizes = |v: &mut dyn Iterator<Item = usize>| {
                v.map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
            };
            if got.len() != c.msgs.len() {
                p.push(format!(
                    "{}: received {} messages of [{}] bytes, expected {} of [{}]",
                    c.label,
                    got.len(),
                    sizes(&mut got.iter().map(|m| m.data.len())),
                    c.msgs.len(),
                    sizes(&mut c.msgs.iter().map(Vec::len))
                ));
                continue;
            }
            for (i, (want, m)) in c.msgs.iter().zip(&got).enumerate() {
                p.check(compare_bytes(
                    &format!("{} message #{}", c.label, i + 1),
                    want,
                    &m.data,
                ));
            }
        }
    }

    /// The control messages that came with the messages of `c`: the passed descriptor
    /// with its message, credentials on every message to a `SO_PASSCRED` socket, and
    /// nothing else.
    fn check_control(&self, c: &Channel, got: &[Received], p: &mut Problems) {
        let to_b = c.rx == self.b.as_raw_fd();
        let passed = self.passed.as_ref().filter(|_| c.tx == self.a.as_raw_fd());
        // Where each message of c.msgs starts and ends in the byte stream.
        let bounds: Vec<(usize, usize)> = c
            .msgs
            .iter()
            .scan(0, |at, m| {
                let start = *at;
                *at += m.len();
                Some((start, *at))
            })
            .collect();
        let mut at = 0;
        let mut fds_seen = 0;
        for (i, m) in got.iter().enumerate() {
            let (start, end) = (at, at + m.data.len());
            at = end;
            let what = if self.kind == libc::SOCK_STREAM {
                format!("{}: the receive of bytes {start}..{end}", c.label)
            } else {
                format!("{}: message #{}", c.label, i + 1)
            };
            if m.truncated {
                p.push(format!("{what}: control messages cut short (MSG_CTRUNC)"));
            }
            if !m.other.is_empty() {
                p.push(format!(
                    "{what}: unexpected control messages (level/type) {}",
                    m.other.join(", ")
                ));
            }
            if to_b && self.passcred {
                let me = (
                    std::process::id() as i32,
                    // SAFETY: getuid/getgid cannot fail.
                    unsafe { libc::getuid() },
                    unsafe { libc::getgid() },
                );
                match m.creds {
                    Some(creds) if creds == me => {}
                    Some((pid, uid, gid)) => p.push(format!(
                        "{what}: SCM_CREDENTIALS say pid {pid} uid {uid} gid {gid}, expected the sender, pid {} uid {} gid {}",
                        me.0, me.1, me.2
                    )),
                    None => p.push(format!(
                        "{what}: no SCM_CREDENTIALS, but the receiver has SO_PASSCRED"
                    )),
                }
            }
            for fd in &m.fds {
                fds_seen += 1;
                let Some(passed) = passed else {
                    p.push(format!(
                        "{what}: a descriptor arrived ({}), none was sent",
                        fd_target(fd.as_raw_fd())
                    ));
                    continue;
                };
                // A stream may hand the descriptor over with any receive that takes
                // bytes of its message; a datagram or seqpacket only with the message.
                let (ms, me) = bounds[passed.with];
                let with_its_message = if self.kind == libc::SOCK_STREAM {
                    start < me && end > ms
                } else {
                    i == passed.with
                };
                if !with_its_message {
                    p.push(format!(
                        "{what}: the descriptor came with the wrong message, expected with message #{} (bytes {ms}..{me})",
                        passed.with + 1
                    ));
                }
                let mut expect = passed.expect.clone();
                expect.fd = fd.as_raw_fd();
                expect.check(p);
                if let Some(content) = p.take(files::pread_all(&expect.label, fd)) {
                    p.check(compare_bytes(
                        &format!("content of {}", expect.who()),
                        &passed.data,
                        &content,
                    ));
                }
            }
        }
        if let (Some(passed), 0) = (passed, fds_seen) {
            p.push(format!(
                "{}: the descriptor of passed.dat sent with message #{} never arrived",
                c.label,
                passed.with + 1
            ));
        } else if passed.is_some() && fds_seen > 1 {
            p.push(format!(
                "{}: {fds_seen} descriptors arrived, 1 was sent",
                c.label
            ));
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
                Ok(Some(m)) if m.data == msg => {}
                Ok(other) => p.push(format!(
                    "{}: a new message came back as {}",
                    c.label,
                    other.map_or("nothing".into(), |m| show_bytes(&m.data))
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
                    Ok(Some(m)) if m.data == b"new" => Ok(()),
                    Ok(other) => Err(format!(
                        "the new connection carried {}",
                        other.map_or("nothing".into(), |m| show_bytes(&m.data))
                    )),
                    Err(e) => Err(format!("recv: {}", errno_text(&e))),
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

/// Where `/proc/self/fd/N` points, for messages.
fn fd_target(fd: RawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|t| t.display().to_string())
        .unwrap_or_else(|e| format!("readlink: {}", errno_text(&e)))
}

fn run_type(wl: &mut Workload, args: &Args, kind: libc::c_int) -> Result<String, String> {
    let passcred = args.get(PASSCRED.name) == 1;
    let pass_fd = args.get(PASS_FD.name) == 1;
    let accepted_names = args.get(ACCEPTED_NAMES.name) == 1;
    let st =
        setup(wl, kind, accepted_names, passcred, pass_fd).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let control = match (passcred, pass_fd) {
        (false, false) => String::new(),
        (true, false) => "; a -> b with SCM_CREDENTIALS".into(),
        (false, true) => "; a -> b message #2 with SCM_RIGHTS (passed.dat)".into(),
        (true, true) => {
            "; a -> b with SCM_CREDENTIALS, message #2 with SCM_RIGHTS (passed.dat)".into()
        }
    };
    let detail = format!(
        "{}: a={} b={} client={} server={}{}; 7 messages queued{control}",
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
    let also = match (passcred, pass_fd) {
        (false, false) => "",
        (true, false) => ", each to b with the sender's SCM_CREDENTIALS,",
        (false, true) => ", passed.dat's descriptor with its message,",
        (true, true) => ", each to b with the sender's SCM_CREDENTIALS and passed.dat's descriptor with its message,",
    };
    p.finish(|| {
        format!(
            "{} sockets kept 7 queued messages in 3 directions, their names{} and options over {ticks} checks; every message came back{}{also} and new ones pass",
            type_name(kind),
            if st.listener.is_some() && !accepted_names {
                " (but the accepted pair's)"
            } else {
                ""
            },
            if kind == libc::SOCK_STREAM { " in order" } else { " whole and in order" }
        )
    })
}
