//! `openflags`: descriptors with different open flags, offsets and close-on-exec bits.
//!
//! In the work dir it creates `ro.dat` and `rw.dat` (patterns) and `wo.dat`, and opens:
//!
//! | label | flags | offset |
//! |---|---|---|
//! | `ro.dat` | `O_RDONLY` | 1000 |
//! | `wo.dat` | `O_WRONLY\|O_DSYNC` | 777 (after writing 777 bytes) |
//! | `rw.dat` | `O_RDWR\|O_NONBLOCK\|O_CLOEXEC` | 2048 |
//! | `rw.dat dup` | `dup` of the above: same open file description, no `FD_CLOEXEC` | 2048 |
//! | `rw.dat again` | `O_RDWR\|O_NOATIME`, a second description of the same file | 5 |
//! | `subdir` | `O_RDONLY\|O_DIRECTORY` | 0 |
//!
//! Every tick it checks each descriptor's `F_GETFL`, `FD_CLOEXEC`, offset and inode, and
//! the files' contents (with `pread`, which leaves offsets alone). On SIGTERM it checks the
//! same, then shows the descriptors still work: it reads through `ro.dat` and through the
//! dup (whose offset move must show on `rw.dat`, their shared description, and not on
//! `rw.dat again`), writes through `wo.dat` and `rw.dat again`, and reads it all back.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::{self, create_with, fd_err, open, pread_all, seek, FdExpect};
use crate::protocol::Workload;
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Program name.
pub const NAME: &str = "openflags";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const RO_LEN: usize = 4096;
const RW_LEN: usize = 8192;
const WO_WRITTEN: usize = 777;

struct State {
    dir: PathBuf,
    ro: OwnedFd,
    wo: OwnedFd,
    rw: OwnedFd,
    dup: OwnedFd,
    rw2: OwnedFd,
    _subdir: OwnedFd,
    expect: Vec<FdExpect>,
    ro_data: Vec<u8>,
    rw_data: Vec<u8>,
    wo_data: Vec<u8>,
}

