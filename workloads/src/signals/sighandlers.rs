//! `sighandlers`: signal dispositions and the alternate signal stack.
//!
//! The workload installs:
//!
//! | signal | disposition | flags | mask |
//! |---|---|---|---|
//! | `SIGUSR1` | handler | `SA_SIGINFO\|SA_RESTART` | `SIGUSR2`, `SIGWINCH` |
//! | `SIGUSR2` | handler | `SA_SIGINFO\|SA_ONSTACK\|SA_NODEFER` | |
//! | `SIGURG` | handler, once | `SA_SIGINFO\|SA_RESETHAND` | `SIGQUIT` |
//! | `SIGPIPE`, `SIGHUP` | ignored | | |
//!
//! and a 64 KiB alternate signal stack. Every tick it compares each disposition (handler,
//! flags, mask, restorer) and the alternate stack with what was installed, then raises
//! `SIGUSR1` and `SIGUSR2`: the first handler must run with its mask added to the blocked
//! set, the second on the alternate stack. `SIGURG` is never raised before SIGTERM; then
//! it is, once: its handler must run and the disposition fall back to `SIG_DFL`.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::Workload;
use crate::signals::{self, mask_of, mask_text, ALTSTACK};
use crate::steady;
use crate::sys::{self, Mapping};
use nix::libc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Program name.
pub const NAME: &str = "sighandlers";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

static USR1_COUNT: AtomicU64 = AtomicU64::new(0);
static USR1_MASK: AtomicU64 = AtomicU64::new(0);
static USR2_COUNT: AtomicU64 = AtomicU64::new(0);
static USR2_SP: AtomicUsize = AtomicUsize::new(0);
static URG_COUNT: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: pthread_sigmask is async-signal-safe; only atomics are written.
    unsafe {
        let mut now: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
        USR1_MASK.store(signals::set_mask(&now), Ordering::SeqCst);
    }
    USR1_COUNT.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_usr2(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let local = 0u8;
    USR2_SP.store(&local as *const u8 as usize, Ordering::SeqCst);
    USR2_COUNT.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_urg(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    URG_COUNT.fetch_add(1, Ordering::SeqCst);
}

/// `SA_RESTORER` (glibc sets it on every handler; libc does not export it).
const SA_RESTORER: libc::c_int = 0x0400_0000;

const FLAG_NAMES: [(libc::c_int, &str); 8] = [
    (libc::SA_NOCLDSTOP, "SA_NOCLDSTOP"),
    (libc::SA_NOCLDWAIT, "SA_NOCLDWAIT"),
    (libc::SA_SIGINFO, "SA_SIGINFO"),
    (SA_RESTORER, "SA_RESTORER"),
    (libc::SA_ONSTACK, "SA_ONSTACK"),
    (libc::SA_RESTART, "SA_RESTART"),
    (libc::SA_NODEFER, "SA_NODEFER"),
    (libc::SA_RESETHAND, "SA_RESETHAND"),
];

/// A disposition in words.
fn disposition_text(sa: &libc::sigaction) -> String {
    let handler = match sa.sa_sigaction {
        libc::SIG_DFL => "SIG_DFL".to_string(),
        libc::SIG_IGN => "SIG_IGN".to_string(),
        h => format!("handler {h:#x}"),
    };
    let flags: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| sa.sa_flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    format!(
        "{handler} flags {} mask {} restorer {:#x}",
        if flags.is_empty() {
            "0".into()
        } else {
            flags.join("|")
        },
        mask_text(signals::set_mask(&sa.sa_mask)),
        sa.sa_restorer.map_or(0, |f| f as usize)
    )
}

struct State {
    dispositions: Vec<(i32, String)>,
    stack: Mapping,
}

fn ignore(sig: i32) -> std::io::Result<()> {
    // SAFETY: SIG_IGN needs no handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        sys::cvt(libc::sigaction(sig, &sa, std::ptr::null_mut())).map(|_| ())
    }
}

const WATCHED: [i32; 5] = [
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGURG,
    libc::SIGPIPE,
    libc::SIGHUP,
];

