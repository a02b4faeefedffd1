//! `timens`: a process tree in a time namespace of its own (needs root, Linux 5.6).
//!
//! The started process enters a new time namespace for its children
//! (`unshare(CLONE_NEWTIME)`), moves the namespace's `CLOCK_MONOTONIC` a day ahead and
//! `CLOCK_BOOTTIME` two days ahead (`/proc/self/timens_offsets`), and forks: the child is
//! the first process of the namespace, names itself in `ready` and is what the harness
//! checkpoints (criu dumps a time namespace its root task owns); it leads a session of its
//! own, as criu wants of a tree's root. The starter exits.
//!
//! A restore makes a new namespace whose offsets criu chooses so the clocks inside go on
//! from where they were at the dump: they must never go back, `CLOCK_MONOTONIC` must stay
//! at least the day ahead of the host's, and `CLOCK_BOOTTIME` must stay a day ahead of
//! `CLOCK_MONOTONIC` (the gap the two offsets made). Every tick and on SIGTERM the child
//! checks all three and that it is still in a time namespace other than the host's
//! (`timens_offsets` not zero).

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::Workload;
use crate::{ns::unshare, procfs, steady};
use nix::libc;
use nix::unistd::getpid;

/// Program name.
pub const NAME: &str = "timens";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// The monotonic offset the namespace starts with, in seconds (a day).
pub const MONOTONIC_AHEAD_S: i64 = 86_400;
/// The boottime offset, in seconds (two days).
pub const BOOTTIME_AHEAD_S: i64 = 2 * 86_400;
/// How far the boottime - monotonic gap may drift, in seconds.
const GAP_SLACK_S: f64 = 2.0;

fn clock(id: libc::clockid_t) -> f64 {
    // SAFETY: clock_gettime fills the timespec.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(id, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// The offsets of `/proc/self/timens_offsets`: (monotonic, boottime) seconds.
pub fn parse_offsets(text: &str) -> Option<(i64, i64)> {
    let mut mono = None;
    let mut boot = None;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [name, secs, _nanos] = w.as_slice() else {
            continue;
        };
        let v = secs.parse().ok()?;
        // The kernel prints the clock by name or by number (1 monotonic, 7 boottime).
        match *name {
            "monotonic" | "1" => mono = Some(v),
            "boottime" | "7" => boot = Some(v),
            _ => {}
        }
    }
    Some((mono?, boot?))
}

/// What the child remembers between checks. `#[repr(C)]` so a test can find the gap.
#[repr(C)]
struct Clocks {
    /// The boottime - monotonic gap seen at setup, in seconds.
    gap: f64,
    /// The last `CLOCK_MONOTONIC` seen.
    last_mono: f64,
}

impl Clocks {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        let mono = clock(libc::CLOCK_MONOTONIC);
        let boot = clock(libc::CLOCK_BOOTTIME);
        if mono < self.last_mono {
            p.push(format!(
                "CLOCK_MONOTONIC went back from {:.3} s to {mono:.3} s",
                self.last_mono
            ));
        }
        if mono < MONOTONIC_AHEAD_S as f64 {
            p.push(format!(
                "CLOCK_MONOTONIC is {mono:.3} s, less than the {MONOTONIC_AHEAD_S} s the namespace was moved ahead"
            ));
        }
        let gap = boot - mono;
        if (gap - self.gap).abs() > GAP_SLACK_S {
            p.push(format!(
                "CLOCK_BOOTTIME - CLOCK_MONOTONIC: expected {:.3} s (within {GAP_SLACK_S} s), got {gap:.3} s",
                self.gap
            ));
        }
        match procfs::read("/proc/self/timens_offsets").map(|t| parse_offsets(&t)) {
            Ok(Some((0, 0))) => {
                p.push("timens_offsets are zero: the process is in the host's time namespace")
            }
            Ok(Some(_)) => {}
            Ok(None) => p.push("timens_offsets: no monotonic and boottime lines"),
            Err(e) => p.push(e),
        }
        self.last_mono = mono;
        p.into_result()
    }
}

fn child_main(wl: &mut Workload, args: &Args) -> Result<String, String> {
    // Lead a session of our own: criu dumps a tree whose root leads its session.
    if let Err(e) = nix::unistd::setsid() {
        wl.setup_failed(&format!("setsid in the time namespace: {e}"));
    }
    let mono = clock(libc::CLOCK_MONOTONIC);
    let boot = clock(libc::CLOCK_BOOTTIME);
    let mut clocks = Box::new(Clocks {
        gap: boot - mono,
        last_mono: mono,
    });
    clocks.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "member={} monotonic={mono:.0} boottime={boot:.0} gap_addr={:#x}",
        getpid(),
        &clocks.gap as *const f64 as usize
    );
    let mut ticks = wl.progress_value();
    wl.progress(ticks);
    wl.ready_as(getpid().as_raw() as u32, &detail);
    let tick = steady::tick(args);
    while wl.sleep(tick) {
        ticks += 1;
        clocks.check().map_err(|e| format!("tick {ticks}: {e}"))?;
        wl.progress(ticks);
    }
    clocks.check()?;
    Ok(format!(
        "the time namespace's clocks went on without going back over {ticks} checks: monotonic a day ahead of the host, boottime a day ahead of monotonic"
    ))
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    unshare(libc::CLONE_NEWTIME, "CLONE_NEWTIME").unwrap_or_else(|e| wl.setup_failed(&e));
    let offsets = format!("monotonic {MONOTONIC_AHEAD_S} 0\nboottime {BOOTTIME_AHEAD_S} 0\n");
    if let Err(e) = std::fs::write("/proc/self/timens_offsets", offsets) {
        wl.setup_failed(&format!("write /proc/self/timens_offsets: {e}"));
    }
    crate::ns::run_in_child(wl, args, "the time namespace's process", child_main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_by_name_or_number() {
        assert_eq!(
            parse_offsets("monotonic 86400 0\nboottime 172800 0\n"),
            Some((86400, 172800))
        );
        assert_eq!(parse_offsets("1 5 0\n7 -3 0\n"), Some((5, -3)));
        assert_eq!(parse_offsets("monotonic 1 0\n"), None);
        assert_eq!(parse_offsets("monotonic x 0\nboottime 1 0\n"), None);
    }
}
