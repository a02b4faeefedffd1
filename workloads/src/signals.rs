//! Workloads about signals and time: pending and blocked signals, handlers and the
//! alternate stack, interval timers, POSIX timers, and sleeps interrupted by the
//! checkpoint. Scenario tag `signals`.
//!
//! This module holds what they (and other workloads that use signals) share: signal names
//! and sets, reading the masks in `/proc`, blocking, installing `SA_SIGINFO` handlers and
//! queueing signals with a value.

pub mod itimers;
pub mod posixtimers;
pub mod sighandlers;
pub mod sigpending;
pub mod sleepers;

use crate::{procfs, sys};
use nix::libc;
use std::io;

/// Size of the alternate signal stacks the workloads set up.
pub const ALTSTACK: usize = 64 * 1024;

/// Maps an alternate signal stack of [`ALTSTACK`] bytes and makes it the calling thread's;
/// it must stay mapped (the returned mapping kept) as long as it is in use.
pub fn set_altstack() -> Result<sys::Mapping, String> {
    let stack = sys::mmap(
        ALTSTACK,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE,
        None,
        0,
    )
    .map_err(|e| format!("mmap of the alternate stack: {e}"))?;
    let ss = libc::stack_t {
        ss_sp: stack.ptr().cast(),
        ss_flags: 0,
        ss_size: ALTSTACK,
    };
    // SAFETY: the caller keeps the stack mapped while it is the alternate stack.
    sys::cvt(unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) })
        .map_err(|e| format!("sigaltstack: {e}"))?;
    Ok(stack)
}

/// The calling thread's alternate stack: address, size, flags.
fn current_altstack() -> (usize, usize, i32) {
    // SAFETY: querying the calling thread's alternate stack.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut old);
        (old.ss_sp as usize, old.ss_size, old.ss_flags)
    }
}

/// Notes in `p` when the calling thread's alternate stack is no longer `stack`, as
/// [`set_altstack`] made it.
pub fn check_altstack(stack: &sys::Mapping, p: &mut crate::check::Problems) {
    let want = (stack.addr(), ALTSTACK, 0);
    let got = current_altstack();
    if got != want {
        p.push(format!(
            "alternate stack: expected {:#x} size {} flags {}, got {:#x} size {} flags {}",
            want.0, want.1, want.2, got.0, got.1, got.2
        ));
    }
}

const NAMES: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// `SIGRTMIN` as the C library defines it (the kernel's first real-time signal plus the
/// ones glibc keeps for itself).
pub fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

/// The name of signal `sig`: `SIGUSR1`, `SIGRTMIN+3`, `SIG33`.
pub fn name(sig: i32) -> String {
    if (1..=31).contains(&sig) {
        NAMES[sig as usize - 1].to_string()
    } else if sig >= rtmin() {
        format!("SIGRTMIN+{}", sig - rtmin())
    } else {
        format!("SIG{sig}")
    }
}

/// The bit of `sig` in a kernel signal mask (as `/proc/PID/status` prints them).
pub fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// The mask holding `sigs`.
pub fn mask_of(sigs: &[i32]) -> u64 {
    sigs.iter().fold(0, |m, &s| m | bit(s))
}

/// A mask by names: `{SIGUSR1, SIGRTMIN+3}`.
pub fn mask_text(mask: u64) -> String {
    let names: Vec<String> = (1..=64).filter(|&s| mask & bit(s) != 0).map(name).collect();
    format!("{{{}}}", names.join(", "))
}

/// A signal mask line of `/proc/self/status` (or of a thread's): `SigPnd`, `ShdPnd`,
/// `SigBlk`, `SigIgn`, `SigCgt`.
pub fn proc_mask(tid: Option<i32>, key: &str) -> Result<u64, String> {
    let text = procfs::status_field(tid, key)?;
    u64::from_str_radix(&text, 16).map_err(|_| format!("{key} is not a hex mask: `{text}`"))
}