fn setup() -> Result<State, String> {
    fn e(what: &'static str) -> impl Fn(std::io::Error) -> String {
        move |err| format!("{what}: {err}")
    }
    signals::install(
        libc::SIGUSR1,
        on_usr1,
        libc::SA_RESTART,
        &[libc::SIGUSR2, libc::SIGWINCH],
    )
    .map_err(e("sigaction(SIGUSR1)"))?;
    signals::install(
        libc::SIGUSR2,
        on_usr2,
        libc::SA_ONSTACK | libc::SA_NODEFER,
        &[],
    )
    .map_err(e("sigaction(SIGUSR2)"))?;
    signals::install(libc::SIGURG, on_urg, libc::SA_RESETHAND, &[libc::SIGQUIT])
        .map_err(e("sigaction(SIGURG)"))?;
    ignore(libc::SIGPIPE).map_err(e("sigaction(SIGPIPE)"))?;
    ignore(libc::SIGHUP).map_err(e("sigaction(SIGHUP)"))?;
    // Kept in the State: mapped for the life of the process.
    let stack = signals::set_altstack()?;
    let mut dispositions = Vec::new();
    for sig in WATCHED {
        let sa = signals::disposition(sig).map_err(e("sigaction query"))?;
        dispositions.push((sig, disposition_text(&sa)));
    }
    Ok(State {
        dispositions,
        stack,
    })
}

impl State {
    fn check_dispositions(&self, p: &mut Problems, skip_urg: bool) {
        for (sig, want) in &self.dispositions {
            if skip_urg && *sig == libc::SIGURG {
                continue;
            }
            match signals::disposition(*sig) {
                Ok(sa) => {
                    let got = disposition_text(&sa);
                    if &got != want {
                        p.push(format!(
                            "{}: expected {want}, got {got}",
                            signals::name(*sig)
                        ));
                    }
                }
                Err(e) => p.push(format!("sigaction({}): {e}", signals::name(*sig))),
            }
        }
        signals::check_altstack(&self.stack, p);
    }

    fn raise_and_check(&self, p: &mut Problems) {
        let (c1, c2) = (
            USR1_COUNT.load(Ordering::SeqCst),
            USR2_COUNT.load(Ordering::SeqCst),
        );
        // SAFETY: raising handled signals at ourselves.
        unsafe {
            libc::raise(libc::SIGUSR1);
            libc::raise(libc::SIGUSR2);
        }
        if USR1_COUNT.load(Ordering::SeqCst) != c1 + 1 {
            p.push("SIGUSR1: the raised signal did not run its handler once".to_string());
        } else {
            let want = mask_of(&[libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH]);
            let got = USR1_MASK.load(Ordering::SeqCst);
            if got & want != want {
                p.push(format!(
                    "SIGUSR1: its handler ran with {} blocked, which lacks some of {}",
                    mask_text(got),
                    mask_text(want)
                ));
            }
        }
        if USR2_COUNT.load(Ordering::SeqCst) != c2 + 1 {
            p.push("SIGUSR2: the raised signal did not run its handler once".to_string());
        } else {
            let sp = USR2_SP.load(Ordering::SeqCst);
            let (lo, hi) = (self.stack.addr(), self.stack.addr() + ALTSTACK);
            if !(lo..hi).contains(&sp) {
                p.push(format!(
                    "SIGUSR2 (SA_ONSTACK): its handler ran with its stack at {sp:#x}, outside the alternate stack {lo:#x}-{hi:#x}"
                ));
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        self.check_dispositions(&mut p, false);
        if URG_COUNT.load(Ordering::SeqCst) != 0 {
            p.push("SIGURG: its one-shot handler already ran".to_string());
        }
        self.raise_and_check(&mut p);
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let mut p = Problems::new();
        // SAFETY: raising a handled signal at ourselves.
        unsafe { libc::raise(libc::SIGURG) };
        p.expect_eq(
            "SIGURG handler runs after one raise",
            1,
            URG_COUNT.load(Ordering::SeqCst),
        );
        match signals::disposition(libc::SIGURG) {
            Ok(sa) if sa.sa_sigaction == libc::SIG_DFL => {}
            Ok(sa) => p.push(format!(
                "SIGURG (SA_RESETHAND): after one delivery expected SIG_DFL, got {}",
                disposition_text(&sa)
            )),
            Err(e) => p.push(format!("sigaction(SIGURG): {e}")),
        }
        self.check_dispositions(&mut p, true);
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "handlers for SIGUSR1 SIGUSR2 SIGURG (one-shot), SIGPIPE SIGHUP ignored; altstack={:#x} ({ALTSTACK} bytes)",
        st.stack.addr()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "5 dispositions and the alternate stack kept over {ticks} checks; handlers ran {} + {} times with their masks and stack; the one-shot SIGURG reset after its one delivery",
        USR1_COUNT.load(Ordering::SeqCst),
        USR2_COUNT.load(Ordering::SeqCst)
    ))
}
