//! Workloads about terminals: a pseudo-terminal pair with data in flight and its settings.
//! Scenario tag `tty`. The interactive shell of [`crate::shell`] uses the helpers here.
//!
//! The guest mounts devpts with `newinstance` and links `/dev/ptmx -> pts/ptmx`, so opening
//! `/dev/ptmx` gives a pair of the guest's own devpts instance.

pub mod pty;

use crate::sys;
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// A pseudo-terminal master, unlocked, and the path of its slave.
pub struct Master {
    pub fd: OwnedFd,
    pub index: u32,
    pub slave: PathBuf,
}

/// Opens `/dev/ptmx` (`O_RDWR|O_NOCTTY|O_CLOEXEC`) and unlocks the slave.
pub fn open_master() -> Result<Master, String> {
    let fd = sys::open(
        std::path::Path::new("/dev/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        0,
    )
    .map_err(|e| format!("open /dev/ptmx: {e}"))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int.
    sys::cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })
        .map_err(|e| format!("TIOCSPTLCK: {e}"))?;
    let index = index(fd.as_raw_fd()).map_err(|e| format!("TIOCGPTN: {e}"))?;
    Ok(Master {
        fd,
        index,
        slave: PathBuf::from(format!("/dev/pts/{index}")),
    })
}

/// The pty number of a master (`TIOCGPTN`).
pub fn index(master: RawFd) -> std::io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    sys::cvt(unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

/// `tcgetattr`.
pub fn termios(fd: RawFd) -> std::io::Result<libc::termios> {
    // SAFETY: tcgetattr fills the struct.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        sys::cvt(libc::tcgetattr(fd, &mut t))?;
        Ok(t)
    }
}

/// `tcsetattr(TCSANOW)`.
pub fn set_termios(fd: RawFd, t: &libc::termios) -> std::io::Result<()> {
    // SAFETY: a valid struct.
    sys::cvt(unsafe { libc::tcsetattr(fd, libc::TCSANOW, t) }).map(|_| ())
}

/// `TIOCGWINSZ`: (rows, cols, xpixel, ypixel).
pub fn winsize(fd: RawFd) -> std::io::Result<(u16, u16, u16, u16)> {
    // SAFETY: TIOCGWINSZ fills the struct.
    unsafe {
        let mut w: libc::winsize = std::mem::zeroed();
        sys::cvt(libc::ioctl(fd, libc::TIOCGWINSZ, &mut w))?;
        Ok((w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel))
    }
}

/// `TIOCSWINSZ`.
pub fn set_winsize(fd: RawFd, (rows, cols, x, y): (u16, u16, u16, u16)) -> std::io::Result<()> {
    let w = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: x,
        ws_ypixel: y,
    };
    // SAFETY: TIOCSWINSZ reads the struct.
    sys::cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &w) }).map(|_| ())
}

const LFLAG_NAMES: [(libc::tcflag_t, &str); 9] = [
    (libc::ISIG, "ISIG"),
    (libc::ICANON, "ICANON"),
    (libc::ECHO, "ECHO"),
    (libc::ECHOE, "ECHOE"),
    (libc::ECHOK, "ECHOK"),
    (libc::ECHONL, "ECHONL"),
    (libc::ECHOCTL, "ECHOCTL"),
    (libc::ECHOKE, "ECHOKE"),
    (libc::IEXTEN, "IEXTEN"),
];

fn lflag_change(want: libc::tcflag_t, got: libc::tcflag_t) -> String {
    let names = |bits: libc::tcflag_t| -> Vec<&str> {
        LFLAG_NAMES
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect()
    };
    let (added, removed) = (names(got & !want), names(want & !got));
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", added.join("|")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join("|")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Every field of `got` that differs from `want`, e.g.
/// `c_lflag: expected 0x00000a00, got 0x00000a08 (added ECHO)`. The line speed is part of
/// `c_cflag` (`CBAUD`).
pub fn termios_diff(want: &libc::termios, got: &libc::termios) -> Vec<String> {
    let mut out = Vec::new();
    for (name, w, g) in [
        ("c_iflag", want.c_iflag, got.c_iflag),
        ("c_oflag", want.c_oflag, got.c_oflag),
        ("c_cflag", want.c_cflag, got.c_cflag),
        ("c_lflag", want.c_lflag, got.c_lflag),
    ] {
        if w != g {
            let extra = if name == "c_lflag" {
                lflag_change(w, g)
            } else {
                String::new()
            };
            out.push(format!("{name}: expected {w:#010x}, got {g:#010x}{extra}"));
        }
    }
    for (i, (w, g)) in want.c_cc.iter().zip(&got.c_cc).enumerate() {
        if w != g {
            out.push(format!("c_cc[{i}]: expected {w:#04x}, got {g:#04x}"));
        }
    }
    out
}
