//! `sharedfds`: one open file description shared by two processes.
//!
//! The workload opens `shared.dat` (`O_RDWR`, offset 100) and forks a helper that inherits
//! the descriptor: both hold the same open file description, so they share its offset and
//! its status flags. A restore that reopens the file once per process instead gives each
//! its own offset.
//!
//! Every tick the workload checks its descriptor and asks the helper for the offset it
//! sees. On SIGTERM: the workload seeks to 3000 and the helper must see 3000; the helper
//! seeks to 4000 and the workload must see 4000; the workload sets `O_NONBLOCK` and the
//! helper must see it; then the helper exits.

use crate::args::{Args, Opt};
use crate::check::{pattern, Problems};
use crate::family::{self, Helper};
use crate::files::{create_with, open, seek, FdExpect};
use crate::protocol::Workload;
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};

/// Program name.
pub const NAME: &str = "sharedfds";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

struct State {
    fd: OwnedFd,
    expect: FdExpect,
    helper: Helper,
}

fn serve(fd: i32, req: &str) -> Result<String, String> {
    let words: Vec<&str> = req.split_whitespace().collect();
    match words.as_slice() {
        ["offset"] => sys::offset(fd)
            .map(|o| o.to_string())
            .map_err(|e| format!("lseek: {e}")),
        ["flags"] => sys::status_flags(fd)
            .map(|f| sys::open_flags_text(f & crate::files::FLAG_MASK))
            .map_err(|e| format!("F_GETFL: {e}")),
        ["seek", pos] => {
            let pos: u64 = pos.parse().map_err(|_| format!("bad position {pos}"))?;
            sys::seek_to(fd, pos)
                .map(|_| "done".to_string())
                .map_err(|e| format!("lseek: {e}"))
        }
        _ => Err(format!("unknown request `{req}`")),
    }
}

fn setup(wl: &Workload) -> Result<State, String> {
    let path = wl.path("shared.dat");
    create_with(&path, &pattern(11, 8192))?;
    let fd = open(&path, libc::O_RDWR)?;
    seek("shared.dat", &fd, 100)?;
    let expect = FdExpect::record("shared.dat", &fd)?;
    let raw = fd.as_raw_fd();
    let helper = family::spawn("helper sharing shared.dat", move |req| serve(raw, req))?;
    Ok(State { fd, expect, helper })
}

impl State {
    fn helper_offset(&mut self) -> Result<u64, String> {
        let text = self.helper.ask("offset")?;
        text.parse()
            .map_err(|_| format!("{}: bad offset `{text}`", self.helper.who()))
    }

    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        self.expect.check(&mut p);
        if let Some(o) = p.take(self.helper_offset()) {
            p.expect_eq(
                &format!("offset of shared.dat seen by the {}", self.helper.who()),
                self.expect.offset.unwrap_or(0),
                o,
            );
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        let raw = self.fd.as_raw_fd();
        let mut p = Problems::new();
        p.check(seek("shared.dat", &self.fd, 3000));
        if let Some(o) = p.take(self.helper_offset()) {
            p.expect_eq(
                "offset the helper sees after the workload moved it to 3000",
                3000,
                o,
            );
        }
        p.take(self.helper.ask("seek 4000"));
        match sys::offset(raw) {
            Ok(o) => p.expect_eq(
                "offset the workload sees after the helper moved it to 4000",
                4000,
                o,
            ),
            Err(e) => p.push(format!("lseek(shared.dat): {e}")),
        }
        p.check(
            sys::fcntl_int(raw, libc::F_SETFL, libc::O_RDWR | libc::O_NONBLOCK)
                .map(|_| ())
                .map_err(|e| format!("F_SETFL O_NONBLOCK on shared.dat: {e}")),
        );
        if let Some(flags) = p.take(self.helper.ask("flags")) {
            p.expect_eq(
                "status flags the helper sees after the workload set O_NONBLOCK",
                "O_RDWR|O_NONBLOCK",
                flags.as_str(),
            );
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "shared.dat fd={} (offset 100) shared with helper={}",
        st.fd.as_raw_fd(),
        st.helper.pid
    );
    let result = steady::ready_then_tick(wl, args, &detail, |_| st.check()).and_then(|ticks| {
        st.check()?;
        st.exercise()?;
        Ok(ticks)
    });
    let ticks = match result {
        Ok(t) => t,
        Err(e) => {
            st.helper.kill();
            return Err(e);
        }
    };
    st.helper.finish()?;
    Ok(format!(
        "one description of shared.dat shared by two processes over {ticks} checks: offsets and flags set by either show in the other"
    ))
}
