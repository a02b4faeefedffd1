//! `sysvsem`: System V semaphore sets with values, in the workload's own IPC namespace
//! (needs root).
//!
//! Set `0x5eed0101` (mode 0600) has four semaphores valued 3, 0, 7, 32767; a private set
//! (mode 0640) has one, valued 1. Every tick the workload checks both sets' ids, modes,
//! sizes and every value (`GETALL`), and that the namespace holds just these two sets. On
//! SIGTERM it checks the same, then operates: +1 on semaphore 1, -1 back, and a -1 on the
//! zero-valued semaphore must refuse with `EAGAIN`.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::ipc::sysv;
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "sysvsem";
/// The key of the four-semaphore set.
pub const KEY: i32 = 0x5eed_0101;
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const VALUES: [u16; 4] = [3, 0, 7, 32767];

struct Set {
    label: String,
    key: i32,
    id: i32,
    mode: u32,
    values: Vec<u16>,
}

fn get_all(id: i32, n: usize) -> std::io::Result<Vec<u16>> {
    let mut v = vec![0u16; n];
    // SAFETY: GETALL writes n unsigned shorts.
    sys::cvt(unsafe { libc::semctl(id, 0, libc::GETALL, v.as_mut_ptr()) })?;
    Ok(v)
}

fn stat(id: i32) -> std::io::Result<libc::semid_ds> {
    // SAFETY: IPC_STAT fills the struct.
    unsafe {
        let mut ds: libc::semid_ds = std::mem::zeroed();
        sys::cvt(libc::semctl(
            id,
            0,
            libc::IPC_STAT,
            &mut ds as *mut libc::semid_ds,
        ))?;
        Ok(ds)
    }
}

fn op(id: i32, num: u16, delta: i16) -> std::io::Result<()> {
    let mut b = libc::sembuf {
        sem_num: num,
        sem_op: delta,
        sem_flg: libc::IPC_NOWAIT as i16,
    };
    // SAFETY: one valid sembuf.
    sys::cvt(unsafe { libc::semop(id, &mut b, 1) }).map(|_| ())
}

fn create(key: i32, mode: u32, values: &[u16]) -> Result<Set, String> {
    let flags = if key == libc::IPC_PRIVATE {
        mode as i32
    } else {
        libc::IPC_CREAT | libc::IPC_EXCL | mode as i32
    };
    // SAFETY: plain syscalls; SETALL reads values.len() unsigned shorts.
    let id = sys::cvt(unsafe { libc::semget(key, values.len() as i32, flags) })
        .map_err(|e| format!("semget({key:#x}): {e}"))?;
    let mut v = values.to_vec();
    sys::cvt(unsafe { libc::semctl(id, 0, libc::SETALL, v.as_mut_ptr()) })
        .map_err(|e| format!("semctl(SETALL): {e}"))?;
    Ok(Set {
        label: if key == libc::IPC_PRIVATE {
            format!("private semaphore set (id {id})")
        } else {
            format!("semaphore set key {key:#x} (id {id})")
        },
        key,
        id,
        mode,
        values: values.to_vec(),
    })
}

fn check(sets: &[Set]) -> Result<(), String> {
    let mut p = Problems::new();
    let ids: Vec<(i32, i32)> = sets.iter().map(|s| (s.key, s.id)).collect();
    p.take(sysv::expect_objects("sem", &ids));
    for s in sets {
        match stat(s.id) {
            Ok(ds) => {
                p.expect_eq(
                    &format!("{}: semaphores", s.label),
                    s.values.len() as u64,
                    ds.sem_nsems,
                );
                p.expect_eq(
                    &format!("{}: mode", s.label),
                    format!("{:o}", s.mode),
                    format!("{:o}", ds.sem_perm.mode & 0o777),
                );
            }
            Err(e) => p.push(format!("{}: IPC_STAT: {}", s.label, errno_text(&e))),
        }
        match get_all(s.id, s.values.len()) {
            Ok(v) => p.expect_eq(&format!("{}: values", s.label), &s.values, &v),
            Err(e) => p.push(format!("{}: GETALL: {}", s.label, errno_text(&e))),
        }
    }
    p.into_result()
}

fn exercise(sets: &mut [Set]) -> Result<(), String> {
    let mut p = Problems::new();
    let s = &mut sets[0];
    match op(s.id, 1, 1) {
        Ok(()) => s.values[1] += 1,
        Err(e) => p.push(format!("{}: semop +1 on #1: {}", s.label, errno_text(&e))),
    }
    p.check(check(sets));
    let s = &mut sets[0];
    match op(s.id, 1, -1) {
        Ok(()) => s.values[1] -= 1,
        Err(e) => p.push(format!("{}: semop -1 on #1: {}", s.label, errno_text(&e))),
    }
    match op(s.id, 1, -1) {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
        other => p.push(format!(
            "{}: semop -1 on the zero-valued #1 with IPC_NOWAIT: expected EAGAIN, got {other:?}",
            s.label
        )),
    }
    p.check(check(sets));
    p.into_result()
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut sets = sysv::own_namespace()
        .and_then(|_| {
            Ok(vec![
                create(KEY, 0o600, &VALUES)?,
                create(libc::IPC_PRIVATE, 0o640, &[1])?,
            ])
        })
        .unwrap_or_else(|e| wl.setup_failed(&e));
    check(&sets).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "own IPC namespace; set={} (key {KEY:#x}, values {VALUES:?}) private={} (value 1)",
        sets[0].id, sets[1].id
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| check(&sets))?;
    check(&sets)?;
    exercise(&mut sets)?;
    Ok(format!(
        "2 semaphore sets kept ids, modes and all 5 values over {ticks} checks; semop still works and still refuses"
    ))
}
