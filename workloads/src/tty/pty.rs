//! `pty`: a pseudo-terminal pair with data in flight both ways and its own settings.
//!
//! The workload opens a pty pair (neither becomes its controlling terminal) and gives the
//! slave its own settings: raw input and output (so data passes unchanged) marked by
//! `ECHOCTL|ECHOKE`, `IGNBRK|IGNPAR|IUTF8`, `CS8|CREAD|CLOCAL` at 38400 baud, control
//! characters `VINTR=^G VERASE=^H VKILL=^U`, `VMIN=1`, and a window of 37x101 (5x7
//! pixels). It writes 200 bytes into the master (waiting as the slave's input) and 300
//! into the slave (waiting as the master's input) and reads neither.
//!
//! Every tick it checks the bytes waiting on each side, both ends' settings, the window
//! size and the pty number. On SIGTERM it checks the same, reads both sides byte for byte,
//! then passes a new message each way.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::fd_err;
use crate::ipc::set_nonblocking;
use crate::protocol::{errno_text, Workload};
use crate::tty::{self, termios_diff};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Program name.
pub const NAME: &str = "pty";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const WINDOW: (u16, u16, u16, u16) = (37, 101, 5, 7);
const TO_SLAVE: usize = 200;
const TO_MASTER: usize = 300;

struct State {
    master: OwnedFd,
    slave: OwnedFd,
    index: u32,
    slave_path: String,
    master_termios: libc::termios,
    slave_termios: libc::termios,
    to_slave: Vec<u8>,
    to_master: Vec<u8>,
}

fn settings(mut t: libc::termios) -> libc::termios {
    t.c_iflag = libc::IGNBRK | libc::IGNPAR | libc::IUTF8;
    t.c_oflag = 0;
    // The speed lives in c_cflag (CBAUD); cfsetspeed is not available to static builds.
    t.c_cflag = libc::CS8 | libc::CREAD | libc::CLOCAL | libc::B38400;
    t.c_lflag = libc::ECHOCTL | libc::ECHOKE;
    t.c_cc[libc::VINTR] = 0x07;
    t.c_cc[libc::VERASE] = 0x08;
    t.c_cc[libc::VKILL] = 0x15;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    t
}

fn setup() -> Result<State, String> {
    let m = tty::open_master()?;
    let slave = sys::open(&m.slave, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC, 0)
        .map_err(|e| format!("open {}: {e}", m.slave.display()))?;
    let s = slave.as_raw_fd();
    let t = settings(tty::termios(s).map_err(|e| format!("tcgetattr: {e}"))?);
    tty::set_termios(s, &t).map_err(|e| format!("tcsetattr: {e}"))?;
    tty::set_winsize(s, WINDOW).map_err(|e| format!("TIOCSWINSZ: {e}"))?;
    set_nonblocking(&m.fd)?;
    set_nonblocking(&slave)?;
    let to_slave = pattern(131, TO_SLAVE);
    let to_master = pattern(132, TO_MASTER);
    sys::write_all(m.fd.as_raw_fd(), &to_slave).map_err(|e| format!("write to the master: {e}"))?;
    sys::write_all(s, &to_master).map_err(|e| format!("write to the slave: {e}"))?;
    let st = State {
        master_termios: tty::termios(m.fd.as_raw_fd()).map_err(|e| format!("tcgetattr: {e}"))?,
        slave_termios: tty::termios(s).map_err(|e| format!("tcgetattr: {e}"))?,
        slave_path: m.slave.display().to_string(),
        index: m.index,
        master: m.fd,
        slave,
        to_slave,
        to_master,
    };
    Ok(st)
}

/// Bytes waiting on `fd`, looking a few times: the tty layer moves data between the
/// two sides in the background.
fn settled_queue(fd: RawFd, want: usize) -> std::io::Result<usize> {
    let mut n = sys::queued_bytes(fd)?;
    for _ in 0..20 {
        if n == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        n = sys::queued_bytes(fd)?;
    }
    Ok(n)
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let (m, s) = (self.master.as_raw_fd(), self.slave.as_raw_fd());
        let slave = format!("pty slave {} (fd {s})", self.slave_path);
        let master = format!("pty master #{} (fd {m})", self.index);
        for (who, fd, want) in [(&slave, s, TO_SLAVE), (&master, m, TO_MASTER)] {
            match settled_queue(fd, want) {
                Ok(n) if n != want => p.push(format!(
                    "{who}: {n} bytes waiting to be read, expected {want}"
                )),
                Ok(_) => {}
                Err(e) => p.push(format!("{who}: FIONREAD: {}", errno_text(&e))),
            }
        }
        for (who, fd, want) in [
            (&slave, s, &self.slave_termios),
            (&master, m, &self.master_termios),
        ] {
            match tty::termios(fd) {
                Ok(got) => {
                    for d in termios_diff(want, &got) {
                        p.push(format!("{who}: termios {d}"));
                    }
                }
                Err(e) => p.push(format!("{who}: tcgetattr: {}", errno_text(&e))),
            }
        }
        match tty::winsize(s) {
            Ok(w) => p.expect_eq(
                &format!("{slave}: window (rows, cols, xpixel, ypixel)"),
                WINDOW,
                w,
            ),
            Err(e) => p.push(format!("{slave}: TIOCGWINSZ: {}", errno_text(&e))),
        }
        match tty::index(m) {
            Ok(i) => p.expect_eq(&format!("{master}: pty number"), self.index, i),
            Err(e) => p.push(format!("{master}: TIOCGPTN: {}", errno_text(&e))),
        }
        match std::fs::read_link(format!("/proc/self/fd/{s}")) {
            Ok(t) => p.expect_eq(
                &format!("{slave}: /proc/self/fd link"),
                self.slave_path.clone(),
                t.display().to_string(),
            ),
            Err(e) => p.push(format!("{slave}: readlink: {e}")),
        }
        p.into_result()
    }

    fn drain_and_use(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let (m, s) = (self.master.as_raw_fd(), self.slave.as_raw_fd());
        for (who, fd, want) in [
            ("pty slave", s, &self.to_slave),
            ("pty master", m, &self.to_master),
        ] {
            let _ = settled_queue(fd, want.len());
            match sys::read_available(fd) {
                Ok(got) => p.check(compare_bytes(
                    &format!("data waiting on the {who}"),
                    want,
                    &got,
                )),
                Err(e) => p.push(fd_err(who, fd, "read", &e)),
            }
        }
        for (who, tx, rx) in [("master -> slave", m, s), ("slave -> master", s, m)] {
            let msg = format!("new data {who}");
            if let Err(e) = sys::write_all(tx, msg.as_bytes()) {
                p.push(format!("{who}: write: {}", errno_text(&e)));
                continue;
            }
            let _ = settled_queue(rx, msg.len());
            match sys::read_available(rx) {
                Ok(got) => p.check(compare_bytes(
                    &format!("{who}: new data"),
                    msg.as_bytes(),
                    &got,
                )),
                Err(e) => p.push(format!("{who}: read: {}", errno_text(&e))),
            }
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "master={} slave={} ({}); {TO_SLAVE} bytes waiting for the slave, {TO_MASTER} for the master; raw mode, 38400 baud, 37x101",
        st.master.as_raw_fd(),
        st.slave.as_raw_fd(),
        st.slave_path
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.drain_and_use()?;
    Ok(format!(
        "the pty pair {} kept its settings, window and {} bytes in flight over {ticks} checks; the data came back byte for byte and new data passes",
        st.slave_path,
        TO_SLAVE + TO_MASTER
    ))
}
