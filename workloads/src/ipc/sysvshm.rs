//! `sysvshm`: System V shared memory segments, attached and not, in the workload's own IPC
//! namespace (needs root).
//!
//! - segment `0x5eed0001` (64 KiB, mode 0640): attached read-write, filled with a pattern;
//! - segment `0x5eed0002` (8 KiB, mode 0600): filled, then detached (no process has it
//!   attached, only the namespace keeps its content);
//! - a private segment (4 KiB, mode 0600): filled, then attached read-only (`SHM_RDONLY`).
//!
//! Every tick the workload checks the namespace holds exactly these segments (ids, keys),
//! each one's size, mode and attach count, the attached ones' contents and their lines in
//! `/proc/self/maps`. On SIGTERM it checks the same, then attaches the detached segment to
//! check its content, writes through the first attachment and reads it through a second
//! one.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::ipc::sysv;
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "sysvshm";
/// The key of the attached read-write segment.
pub const KEY: i32 = 0x5eed_0001;
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

struct Segment {
    label: String,
    key: i32,
    id: i32,
    mode: u32,
    data: Vec<u8>,
    /// Where it is attached, and whether read-only.
    at: Option<(usize, bool)>,
}

fn attach(id: i32, flags: libc::c_int) -> std::io::Result<usize> {
    // SAFETY: the kernel picks the address.
    let p = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    if p as isize == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p as usize)
}

fn detach(addr: usize) -> std::io::Result<()> {
    // SAFETY: addr came from shmat.
    sys::cvt(unsafe { libc::shmdt(addr as *const libc::c_void) }).map(|_| ())
}

fn read_at(addr: usize, len: usize) -> Vec<u8> {
    // SAFETY: an attached segment of at least len bytes.
    (0..len)
        .map(|i| unsafe { ((addr + i) as *const u8).read_volatile() })
        .collect()
}

fn write_at(addr: usize, data: &[u8]) {
    for (i, b) in data.iter().enumerate() {
        // SAFETY: an attached read-write segment of at least data.len() bytes.
        unsafe { ((addr + i) as *mut u8).write_volatile(*b) };
    }
}

fn stat(id: i32) -> std::io::Result<libc::shmid_ds> {
    // SAFETY: IPC_STAT fills the struct.
    unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        sys::cvt(libc::shmctl(id, libc::IPC_STAT, &mut ds))?;
        Ok(ds)
    }
}

fn create(
    key: i32,
    size: usize,
    mode: u32,
    seed: u64,
    keep: Option<bool>,
) -> Result<Segment, String> {
    let flags = if key == libc::IPC_PRIVATE {
        mode as i32
    } else {
        libc::IPC_CREAT | libc::IPC_EXCL | mode as i32
    };
    // SAFETY: plain syscall.
    let id = sys::cvt(unsafe { libc::shmget(key, size, flags) })
        .map_err(|e| format!("shmget({key:#x}, {size}): {e}"))?;
    let data = pattern(seed, size);
    let addr = attach(id, 0).map_err(|e| format!("shmat({id}): {e}"))?;
    write_at(addr, &data);
    let at = match keep {
        Some(false) => Some((addr, false)),
        Some(true) => {
            detach(addr).map_err(|e| format!("shmdt: {e}"))?;
            Some((
                attach(id, libc::SHM_RDONLY).map_err(|e| format!("shmat(SHM_RDONLY): {e}"))?,
                true,
            ))
        }
        None => {
            detach(addr).map_err(|e| format!("shmdt: {e}"))?;
            None
        }
    };
    Ok(Segment {
        label: if key == libc::IPC_PRIVATE {
            format!("private segment (id {id})")
        } else {
            format!("segment key {key:#x} (id {id})")
        },
        key,
        id,
        mode,
        data,
        at,
    })
}

fn setup() -> Result<Vec<Segment>, String> {
    sysv::own_namespace()?;
    Ok(vec![
        create(KEY, 64 * 1024, 0o640, 81, Some(false))?,
        create(0x5eed_0002, 8 * 1024, 0o600, 82, None)?,
        create(libc::IPC_PRIVATE, 4096, 0o600, 83, Some(true))?,
    ])
}

fn check(segs: &[Segment]) -> Result<(), String> {
    let mut p = Problems::new();
    let ids: Vec<(i32, i32)> = segs.iter().map(|s| (s.key, s.id)).collect();
    p.take(sysv::expect_objects("shm", &ids));
    for s in segs {
        match stat(s.id) {
            Ok(ds) => {
                p.expect_eq(&format!("{}: size", s.label), s.data.len(), ds.shm_segsz);
                p.expect_eq(
                    &format!("{}: mode", s.label),
                    format!("{:o}", s.mode),
                    format!("{:o}", ds.shm_perm.mode & 0o777),
                );
                p.expect_eq(
                    &format!("{}: attach count", s.label),
                    u64::from(s.at.is_some()),
                    ds.shm_nattch,
                );
            }
            Err(e) => p.push(format!("{}: IPC_STAT: {}", s.label, errno_text(&e))),
        }
        let Some((addr, ro)) = s.at else { continue };
        p.check(compare_bytes(
            &format!("{} attached at {addr:#x}", s.label),
            &s.data,
            &read_at(addr, s.data.len()),
        ));
        let perms = if ro { "r--s" } else { "rw-s" };
        match procfs::mapping_at(addr) {
            Ok(m) if m.perms == perms && m.start == addr && m.end == addr + s.data.len() => {}
            Ok(m) => p.push(format!(
                "{}: /proc/self/maps says {:#x}-{:#x} {}, expected {addr:#x}-{:#x} {perms}",
                s.label,
                m.start,
                m.end,
                m.perms,
                addr + s.data.len()
            )),
            Err(e) => p.push(format!("{}: {e}", s.label)),
        }
    }
    p.into_result()
}

fn exercise(segs: &mut [Segment]) -> Result<(), String> {
    let mut p = Problems::new();
    // The detached segment kept its content.
    let detached = &segs[1];
    match attach(detached.id, libc::SHM_RDONLY) {
        Ok(addr) => {
            p.check(compare_bytes(
                &format!("{} (detached until now)", detached.label),
                &detached.data,
                &read_at(addr, detached.data.len()),
            ));
            let _ = detach(addr);
        }
        Err(e) => p.push(format!("{}: shmat: {}", detached.label, errno_text(&e))),
    }
    // A write through one attachment shows through another.
    let first = &mut segs[0];
    if let Some((addr, _)) = first.at {
        write_at(addr + 100, b"through the first attachment");
        first.data[100..128].copy_from_slice(b"through the first attachment");
        match attach(first.id, 0) {
            Ok(other) => {
                p.check(compare_bytes(
                    &format!("{} seen through a second attachment", first.label),
                    &first.data,
                    &read_at(other, first.data.len()),
                ));
                let _ = detach(other);
            }
            Err(e) => p.push(format!("{}: shmat: {}", first.label, errno_text(&e))),
        }
    }
    p.check(check(segs));
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut segs = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    check(&segs).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "own IPC namespace; segments: rw={} rw-at={:#x} detached={} ro={} ro-at={:#x}",
        segs[0].id,
        segs[0].at.map_or(0, |a| a.0),
        segs[1].id,
        segs[2].id,
        segs[2].at.map_or(0, |a| a.0)
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check(&segs))?;
    check(&segs)?;
    exercise(&mut segs)?;
    Ok(format!(
        "3 shared memory segments kept ids, sizes, modes, attachments and contents over {ticks} checks; the detached one kept its content, attachments still share"
    ))
}
