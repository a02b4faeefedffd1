//! `thp`: transparent huge page advice on anonymous memory.
//!
//! An 8 MiB anonymous region aligned to 2 MiB: its first half advised `MADV_HUGEPAGE`, its
//! second `MADV_NOHUGEPAGE` (two mappings, `hg` and `nh` in their `VmFlags`), filled with a
//! pattern. Every tick it checks both halves' flags and a few pages of each. On SIGTERM it
//! checks every page and that a write to each half still lands.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "thp";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const HUGE: usize = 2 << 20;
/// The region's size.
pub const SIZE: usize = 4 * HUGE;
const PAGE: usize = 4096;

struct Region {
    /// The over-sized mapping the aligned region is carved from (kept mapped).
    _whole: sys::Mapping,
    start: usize,
}

fn seed(page: usize) -> u64 {
    7000 + page as u64
}

impl Region {
    fn bytes(&self, off: usize, len: usize) -> Vec<u8> {
        // SAFETY: [start, start + SIZE) lies inside the mapping `_whole` keeps.
        unsafe { std::slice::from_raw_parts((self.start + off) as *const u8, len).to_vec() }
    }

    fn check(&self, pages: &[usize]) -> Result<(), String> {
        let mut p = Problems::new();
        for (half, at, flag) in [
            ("first half", self.start, "hg"),
            ("second half", self.start + SIZE / 2, "nh"),
        ] {
            match procfs::vm_flags(at) {
                Ok(f) if f.iter().any(|x| x == flag) => {}
                Ok(f) => p.push(format!(
                    "{half} at {at:#x}: VmFlags `{}` lack `{flag}`",
                    f.join(" ")
                )),
                Err(e) => p.push(format!("{half}: {e}")),
            }
        }
        for &pg in pages {
            p.check(compare_bytes(
                &format!("page {pg}"),
                &pattern(seed(pg), PAGE),
                &self.bytes(pg * PAGE, PAGE),
            ));
        }
        p.into_result()
    }
}

fn setup() -> Result<Region, String> {
    let whole = sys::mmap(
        SIZE + HUGE,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE,
        None,
        0,
    )
    .map_err(|e| format!("mmap: {}", errno_text(&e)))?;
    let start = (whole.addr() + HUGE - 1) & !(HUGE - 1);
    let advise = |at: usize, len: usize, advice: libc::c_int, name: &str| {
        // SAFETY: the range lies inside the mapping.
        sys::cvt(unsafe { libc::madvise(at as *mut libc::c_void, len, advice) })
            .map(|_| ())
            .map_err(|e| format!("madvise {name}: {}", errno_text(&e)))
    };
    advise(start, SIZE / 2, libc::MADV_HUGEPAGE, "MADV_HUGEPAGE")?;
    advise(
        start + SIZE / 2,
        SIZE / 2,
        libc::MADV_NOHUGEPAGE,
        "MADV_NOHUGEPAGE",
    )?;
    for pg in 0..SIZE / PAGE {
        let data = pattern(seed(pg), PAGE);
        // SAFETY: inside the region.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), (start + pg * PAGE) as *mut u8, PAGE)
        };
    }
    Ok(Region {
        _whole: whole,
        start,
    })
}

/// Advises and fills the region, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let r = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    r.check(&[0, SIZE / PAGE - 1])
        .unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("region={:#x} size={SIZE}", r.start);
    let pages = SIZE / PAGE;
    let ticks = steady::ready_then_tick(wl, args, &detail, |n| {
        let n = n as usize;
        r.check(&[n % pages, (n * 37 + pages / 2) % pages])
    })?;
    r.check(&(0..pages).collect::<Vec<_>>())?;
    for at in [r.start + 5, r.start + SIZE / 2 + 5] {
        // SAFETY: inside the region.
        unsafe { *(at as *mut u8) = 0x5a };
        if unsafe { *(at as *const u8) } != 0x5a {
            return Err(format!("a write at {at:#x} did not land"));
        }
    }
    Ok(format!(
        "an 8 MiB region kept its MADV_HUGEPAGE and MADV_NOHUGEPAGE halves and all {pages} pages over {ticks} checks"
    ))
}
