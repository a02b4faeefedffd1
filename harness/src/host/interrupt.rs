//! SIGINT, SIGTERM and SIGHUP end a run cleanly: the signal only raises a flag; the run
//! loops see it, kill their guest, mark what did not finish, and write run.json.
//! (SIGKILL cannot be caught: QEMU then dies by its parent-death signal, and run.json is the
//! last one written, which is always complete since every write is atomic.)

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Installs the handlers (once, at the start of a command that runs guests).
pub fn install() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores into an atomic.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// The signal that asked the run to stop, if one did.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Raises the flag as a signal would (tests, and the run's own time limit).
pub fn request(sig: i32) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Raises the flag after `limit`: the whole run's time limit (reported as SIGALRM).
pub fn after(limit: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        request(nix::libc::SIGALRM);
    });
}

/// A signal's name for messages.
pub fn name(sig: i32) -> String {
    if sig == nix::libc::SIGALRM {
        return "the run's time limit (--timeout-s)".into();
    }
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// What stopped the run, by name, for run.json's `interrupted`.
pub fn stopped_by() -> Option<String> {
    requested().map(name)
}
