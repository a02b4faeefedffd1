//! `signalfd`: signals read through descriptors, with signals waiting.
//!
//! The workload blocks `SIGUSR1`, `SIGUSR2` and `SIGRTMIN+2` and opens two signalfds:
//! `main` for `SIGUSR1` and `SIGRTMIN+2`, `other` for `SIGUSR2`. It sends itself `SIGUSR1`
//! (`kill`) and `SIGRTMIN+2` with value 77 (`sigqueue`), and reads neither.
//!
//! Every tick it checks each signalfd's mask (fdinfo `sigmask`) and flags, the process's
//! pending set, and that `main` polls readable and `other` does not. On SIGTERM it checks
//! the same, reads `main`: `SIGUSR1` (`SI_USER`, from itself), then `SIGRTMIN+2`
//! (`SI_QUEUE`, value 77), then nothing; then sends `SIGUSR2`, which `other` must give.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::files::{fd_err, FdExpect};
use crate::protocol::Workload;
use crate::signals::{self, mask_of, mask_text, rtmin};
use crate::{procfs, steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "signalfd";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

struct Sfd {
    label: &'static str,
    fd: OwnedFd,
    expect: FdExpect,
    mask: u64,
}

fn create(label: &'static str, sigs: &[i32], flags: libc::c_int) -> Result<Sfd, String> {
    let set = signals::sigset(sigs);
    // SAFETY: a valid set.
    let fd = sys::owned(unsafe { libc::signalfd(-1, &set, flags) })
        .map_err(|e| format!("signalfd({label}): {e}"))?;
    Ok(Sfd {
        label,
        expect: FdExpect::record(label, &fd)?,
        fd,
        mask: mask_of(sigs),
    })
}

fn fd_mask(fd: &OwnedFd) -> Result<u64, String> {
    let info = procfs::fdinfo(fd.as_raw_fd())?;
    let text = procfs::field(&info, "sigmask").ok_or("no sigmask in the signalfd fdinfo")?;
    u64::from_str_radix(text, 16).map_err(|_| format!("bad sigmask `{text}`"))
}

/// Reads one siginfo: (signo, code, pid, int value).
fn read_one(fd: &OwnedFd) -> std::io::Result<Option<(i32, i32, u32, i32)>> {
    // SAFETY: plain old data.
    let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    // SAFETY: the buffer is one signalfd_siginfo.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut si as *mut libc::signalfd_siginfo).cast(),
            std::mem::size_of::<libc::signalfd_siginfo>(),
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some((
        si.ssi_signo as i32,
        si.ssi_code,
        si.ssi_pid,
        si.ssi_int,
    )))
}

struct State {
    main: Sfd,
    other: Sfd,
}

fn setup() -> Result<State, String> {
    signals::block(&[libc::SIGUSR1, libc::SIGUSR2, rtmin() + 2])
        .map_err(|e| format!("block: {e}"))?;
    let st = State {
        main: create(
            "signalfd main",
            &[libc::SIGUSR1, rtmin() + 2],
            libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
        )?,
        other: create("signalfd other", &[libc::SIGUSR2], libc::SFD_NONBLOCK)?,
    };
    // SAFETY: signalling ourselves with a blocked signal.
    sys::cvt(unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) })
        .map_err(|e| format!("kill: {e}"))?;
    signals::queue_to_process(rtmin() + 2, 77).map_err(|e| format!("sigqueue: {e}"))?;
    Ok(st)
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for s in [&self.main, &self.other] {
            s.expect.check(&mut p);
            match fd_mask(&s.fd) {
                Ok(m) if m != s.mask => p.push(format!(
                    "{}: sigmask expected {}, got {}",
                    s.expect.who(),
                    mask_text(s.mask),
                    mask_text(m)
                )),
                Ok(_) => {}
                Err(e) => p.push(format!("{}: {e}", s.expect.who())),
            }
        }
        let want = mask_of(&[libc::SIGUSR1, rtmin() + 2]);
        match signals::proc_mask(None, "ShdPnd") {
            Ok(m) if m != want => p.push(format!(
                "pending for the process (ShdPnd): expected {}, got {}",
                mask_text(want),
                mask_text(m)
            )),
            Ok(_) => {}
            Err(e) => p.push(e),
        }
        for (s, readable) in [(&self.main, true), (&self.other, false)] {
            match sys::poll_one(&s.fd, libc::POLLIN, 0) {
                Ok(r) if (r & libc::POLLIN != 0) != readable => p.push(format!(
                    "{}: poll says {}readable, expected {}readable",
                    s.expect.who(),
                    if readable { "not " } else { "" },
                    if readable { "" } else { "not " }
                )),
                Ok(_) => {}
                Err(e) => p.push(fd_err(s.label, s.fd.as_raw_fd(), "poll", &e)),
            }
        }
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let me = std::process::id();
        let want = [
            (libc::SIGUSR1, libc::SI_USER, None),
            (rtmin() + 2, libc::SI_QUEUE, Some(77)),
        ];
        for (sig, code, value) in want {
            match read_one(&self.main.fd) {
                Ok(Some((s, c, pid, v))) => {
                    if (s, c, pid) != (sig, code, me) || value.is_some_and(|x| x != v) {
                        p.push(format!(
                            "{}: read {} code {c} pid {pid} value {v}, expected {} code {code} pid {me}{}",
                            self.main.expect.who(),
                            signals::name(s),
                            signals::name(sig),
                            value.map_or(String::new(), |x| format!(" value {x}"))
                        ));
                    }
                }
                Ok(None) => p.push(format!(
                    "{}: nothing to read, expected {}",
                    self.main.expect.who(),
                    signals::name(sig)
                )),
                Err(e) => p.push(fd_err(
                    self.main.label,
                    self.main.fd.as_raw_fd(),
                    "read",
                    &e,
                )),
            }
        }
        match read_one(&self.main.fd) {
            Ok(None) => {}
            other => p.push(format!(
                "{}: an extra read gave {other:?}",
                self.main.expect.who()
            )),
        }
        // SAFETY: signalling ourselves with a blocked signal.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
        match read_one(&self.other.fd) {
            Ok(Some((s, _, _, _))) if s == libc::SIGUSR2 => {}
            other => p.push(format!(
                "{}: after sending SIGUSR2, a read gave {other:?}",
                self.other.expect.who()
            )),
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "main={} (SIGUSR1 SIGRTMIN+2, both pending) other={} (SIGUSR2)",
        st.main.fd.as_raw_fd(),
        st.other.fd.as_raw_fd()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "2 signalfds kept their masks and flags, 2 pending signals waited over {ticks} checks and were read with sender, code and value"
    ))
}