/// A `sigset_t` holding `sigs`.
pub fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill the set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The signals of a `sigset_t`, as a mask.
pub fn set_mask(set: &libc::sigset_t) -> u64 {
    (1..=64)
        // SAFETY: sigismember only reads the set.
        .filter(|&s| unsafe { libc::sigismember(set, s) } == 1)
        .fold(0, |m, s| m | bit(s))
}

/// Blocks `sigs` in the calling thread.
pub fn block(sigs: &[i32]) -> io::Result<()> {
    let set = sigset(sigs);
    // SAFETY: a valid set; the old mask is not wanted.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// An `SA_SIGINFO` handler.
pub type InfoHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Installs `handler` for `sig` with `flags` (`SA_SIGINFO` is added) and `mask`.
pub fn install(sig: i32, handler: InfoHandler, flags: libc::c_int, mask: &[i32]) -> io::Result<()> {
    // SAFETY: a fully initialised sigaction; the handlers the workloads install only touch
    // atomics.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = flags | libc::SA_SIGINFO;
        sa.sa_mask = sigset(mask);
        sys::cvt(libc::sigaction(sig, &sa, std::ptr::null_mut())).map(|_| ())
    }
}

/// The current disposition of `sig`.
pub fn disposition(sig: i32) -> io::Result<libc::sigaction> {
    // SAFETY: sigaction fills the old action.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        sys::cvt(libc::sigaction(sig, std::ptr::null(), &mut old))?;
        Ok(old)
    }
}

fn queue_info(sig: i32, value: i32) -> libc::siginfo_t {
    // SAFETY: a zeroed siginfo is valid; the fields written are the SI_QUEUE layout
    // (si_signo, si_errno, si_code, then pid, uid, value) that the kernel reads.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        info.si_signo = sig;
        info.si_code = libc::SI_QUEUE;
        let fields = (&mut info as *mut libc::siginfo_t).cast::<u8>().add(16);
        fields.cast::<i32>().write(libc::getpid());
        fields.add(4).cast::<u32>().write(libc::getuid());
        fields.add(8).cast::<usize>().write(value as u32 as usize);
        info
    }
}

/// Queues `sig` with `value` to this process (shared pending queue), as `sigqueue(3)`.
pub fn queue_to_process(sig: i32, value: i32) -> io::Result<()> {
    let info = queue_info(sig, value);
    // SAFETY: a valid siginfo for our own process.
    sys::cvt_long(unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, libc::getpid(), sig, &info) })
        .map(|_| ())
}

/// Queues `sig` with `value` to thread `tid` of this process (its private pending queue).
pub fn queue_to_thread(tid: i32, sig: i32, value: i32) -> io::Result<()> {
    let info = queue_info(sig, value);
    // SAFETY: a valid siginfo for a thread of our own process.
    sys::cvt_long(unsafe {
        libc::syscall(libc::SYS_rt_tgsigqueueinfo, libc::getpid(), tid, sig, &info)
    })
    .map(|_| ())
}

/// The `si_int` value of a queued signal's siginfo.
///
/// # Safety
/// `info` must be a siginfo the kernel delivered for a queued signal or a timer.
pub unsafe fn info_value(info: *const libc::siginfo_t) -> i32 {
    (*info).si_value().sival_ptr as usize as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_masks() {
        assert_eq!(name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(name(rtmin() + 3), "SIGRTMIN+3");
        assert_eq!(name(32), "SIG32");
        let m = mask_of(&[libc::SIGUSR1, rtmin() + 3]);
        assert_eq!(m & bit(libc::SIGUSR1), 0x200);
        assert_eq!(mask_text(m), "{SIGUSR1, SIGRTMIN+3}");
        assert_eq!(set_mask(&sigset(&[libc::SIGUSR1, rtmin() + 3])), m);
        assert_eq!(mask_text(0), "{}");
    }

    #[test]
    fn proc_masks_are_read() {
        // SigCgt lists the handlers; the test harness installs none for SIGWINCH.
        let caught = proc_mask(None, "SigCgt").unwrap();
        assert_eq!(caught & bit(libc::SIGWINCH), 0);
    }
}
