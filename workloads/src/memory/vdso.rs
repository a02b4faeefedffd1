//! `vdso`: the vDSO the kernel maps into every process, and the clocks read through it.
//!
//! At start the workload records where the vDSO is (`AT_SYSINFO_EHDR` of its auxiliary
//! vector, which must be the start of `[vdso]` in its maps) and its ELF header. Every tick it
//! checks that `[vdso]` is still at that address with the same size, that the header there
//! is still an ELF header of a shared object, and that `clock_gettime(CLOCK_MONOTONIC)`
//! through glibc (the vDSO) agrees with the system call within 50 ms. criu dumps the
//! vDSO's place and, at the restore, moves the new kernel's vDSO there (or puts a proxy
//! that jumps to it), so all of this must hold afterwards too.

use crate::check::Problems;
use crate::protocol::Workload;
use crate::{args::Args, args::Opt, procfs, steady};
use nix::libc;

/// Program name.
pub const NAME: &str = "vdso";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// Clocks through the vDSO and through the system call may differ by this much (a busy
/// machine may preempt between the two reads).
const SLACK_NS: i128 = 50_000_000;

/// `(start, end)` of the `[vdso]` line of a maps text.
pub fn vdso_range(maps: &str) -> Option<(u64, u64)> {
    let line = maps.lines().find(|l| l.trim_end().ends_with("[vdso]"))?;
    let (a, b) = line.split_whitespace().next()?.split_once('-')?;
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

fn header(at: u64) -> [u8; 18] {
    // SAFETY: the vDSO is mapped readable at `at` (checked against the maps first).
    unsafe { std::ptr::read_volatile(at as *const [u8; 18]) }
}

fn ns(t: &libc::timespec) -> i128 {
    t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
}

fn clocks_agree() -> Result<(), String> {
    let mut via_vdso = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut via_call = via_vdso;
    let mut again = via_vdso;
    // SAFETY: each call fills one timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut via_vdso);
        libc::syscall(
            libc::SYS_clock_gettime,
            libc::CLOCK_MONOTONIC,
            &mut via_call,
        );
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut again);
    }
    let (a, b, c) = (ns(&via_vdso), ns(&via_call), ns(&again));
    if b + SLACK_NS < a || b > c + SLACK_NS {
        return Err(format!(
            "CLOCK_MONOTONIC through the vDSO ({a} ns, then {c} ns) and through the system call ({b} ns) disagree"
        ));
    }
    Ok(())
}

struct Vdso {
    start: u64,
    end: u64,
    header: [u8; 18],
}

impl Vdso {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let maps = procfs::read("/proc/self/maps")?;
        match vdso_range(&maps) {
            Some((s, e)) => {
                p.expect_eq(
                    "[vdso]: start",
                    format!("{:#x}", self.start),
                    format!("{s:#x}"),
                );
                p.expect_eq(
                    "[vdso]: size",
                    format!("{:#x}", self.end - self.start),
                    format!("{:#x}", e - s),
                );
            }
            None => p.push("[vdso]: not in /proc/self/maps"),
        }
        // SAFETY: plain libc call.
        let aux = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
        p.expect_eq(
            "AT_SYSINFO_EHDR",
            format!("{:#x}", self.start),
            format!("{aux:#x}"),
        );
        if p.is_empty() {
            let h = header(self.start);
            if h[..4] != *b"\x7fELF" || h[16] != 3 {
                p.push(format!(
                    "[vdso] at {:#x}: not an ELF shared object any more (header {:02x?}, was {:02x?})",
                    self.start, h, self.header
                ));
            }
            p.check(clocks_agree());
        }
        p.into_result()
    }
}

/// Records the vDSO, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let maps = procfs::read("/proc/self/maps").unwrap_or_else(|e| wl.setup_failed(&e));
    let (start, end) =
        vdso_range(&maps).unwrap_or_else(|| wl.setup_failed("no [vdso] in /proc/self/maps"));
    // SAFETY: plain libc call.
    let aux = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    if aux != start {
        wl.setup_failed(&format!(
            "AT_SYSINFO_EHDR is {aux:#x}, [vdso] starts at {start:#x}"
        ));
    }
    let v = Vdso {
        start,
        end,
        header: header(start),
    };
    v.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("vdso={start:#x} size={:#x}", end - start);
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| v.check())?;
    v.check()?;
    Ok(format!(
        "the vDSO stayed at {start:#x} ({} KiB, the auxiliary vector agreeing) and its clock agreed with the system call over {ticks} checks",
        (end - start) / 1024
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vdso_line_is_found() {
        let maps = "7ffd1000-7ffd2000 r--p 00000000 00:00 0 [vvar]\n7ffd2000-7ffd4000 r-xp 00000000 00:00 0                          [vdso]\n";
        assert_eq!(vdso_range(maps), Some((0x7ffd2000, 0x7ffd4000)));
        assert_eq!(vdso_range("nothing"), None);
    }
}
