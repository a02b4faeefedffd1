//! The life most workloads share: set a resource up, announce ready, then look at a little
//! of it every tick (progress is the number of ticks) until SIGTERM asks for the full check.
//!
//! A tick only reads: it never changes state that lives outside the process's memory
//! (files, queues, objects of a namespace), so a checkpoint taken with `--leave-running`
//! stays consistent with what the killed original left behind. What the workload writes
//! to show that its resource still works, it writes during the final check.

use crate::args::{Args, Opt};
use crate::protocol::Workload;
use std::time::Duration;

/// The `--tick-ms` option every steady workload takes.
pub const TICK_MS: Opt = Opt {
    name: "tick-ms",
    metavar: "MS",
    default: 10,
    min: 1,
    max: 60_000,
    help: "time between liveness checks (progress grows by one per check)",
};

/// The value of [`TICK_MS`].
pub fn tick(args: &Args) -> Duration {
    Duration::from_millis(args.get(TICK_MS.name))
}

/// Announces ready with `detail`, then calls `each(n)` every tick (`n` counting from 1)
/// until SIGTERM, recording progress `n` after each. The first failing tick ends the
/// workload's work with `tick N: reason`. Returns the number of ticks.
pub fn ready_then_tick(
    wl: &mut Workload,
    args: &Args,
    detail: &str,
    mut each: impl FnMut(u64) -> Result<(), String>,
) -> Result<u64, String> {
    let tick = tick(args);
    let mut n = wl.progress_value();
    wl.progress(n);
    wl.ready(detail);
    while wl.sleep(tick) {
        n += 1;
        each(n).map_err(|e| format!("tick {n}: {e}"))?;
        wl.progress(n);
    }
    Ok(n)
}

/// Like [`ready_then_tick`] with nothing to do per tick but count.
pub fn ready_then_count(wl: &mut Workload, args: &Args, detail: &str) -> u64 {
    ready_then_tick(wl, args, detail, |_| Ok(())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Parsed};
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn ticks_until_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut wl = Workload::in_dir(dir.path());
        let Parsed::Run(args) = parse(&[TICK_MS], ["--tick-ms", "1"]).unwrap() else {
            panic!("help")
        };
        let seen = AtomicBool::new(false);
        let outcome = ready_then_tick(&mut wl, &args, "x", |n| {
            seen.store(true, Ordering::SeqCst);
            if n == 3 {
                Err("pipe went empty".into())
            } else {
                Ok(())
            }
        });
        assert!(dir.path().join(crate::protocol::READY_FILE).exists());
        if crate::protocol::verify_requested() {
            // Another test of this binary raised SIGTERM: the loop may stop at any time.
            return;
        }
        assert_eq!(outcome.unwrap_err(), "tick 3: pipe went empty");
        assert!(seen.load(Ordering::SeqCst));
        assert_eq!(wl.progress_value(), 2);
    }
}
