//! `pipes`: pipes with unread data in them.
//!
//! - pipe 1: resized to 128 KiB (`F_SETPIPE_SZ`), 3000 bytes written and left unread;
//! - pipe 2: default size, filled to the brim (64 KiB, until `EAGAIN`);
//! - pipe 3: a helper holds the write end, the workload the read end; the helper wrote
//!   1000 bytes the workload has not read.
//!
//! Every tick it checks how many bytes wait in each pipe, each pipe's size, each end's
//! flags, and that the helper answers. On SIGTERM it checks the same, reads every pipe
//! empty comparing byte for byte, then writes and reads each once more (pipe 3 through the
//! helper).

use crate::args::{Args, Opt};
use crate::check::{pattern, Problems};
use crate::family::{self, Helper};
use crate::files::{fd_err, FdExpect};
use crate::ipc::{expect_queued, expect_read, round_trip, set_nonblocking};
use crate::protocol::Workload;
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "pipes";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const BIG: usize = 128 * 1024;

struct Pipe {
    label: &'static str,
    r: OwnedFd,
    w: Option<OwnedFd>,
    data: Vec<u8>,
    size: usize,
    ends: Vec<FdExpect>,
}

struct State {
    pipes: Vec<Pipe>,
    helper: Helper,
}

fn pipe_size(fd: &impl AsRawFd) -> std::io::Result<usize> {
    sys::fcntl_int(fd.as_raw_fd(), libc::F_GETPIPE_SZ, 0).map(|n| n as usize)
}

fn setup() -> Result<State, String> {
    // Pipe 1: bigger, some data.
    let (r1, w1) = sys::pipe(libc::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    sys::fcntl_int(w1.as_raw_fd(), libc::F_SETPIPE_SZ, BIG as i32)
        .map_err(|e| fd_err("pipe 1", w1.as_raw_fd(), "F_SETPIPE_SZ", &e))?;
    set_nonblocking(&r1)?;
    let d1 = pattern(61, 3000);
    sys::write_all(w1.as_raw_fd(), &d1)
        .map_err(|e| fd_err("pipe 1", w1.as_raw_fd(), "write", &e))?;
    // Pipe 2: full.
    let (r2, w2) = sys::pipe(libc::O_NONBLOCK).map_err(|e| format!("pipe: {e}"))?;
    let size2 = pipe_size(&w2).map_err(|e| fd_err("pipe 2", w2.as_raw_fd(), "F_GETPIPE_SZ", &e))?;
    let d2 = pattern(62, size2);
    let mut written = 0;
    for chunk in d2.chunks(4096) {
        match sys::write(w2.as_raw_fd(), chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(fd_err("pipe 2", w2.as_raw_fd(), "write", &e)),
        }
    }
    if sys::write(w2.as_raw_fd(), b"x").is_ok() {
        return Err("pipe 2 took a byte beyond its size".into());
    }
    let d2 = d2[..written].to_vec();
    // Pipe 3: the helper writes.
    let (r3, w3) = sys::pipe(libc::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    set_nonblocking(&r3)?;
    let (w3_raw, r3_raw) = (w3.as_raw_fd(), r3.as_raw_fd());
    let mut helper = family::spawn("writer helper", move |req| {
        let words: Vec<&str> = req.split_whitespace().collect();
        match words.as_slice() {
            ["init"] => {
                // SAFETY: the helper's copy of the read end is not used.
                unsafe { libc::close(r3_raw) };
                sys::write_all(w3_raw, &pattern(63, 1000))
                    .map(|_| "done".into())
                    .map_err(|e| format!("write: {e}"))
            }
            ["ping"] => Ok("pong".into()),
            ["write", seed, len] => {
                let (seed, len) = (seed.parse().unwrap_or(0), len.parse().unwrap_or(0));
                sys::write_all(w3_raw, &pattern(seed, len))
                    .map(|_| "done".into())
                    .map_err(|e| format!("write: {e}"))
            }
            _ => Err(format!("unknown request `{req}`")),
        }
    })?;
    helper.ask("init")?;
    let ends3 = vec![FdExpect::record("pipe 3 read end", &r3)?];
    drop(w3);
    let d3 = pattern(63, 1000);
    let size3 = pipe_size(&r3).map_err(|e| fd_err("pipe 3", r3.as_raw_fd(), "F_GETPIPE_SZ", &e))?;
    let pipes = vec![
        Pipe {
            label: "pipe 1",
            ends: vec![
                FdExpect::record("pipe 1 read end", &r1)?,
                FdExpect::record("pipe 1 write end", &w1)?,
            ],
            r: r1,
            w: Some(w1),
            data: d1,
            size: BIG,
        },
        Pipe {
            label: "pipe 2",
            ends: vec![
                FdExpect::record("pipe 2 read end", &r2)?,
                FdExpect::record("pipe 2 write end", &w2)?,
            ],
            r: r2,
            w: Some(w2),
            data: d2,
            size: size2,
        },
        Pipe {
            label: "pipe 3",
            ends: ends3,
            r: r3,
            w: None,
            data: d3,
            size: size3,
        },
    ];
    Ok(State { pipes, helper })
}

impl State {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        for pipe in &self.pipes {
            for e in &pipe.ends {
                e.check(&mut p);
            }
            expect_queued(&mut p, pipe.label, &pipe.r, pipe.data.len());
            match pipe_size(&pipe.r) {
                Ok(n) => p.expect_eq(&format!("{} size (F_GETPIPE_SZ)", pipe.label), pipe.size, n),
                Err(e) => p.push(fd_err(pipe.label, pipe.r.as_raw_fd(), "F_GETPIPE_SZ", &e)),
            }
        }
        p.take(self.helper.ask("ping"));
        p.into_result()
    }

    fn drain_and_use(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        for pipe in &self.pipes {
            expect_read(&mut p, pipe.label, &pipe.r, &pipe.data);
            if let Some(w) = &pipe.w {
                round_trip(&mut p, pipe.label, w, &pipe.r, &pattern(64, 5000));
            }
        }
        if p.take(self.helper.ask("write 65 700")).is_some() {
            expect_read(
                &mut p,
                "pipe 3 after the helper wrote again",
                &self.pipes[2].r,
                &pattern(65, 700),
            );
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "fds: pipe1={} (3000 bytes queued, size {BIG}) pipe2={} ({} bytes, full) pipe3={} (1000 bytes from helper={})",
        st.pipes[0].r.as_raw_fd(),
        st.pipes[1].r.as_raw_fd(),
        st.pipes[1].data.len(),
        st.pipes[2].r.as_raw_fd(),
        st.helper.pid
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| st.check()).and_then(|t| {
        st.check()?;
        st.drain_and_use()?;
        Ok(t)
    });
    match outcome {
        Ok(ticks) => {
            st.helper.finish()?;
            Ok(format!(
                "3 pipes kept their unread data ({} bytes in all), sizes and flags over {ticks} checks; every byte read back in order and the pipes still carry data",
                st.pipes.iter().map(|p| p.data.len()).sum::<usize>()
            ))
        }
        Err(e) => {
            st.helper.kill();
            Err(e)
        }
    }
}
