//! `mprotect`: anonymous regions with their own protections and `madvise`/`mlock` flags.
//!
//! Each region is 4 pages, filled with its own pattern before its protection is set:
//!
//! | region | protection | flag (`VmFlags` in smaps) |
//! |---|---|---|
//! | `ro` | `PROT_READ` | |
//! | `none` | `PROT_NONE` | |
//! | `rx` | `PROT_READ\|PROT_EXEC` | |
//! | `dontfork` | read-write | `MADV_DONTFORK` (`dc`) |
//! | `dontdump` | read-write | `MADV_DONTDUMP` (`dd`) |
//! | `nohuge` | read-write | `MADV_NOHUGEPAGE` (`nh`) |
//! | `locked` | read-write | `mlock` (`lo`) |
//! | `split` | read-write, its 2 middle pages `PROT_READ` | three mappings |
//!
//! Every tick it checks each region's lines in `/proc/self/maps` (bounds and permissions),
//! its `VmFlags`, its content (read through `/proc/self/mem`, which ignores protections),
//! and probes it: the kernel copying from or into the region through a pipe must fail with
//! `EFAULT` exactly where the protection forbids reading or writing. On SIGTERM it checks
//! the same, then makes `ro` writable and writes to it.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::memory::PAGE;
use crate::protocol::{errno_text, Workload};
use crate::sys::{self, Mapping};
use crate::{procfs, steady};
use nix::libc;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Program name.
pub const NAME: &str = "mprotect";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const PAGES: usize = 4;
const RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;

