//! `uprobes`: a uprobe on a function of the workload's own program (needs root and
//! tracefs with `CONFIG_UPROBE_EVENTS`).
//!
//! At setup it mounts tracefs if it is not, defines a uprobe event on `crtest_probed` in
//! its executable (`p:crtest_uprobes/p_PID EXE:0xOFFSET` in `uprobe_events`) and enables
//! it: the kernel writes a breakpoint into the process's copy of that code and maps a
//! `[uprobes]` area for stepping over it. Every tick it calls the function, which must
//! still compute its result, and checks that the probe's hit count in `uprobe_profile`
//! went up. On SIGTERM it checks the same, then disables and removes the event.
//!
//! A restore brings back the process's pages, the breakpoint's among them; the probe is
//! the kernel's and outlives the dump, so the restored process must still hit it.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::Workload;
use crate::{procfs, steady};
use std::io::Write;
use std::path::PathBuf;

/// Program name.
pub const NAME: &str = "uprobes";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const TRACING: &str = "/sys/kernel/tracing";
/// The event group.
pub const GROUP: &str = "crtest_uprobes";

/// The probed function.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crtest_probed(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(3).wrapping_add(1)
}

/// The hit count of `event` (`GROUP/NAME`) in an `uprobe_profile` text (which names it
/// by `NAME`, or by `GROUP/NAME` in some kernels).
pub fn hits(profile: &str, event: &str) -> Option<u64> {
    let short = event.rsplit('/').next().unwrap_or(event);
    profile.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            [_file, name, hits, ..] if *name == event || *name == short => hits.parse().ok(),
            _ => None,
        }
    })
}

fn append(path: &str, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("write `{}` to {path}: {e}", text.trim_end()))
}

struct Probe {
    event: String,
    last_hits: u64,
}

impl Probe {
    fn check(&mut self, n: u64) -> Result<(), String> {
        let mut p = Problems::new();
        let got = crtest_probed(n);
        p.expect_eq(
            "crtest_probed(n) under the probe",
            n.wrapping_mul(3).wrapping_add(1),
            got,
        );
        match procfs::read(&format!("{TRACING}/uprobe_profile")).map(|t| hits(&t, &self.event)) {
            Ok(Some(h)) if h > self.last_hits => self.last_hits = h,
            Ok(Some(h)) => p.push(format!(
                "uprobe {}: {h} hits after a call, expected more than {}",
                self.event, self.last_hits
            )),
            Ok(None) => p.push(format!("uprobe {}: not in uprobe_profile", self.event)),
            Err(e) => p.push(e),
        }
        p.into_result()
    }

    fn remove(&self) -> Result<(), String> {
        let dir = format!("{TRACING}/events/{}", self.event);
        std::fs::write(format!("{dir}/enable"), "0").map_err(|e| format!("disable {dir}: {e}"))?;
        append(
            &format!("{TRACING}/uprobe_events"),
            &format!("-:{}\n", self.event),
        )
    }
}

/// The file offset of `addr` in the executable mapped at it.
fn file_offset(addr: usize) -> Result<(PathBuf, u64), String> {
    let m = procfs::mapping_at(addr)?;
    Ok((PathBuf::from(&m.path), m.offset + (addr - m.start) as u64))
}

fn setup() -> Result<Probe, String> {
    if !std::path::Path::new(&format!("{TRACING}/uprobe_events")).exists() {
        nix::mount::mount(
            Some("nodev"),
            TRACING,
            Some("tracefs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount tracefs on {TRACING}: {e}"))?;
    }
    if !std::path::Path::new(&format!("{TRACING}/uprobe_events")).exists() {
        return Err(format!(
            "no {TRACING}/uprobe_events: the kernel lacks CONFIG_UPROBE_EVENTS"
        ));
    }
    let (exe, off) = file_offset(crtest_probed as extern "C" fn(u64) -> u64 as usize)?;
    let event = format!("{GROUP}/p_{}", std::process::id());
    append(
        &format!("{TRACING}/uprobe_events"),
        &format!("p:{event} {}:{off:#x}\n", exe.display()),
    )?;
    std::fs::write(format!("{TRACING}/events/{event}/enable"), "1")
        .map_err(|e| format!("enable {event}: {e}"))?;
    let mut probe = Probe {
        event,
        last_hits: 0,
    };
    probe.check(0)?;
    Ok(probe)
}

/// Probes the function, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut probe = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("event={} hits={}", probe.event, probe.last_hits);
    let outcome = steady::ready_then_tick(wl, args, &detail, |n| probe.check(n)).and_then(|n| {
        probe.check(n + 1)?;
        Ok(n)
    });
    let removed = probe.remove();
    let ticks = outcome?;
    removed?;
    Ok(format!(
        "a uprobe on crtest_probed hit on every one of {ticks} calls ({} hits) and the function kept its result",
        probe.last_hits
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_of_a_profile() {
        let p = "  /usr/lib/crtest/uprobes                      crtest_uprobes/p_12                        7\n";
        assert_eq!(hits(p, "crtest_uprobes/p_12"), Some(7));
        assert_eq!(hits(p, "crtest_uprobes/p_13"), None);
        let p = "  /usr/lib/crtest/uprobes p_12                        9\n";
        assert_eq!(hits(p, "crtest_uprobes/p_12"), Some(9));
    }
}
