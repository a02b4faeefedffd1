//! `sockfilter`: classic BPF socket filters (`SO_ATTACH_FILTER`) on UDP sockets.
//!
//! One socket's filter drops datagrams whose payload is longer than 16 bytes; another's
//! drops everything (and, with `--lock 1`, is locked with `SO_LOCK_FILTER`, which no criu
//! version restores). Every tick it reads both programs back (`SO_GET_FILTER`) and
//! compares them instruction by instruction, and checks the lock.
//! On SIGTERM it checks the same and sends each socket a short and a long datagram: the
//! first must receive only the short one, the second nothing.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Program name.
pub const NAME: &str = "sockfilter";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    steady::TICK_MS,
    Opt {
        name: "lock",
        metavar: "0|1",
        default: 0,
        min: 0,
        max: 1,
        help: "lock the drop-all socket's filter (SO_LOCK_FILTER)",
    },
];

/// The longest payload the first filter keeps.
pub const LONGEST: u32 = 16;
const UDP_HEADER: u32 = 8;

/// The first program: `ld len; jgt #(8+16), drop, keep; keep: ret #-1; drop: ret #0`.
pub fn short_only() -> Vec<libc::sock_filter> {
    vec![
        insn(0x80, 0, 0, 0),                    // BPF_LD|BPF_W|BPF_LEN
        insn(0x25, 1, 0, UDP_HEADER + LONGEST), // BPF_JMP|BPF_JGT|BPF_K
        insn(0x06, 0, 0, 0xffff_ffff),          // BPF_RET|BPF_K: keep all
        insn(0x06, 0, 0, 0),                    // BPF_RET|BPF_K: drop
    ]
}

/// The second program: `ret #0`.
pub fn drop_all() -> Vec<libc::sock_filter> {
    vec![insn(0x06, 0, 0, 0)]
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn attach(fd: RawFd, prog: &[libc::sock_filter]) -> std::io::Result<()> {
    let f = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the kernel copies the program.
    sys::cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&f as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// The attached program as the kernel gives it back (`SO_GET_FILTER`), as
/// `(code, jt, jf, k)` tuples.
pub fn attached(fd: RawFd) -> std::io::Result<Vec<(u16, u8, u8, u32)>> {
    let mut buf = vec![insn(0, 0, 0, 0); 64];
    // SO_GET_FILTER counts its length in instructions, not bytes.
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` instructions.
    sys::cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    buf.truncate(len as usize);
    Ok(buf.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect())
}

fn tuples(p: &[libc::sock_filter]) -> Vec<(u16, u8, u8, u32)> {
    p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
}

struct Filtered {
    short: UdpSocket,
    none: UdpSocket,
    lock: i32,
}

fn setup(lock: i32) -> Result<Filtered, String> {
    let short = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let none = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    attach(short.as_raw_fd(), &short_only())
        .map_err(|e| format!("SO_ATTACH_FILTER: {}", errno_text(&e)))?;
    attach(none.as_raw_fd(), &drop_all())
        .map_err(|e| format!("SO_ATTACH_FILTER: {}", errno_text(&e)))?;
    if lock == 1 {
        sys::setsockopt_int(none.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LOCK_FILTER, 1)
            .map_err(|e| format!("SO_LOCK_FILTER: {}", errno_text(&e)))?;
    }
    for s in [&short, &none] {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .map_err(|e| e.to_string())?;
    }
    Ok(Filtered { short, none, lock })
}

impl Filtered {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for (who, s, want) in [
            ("short-datagram socket", &self.short, short_only()),
            ("drop-all socket", &self.none, drop_all()),
        ] {
            let who = format!("{who} (fd {})", s.as_raw_fd());
            match attached(s.as_raw_fd()) {
                Ok(got) => p.expect_eq(&format!("{who}: filter program"), tuples(&want), got),
                Err(e) => p.push(format!("{who}: SO_GET_FILTER: {}", errno_text(&e))),
            }
        }
        match sys::getsockopt_int(
            self.none.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LOCK_FILTER,
        ) {
            Ok(v) => p.expect_eq(
                &format!(
                    "drop-all socket (fd {}): SO_LOCK_FILTER",
                    self.none.as_raw_fd()
                ),
                self.lock,
                v,
            ),
            Err(e) => p.push(format!("SO_LOCK_FILTER: {}", errno_text(&e))),
        }
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let tx = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let mut p = Problems::new();
        let short = b"short".to_vec();
        let long = vec![b'L'; LONGEST as usize + 1];
        for s in [&self.short, &self.none] {
            let to = s.local_addr().map_err(|e| e.to_string())?;
            for d in [&long, &short] {
                tx.send_to(d, to).map_err(|e| format!("send: {e}"))?;
            }
        }
        let mut buf = [0u8; 256];
        match self.short.recv(&mut buf) {
            Ok(n) if buf[..n] == short[..] => {}
            Ok(n) => p.push(format!(
                "short-datagram socket: received {n} bytes {:?}, expected only the short datagram",
                String::from_utf8_lossy(&buf[..n])
            )),
            Err(e) => p.push(format!(
                "short-datagram socket: the short datagram did not come: {e}"
            )),
        }
        if let Ok(n) = self.short.recv(&mut buf) {
            p.push(format!(
                "short-datagram socket: a {n}-byte datagram came through the filter"
            ));
        }
        if let Ok(n) = self.none.recv(&mut buf) {
            p.push(format!(
                "drop-all socket: a {n}-byte datagram came through a filter that drops all"
            ));
        }
        p.into_result()
    }
}

/// Attaches the filters, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let f = setup(args.get("lock") as i32).unwrap_or_else(|e| wl.setup_failed(&e));
    f.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("short={} none={}", f.short.as_raw_fd(), f.none.as_raw_fd());
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| f.check())?;
    f.check()?;
    f.exercise()?;
    Ok(format!(
        "two socket filters read back the same over {ticks} checks and still chose the datagrams"
    ))
}