/// One expected line of `/proc/self/maps` within a region: page range and permissions.
type Part = (usize, usize, &'static str);

struct Region {
    name: &'static str,
    map: Mapping,
    data: Vec<u8>,
    parts: Vec<Part>,
    flag: Option<&'static str>,
}

struct Prober {
    r: OwnedFd,
    w: OwnedFd,
}

impl Prober {
    /// Whether the kernel can read one byte at `addr` (write(2) from it into a pipe).
    fn readable(&self, addr: usize) -> Result<bool, String> {
        // SAFETY: the kernel validates the address; a fault comes back as EFAULT.
        let n = unsafe { libc::write(self.w.as_raw_fd(), addr as *const libc::c_void, 1) };
        if n == 1 {
            let mut b = [0u8; 1];
            sys::read(self.r.as_raw_fd(), &mut b).map_err(|e| format!("probe pipe: {e}"))?;
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EFAULT) {
            Ok(false)
        } else {
            Err(format!("read probe at {addr:#x}: {}", errno_text(&e)))
        }
    }

    /// Whether the kernel can write `byte` at `addr` (read(2) from a pipe into it). Write
    /// back the byte that is there, so a successful probe changes nothing.
    fn writable(&self, addr: usize, byte: u8) -> Result<bool, String> {
        sys::write_all(self.w.as_raw_fd(), &[byte]).map_err(|e| format!("probe pipe: {e}"))?;
        // SAFETY: the kernel validates the address; a fault comes back as EFAULT.
        let n = unsafe { libc::read(self.r.as_raw_fd(), addr as *mut libc::c_void, 1) };
        if n == 1 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        let mut b = [0u8; 1];
        sys::read(self.r.as_raw_fd(), &mut b).map_err(|e| format!("probe pipe: {e}"))?;
        if e.raw_os_error() == Some(libc::EFAULT) {
            Ok(false)
        } else {
            Err(format!("write probe at {addr:#x}: {}", errno_text(&e)))
        }
    }
}

struct State {
    regions: Vec<Region>,
    mem: File,
    prober: Prober,
}

fn region(
    name: &'static str,
    seed: u64,
    prot: libc::c_int,
    flag: Option<(&'static str, libc::c_int)>,
) -> Result<Region, String> {
    let len = PAGES * PAGE;
    let map = sys::mmap(len, RW, libc::MAP_PRIVATE, None, 0)
        .map_err(|e| format!("mmap of region {name}: {e}"))?;
    let data = pattern(seed, len);
    map.write(0, &data);
    let ptr = map.ptr().cast::<libc::c_void>();
    match flag {
        Some(("lo", _)) => {
            // SAFETY: locking our own mapping.
            sys::cvt(unsafe { libc::mlock(ptr, len) })
                .map_err(|e| format!("mlock of {name}: {e}"))?;
        }
        Some((_, advice)) => {
            // SAFETY: advising on our own mapping.
            sys::cvt(unsafe { libc::madvise(ptr, len, advice) })
                .map_err(|e| format!("madvise of {name}: {e}"))?;
        }
        None => {}
    }
    // SAFETY: changing the protection of our own mapping.
    sys::cvt(unsafe { libc::mprotect(ptr, len, prot) })
        .map_err(|e| format!("mprotect of {name}: {e}"))?;
    let perms = match prot {
        libc::PROT_READ => "r--p",
        libc::PROT_NONE => "---p",
        x if x == libc::PROT_READ | libc::PROT_EXEC => "r-xp",
        _ => "rw-p",
    };
    Ok(Region {
        name,
        map,
        data,
        parts: vec![(0, PAGES, perms)],
        flag: flag.map(|(f, _)| f),
    })
}

fn setup() -> Result<State, String> {
    let mut regions = vec![
        region("ro", 41, libc::PROT_READ, None)?,
        region("none", 42, libc::PROT_NONE, None)?,
        region("rx", 43, libc::PROT_READ | libc::PROT_EXEC, None)?,
        region("dontfork", 44, RW, Some(("dc", libc::MADV_DONTFORK)))?,
        region("dontdump", 45, RW, Some(("dd", libc::MADV_DONTDUMP)))?,
        region("nohuge", 46, RW, Some(("nh", libc::MADV_NOHUGEPAGE)))?,
        region("locked", 47, RW, Some(("lo", 0)))?,
    ];
    let mut split = region("split", 48, RW, None)?;
    // SAFETY: changing the protection of pages 1..3 of our own mapping.
    sys::cvt(unsafe {
        libc::mprotect(split.map.ptr().add(PAGE).cast(), 2 * PAGE, libc::PROT_READ)
    })
    .map_err(|e| format!("mprotect of the middle of region split: {e}"))?;
    split.parts = vec![(0, 1, "rw-p"), (1, 3, "r--p"), (3, 4, "rw-p")];
    regions.push(split);
    let (r, w) = sys::pipe(libc::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    Ok(State {
        regions,
        mem: File::open("/proc/self/mem").map_err(|e| format!("open /proc/self/mem: {e}"))?,
        prober: Prober { r, w },
    })
}

impl State {
    fn check_region(&self, r: &Region, p: &mut Problems) {
        let base = r.map.addr();
        for &(from, to, perms) in &r.parts {
            let start = base + from * PAGE;
            let what = format!("region {} pages {from}..{to} at {start:#x}", r.name);
            match procfs::mapping_at(start) {
                Ok(m) => {
                    // Neighbouring mappings with the same flags may merge with ours, so
                    // the line must cover our range, not match it exactly.
                    if m.perms != perms || m.start > start || m.end < base + to * PAGE {
                        p.push(format!(
                            "{what}: /proc/self/maps says {:#x}-{:#x} {}, expected {perms} over {start:#x}-{:#x}",
                            m.start,
                            m.end,
                            m.perms,
                            base + to * PAGE
                        ));
                    }
                    // The read-only middle of `split` cannot merge with anything: it must be
                    // exactly its own mapping.
                    let exact = r.parts.len() > 1 && perms == "r--p";
                    if exact && (m.start != start || m.end != base + to * PAGE) {
                        p.push(format!(
                            "{what}: expected its own mapping {start:#x}-{:#x} ({perms}), /proc/self/maps has {:#x}-{:#x}",
                            base + to * PAGE,
                            m.start,
                            m.end
                        ));
                    }
                    if let Some(flag) = r.flag {
                        match procfs::vm_flags(m.start) {
                            Ok(flags) if flags.iter().any(|f| f == flag) => {}
                            Ok(flags) => p.push(format!(
                                "{what}: VmFlags lack `{flag}` (got {})",
                                flags.join(" ")
                            )),
                            Err(e) => p.push(format!("{what}: {e}")),
                        }
                    }
                }
                Err(e) => p.push(format!("{what}: {e}")),
            }
            // Probe the first byte of the first page of this part.
            let readable = perms.starts_with('r');
            let writable = &perms[1..2] == "w";
            match self.prober.readable(start) {
                Ok(got) if got != readable => p.push(format!(
                    "{what} ({perms}): the kernel {} read it",
                    if got { "could" } else { "could not" }
                )),
                Ok(_) => {}
                Err(e) => p.push(e),
            }
            match self.prober.writable(start, r.data[from * PAGE]) {
                Ok(got) if got != writable => p.push(format!(
                    "{what} ({perms}): the kernel {} write it",
                    if got { "could" } else { "could not" }
                )),
                Ok(_) => {}
                Err(e) => p.push(e),
            }
        }
        let mut got = vec![0u8; r.data.len()];
        match self.mem.read_exact_at(&mut got, base as u64) {
            Ok(()) => p.check(compare_bytes(
                &format!("content of region {} at {base:#x}", r.name),
                &r.data,
                &got,
            )),
            Err(e) => p.push(format!("/proc/self/mem at {base:#x}: {}", errno_text(&e))),
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for r in &self.regions {
            self.check_region(r, &mut p);
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let ro = &mut self.regions[0];
        // SAFETY: changing the protection of our own mapping.
        sys::cvt(unsafe { libc::mprotect(ro.map.ptr().cast(), ro.map.len(), RW) })
            .map_err(|e| format!("mprotect of region ro to read-write: {e}"))?;
        ro.map.write(10, b"now writable");
        ro.data[10..22].copy_from_slice(b"now writable");
        ro.parts = vec![(0, PAGES, "rw-p")];
        self.check()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let places: Vec<String> = st
        .regions
        .iter()
        .map(|r| format!("{}={:#x}", r.name, r.map.addr()))
        .collect();
    let detail = format!("regions of {PAGES} pages: {}", places.join(" "));
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "{} regions kept bounds, protections, VmFlags and content over {ticks} checks; mprotect still works",
        st.regions.len()
    ))
}