fn setup(wl: &Workload) -> Result<State, String> {
    let dir = wl.dir().to_path_buf();
    let ro_data = pattern(1, RO_LEN);
    let rw_data = pattern(3, RW_LEN);
    let wo_data = pattern(2, WO_WRITTEN);
    create_with(&dir.join("ro.dat"), &ro_data)?;
    create_with(&dir.join("rw.dat"), &rw_data)?;
    create_with(&dir.join("wo.dat"), b"")?;
    std::fs::create_dir_all(dir.join("subdir")).map_err(|e| format!("mkdir subdir: {e}"))?;

    let ro = open(&dir.join("ro.dat"), libc::O_RDONLY)?;
    seek("ro.dat", &ro, 1000)?;
    let wo = open(&dir.join("wo.dat"), libc::O_WRONLY | libc::O_DSYNC)?;
    sys::write_all(wo.as_raw_fd(), &wo_data)
        .map_err(|e| fd_err("wo.dat", wo.as_raw_fd(), "write", &e))?;
    let rw = open(
        &dir.join("rw.dat"),
        libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
    )?;
    seek("rw.dat", &rw, 2048)?;
    let dup = rw.try_clone().map_err(|e| format!("dup of rw.dat: {e}"))?;
    // try_clone uses F_DUPFD_CLOEXEC; a plain dup(2) has no FD_CLOEXEC.
    sys::fcntl_int(dup.as_raw_fd(), libc::F_SETFD, 0)
        .map_err(|e| fd_err("rw.dat dup", dup.as_raw_fd(), "F_SETFD", &e))?;
    let rw2 = open(&dir.join("rw.dat"), libc::O_RDWR | libc::O_NOATIME)?;
    seek("rw.dat again", &rw2, 5)?;
    let subdir = open(&dir.join("subdir"), libc::O_RDONLY | libc::O_DIRECTORY)?;

    let expect = vec![
        FdExpect::record("ro.dat", &ro)?,
        FdExpect::record("wo.dat", &wo)?,
        FdExpect::record("rw.dat", &rw)?,
        FdExpect::record("rw.dat dup", &dup)?,
        FdExpect::record("rw.dat again", &rw2)?,
        FdExpect::record("subdir", &subdir)?,
    ];
    Ok(State {
        dir,
        ro,
        wo,
        rw,
        dup,
        rw2,
        _subdir: subdir,
        expect,
        ro_data,
        rw_data,
        wo_data,
    })
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for e in &self.expect {
            e.check(&mut p);
        }
        for (name, fd, data) in [
            ("ro.dat", &self.ro, &self.ro_data),
            ("rw.dat", &self.rw, &self.rw_data),
        ] {
            if let Some(got) = p.take(pread_all(name, fd)) {
                p.check(compare_bytes(&format!("content of {name}"), data, &got));
            }
            p.check(files::names_inode(
                &self.dir.join(name),
                files::inode(fd.as_raw_fd()).unwrap_or(0),
            ));
        }
        match std::fs::read(self.dir.join("wo.dat")) {
            Ok(got) => p.check(compare_bytes("content of wo.dat", &self.wo_data, &got)),
            Err(e) => p.push(format!("cannot read wo.dat: {e}")),
        }
        p.into_result()
    }

    /// Uses every descriptor once more and checks what that did.
    fn exercise(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        // ro.dat: read(2) continues at offset 1000.
        let mut buf = [0u8; 100];
        match sys::read(self.ro.as_raw_fd(), &mut buf) {
            Ok(n) => p.check(compare_bytes(
                "read(ro.dat) at its offset 1000",
                &self.ro_data[1000..1100],
                &buf[..n],
            )),
            Err(e) => p.push(fd_err("ro.dat", self.ro.as_raw_fd(), "read", &e)),
        }
        // The dup shares its offset with rw.dat, not with rw.dat again.
        let mut buf = [0u8; 16];
        match sys::read(self.dup.as_raw_fd(), &mut buf) {
            Ok(n) => p.check(compare_bytes(
                "read(rw.dat dup) at offset 2048",
                &self.rw_data[2048..2064],
                &buf[..n],
            )),
            Err(e) => p.push(fd_err("rw.dat dup", self.dup.as_raw_fd(), "read", &e)),
        }
        match sys::offset(self.rw.as_raw_fd()) {
            Ok(o) => p.expect_eq(
                "offset of rw.dat after reading 16 bytes through its dup (one shared description)",
                2064,
                o,
            ),
            Err(e) => p.push(fd_err("rw.dat", self.rw.as_raw_fd(), "lseek", &e)),
        }
        match sys::offset(self.rw2.as_raw_fd()) {
            Ok(o) => p.expect_eq(
                "offset of rw.dat again (a separate description) after reading through the dup",
                5,
                o,
            ),
            Err(e) => p.push(fd_err("rw.dat again", self.rw2.as_raw_fd(), "lseek", &e)),
        }
        // Writes land where the offsets say.
        if let Err(e) = sys::write_all(self.rw2.as_raw_fd(), b"after restore") {
            p.push(fd_err("rw.dat again", self.rw2.as_raw_fd(), "write", &e));
        } else {
            self.rw_data[5..18].copy_from_slice(b"after restore");
        }
        if let Err(e) = sys::write_all(self.wo.as_raw_fd(), b"more") {
            p.push(fd_err("wo.dat", self.wo.as_raw_fd(), "write", &e));
        } else {
            self.wo_data.extend_from_slice(b"more");
        }
        if let Some(got) = p.take(pread_all("rw.dat", &self.rw)) {
            p.check(compare_bytes(
                "rw.dat after writing through rw.dat again",
                &self.rw_data,
                &got,
            ));
        }
        match std::fs::read(self.dir.join("wo.dat")) {
            Ok(got) => p.check(compare_bytes("wo.dat after a write", &self.wo_data, &got)),
            Err(e) => p.push(format!("cannot read wo.dat: {e}")),
        }
        p.into_result()
    }

    fn describe(&self) -> String {
        let fds: Vec<String> = self
            .expect
            .iter()
            .map(|e| format!("{}={}", e.label.replace(' ', "-"), e.fd))
            .collect();
        format!(
            "{} descriptors with their own flags and offsets: {}",
            self.expect.len(),
            fds.join(" ")
        )
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = st.describe();
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "{} descriptors kept flags, FD_CLOEXEC, offsets and files over {ticks} checks; reads and writes continue at the right offsets",
        st.expect.len()
    ))
}
