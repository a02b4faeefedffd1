//! `aio`: a Linux AIO context (`io_setup`) with a completion waiting in its ring.
//!
//! The workload writes a file, sets up a context of 64 events and submits one read of
//! 4096 bytes at offset 4096 (`IOCB_CMD_PREAD`, with its own cookie). It waits until the
//! completion is in the ring (the ring's tail moves) and does not reap it. The ring is
//! mapped in the process (`[aio]`): every tick the workload checks its header (magic,
//! size, head and tail: one completion waiting). On SIGTERM it checks the same, reaps the
//! completion (`io_getevents`: its cookie, its iocb, 4096 bytes, the file's bytes in the
//! buffer), then submits and reaps one more read.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "aio";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const EVENTS: u32 = 64;
const MAGIC: u32 = 0xa10a_10a1;
const LEN: usize = 4096;
const COOKIE: u64 = 0x00c0_ffee_0000_0001;

/// The kernel's `struct iocb` (little-endian x86-64 layout).
#[repr(C)]
#[derive(Default)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: i32,
    opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

/// The kernel's `struct io_event`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

/// The header of the ring the kernel maps at the context's address.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RingHeader {
    pub id: u32,
    pub nr: u32,
    pub head: u32,
    pub tail: u32,
    pub magic: u32,
}

/// The byte pattern of the file at `offset`.
fn byte_at(offset: usize) -> u8 {
    (offset as u8)
        .wrapping_mul(31)
        .wrapping_add((offset >> 8) as u8)
}

struct Ctx {
    id: u64,
    file: OwnedFd,
    buf: Box<[u8; LEN]>,
    iocb: Box<Iocb>,
    /// `head` and `tail` as the last check saw them.
    head: u32,
    tail: u32,
}

fn io_setup(nr: u32) -> std::io::Result<u64> {
    let mut id: u64 = 0;
    // SAFETY: io_setup writes the context id.
    sys::cvt_long(unsafe { libc::syscall(libc::SYS_io_setup, nr, &mut id) })?;
    Ok(id)
}

impl Ctx {
    fn header(&self) -> RingHeader {
        // SAFETY: the context id is the address of the ring the kernel mapped for it.
        unsafe { std::ptr::read_volatile(self.id as *const RingHeader) }
    }

    fn submit(&mut self, cookie: u64) -> Result<(), String> {
        *self.iocb = Iocb {
            data: cookie,
            opcode: 0, // IOCB_CMD_PREAD
            fildes: self.file.as_raw_fd() as u32,
            buf: self.buf.as_mut_ptr() as u64,
            nbytes: LEN as u64,
            offset: LEN as i64,
            ..Iocb::default()
        };
        let mut list = [&mut *self.iocb as *mut Iocb];
        // SAFETY: one valid iocb whose buffer lives as long as the context.
        let n = unsafe { libc::syscall(libc::SYS_io_submit, self.id, 1i64, list.as_mut_ptr()) };
        match sys::cvt_long(n) {
            Ok(1) => Ok(()),
            Ok(n) => Err(format!("io_submit took {n} of 1 iocb")),
            Err(e) => Err(format!("io_submit: {}", errno_text(&e))),
        }
    }

    /// Reaps one completion, waiting up to 5 s.
    fn reap(&mut self, cookie: u64) -> Result<(), String> {
        let mut ev = [IoEvent::default()];
        let ts = sys::timespec(std::time::Duration::from_secs(5));
        // SAFETY: room for one event.
        let n = unsafe {
            libc::syscall(
                libc::SYS_io_getevents,
                self.id,
                1i64,
                1i64,
                ev.as_mut_ptr(),
                &ts,
            )
        };
        let n = sys::cvt_long(n).map_err(|e| format!("io_getevents: {}", errno_text(&e)))?;
        if n != 1 {
            return Err("io_getevents: no completion within 5 s".into());
        }
        let mut p = Problems::new();
        let e = ev[0];
        p.expect_eq(
            "completion: cookie",
            format!("{cookie:#x}"),
            format!("{:#x}", e.data),
        );
        p.expect_eq(
            "completion: iocb",
            format!("{:#x}", &*self.iocb as *const Iocb as u64),
            format!("{:#x}", e.obj),
        );
        p.expect_eq("completion: result", LEN as i64, e.res);
        if let Some(at) = (0..LEN).find(|i| self.buf[*i] != byte_at(LEN + i)) {
            p.push(format!(
                "completion: byte {at} of the buffer is {:#04x}, the file has {:#04x}",
                self.buf[at],
                byte_at(LEN + at)
            ));
        }
        p.into_result()
    }

    fn check(&self) -> Result<(), String> {
        let h = self.header();
        let mut p = Problems::new();
        p.expect_eq(
            "aio ring: magic",
            format!("{MAGIC:#x}"),
            format!("{:#x}", h.magic),
        );
        p.expect_eq("aio ring: head", self.head, h.head);
        p.expect_eq("aio ring: tail", self.tail, h.tail);
        p.expect_eq(
            "aio ring: completions waiting",
            1,
            h.tail.wrapping_sub(h.head) % h.nr.max(1),
        );
        p.into_result()
    }
}

fn setup(wl: &Workload) -> Result<Ctx, String> {
    let path = wl.path("aio.dat");
    let data: Vec<u8> = (0..3 * LEN).map(byte_at).collect();
    std::fs::write(&path, &data).map_err(|e| format!("write {}: {e}", path.display()))?;
    let file = sys::open(&path, libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .map_err(|e| format!("open {}: {}", path.display(), errno_text(&e)))?;
    let id = io_setup(EVENTS).map_err(|e| format!("io_setup({EVENTS}): {}", errno_text(&e)))?;
    let mut ctx = Ctx {
        id,
        file,
        buf: Box::new([0; LEN]),
        iocb: Box::default(),
        head: 0,
        tail: 0,
    };
    let before = ctx.header();
    ctx.submit(COOKIE)?;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ctx.header().tail == before.tail {
        if std::time::Instant::now() > end {
            return Err("the read did not complete within 5 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let h = ctx.header();
    (ctx.head, ctx.tail) = (h.head, h.tail);
    Ok(ctx)
}

/// Sets the context up with one completion waiting, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut ctx = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    let h = ctx.header();
    let detail = format!(
        "ring={:#x} nr={} head={} tail={} (one completion waiting)",
        ctx.id, h.nr, h.head, h.tail
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| ctx.check())?;
    ctx.check()?;
    ctx.reap(COOKIE)?;
    ctx.buf.fill(0);
    ctx.submit(COOKIE + 1)?;
    ctx.reap(COOKIE + 1)?;
    Ok(format!(
        "the AIO ring kept its waiting completion over {ticks} checks; it was reaped with its cookie and data, and a new read completed"
    ))
}
