//! `mntns`: a mount namespace with a private tmpfs (needs root).
//!
//! The workload enters a new mount namespace, makes every mount private, and mounts in its
//! work dir:
//!
//! - `mnt`: a tmpfs (source `crtest-tmpfs`, `size=1m,mode=750`, `nosuid,nodev`) holding
//!   `data` (10 KiB of pattern, also held open at offset 100) and `sub/file`;
//! - `bind`: a read-only bind mount of `mnt/sub`.
//!
//! Every tick it checks both mounts in `/proc/self/mountinfo` (type, source, options,
//! root, same filesystem), that the first process of the outer namespace does not see
//! them, the files' contents and the open descriptor. On SIGTERM it checks the same, then
//! writes a new file into the tmpfs and reads it back, and requires the read-only bind to
//! refuse a write (`EROFS`).

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::files::{create_with, open, pread_all, seek, FdExpect};
use crate::ns::{ns_inode, unshare};
use crate::protocol::{errno_text, Workload};
use crate::{procfs, steady, sys};
use nix::libc;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Program name.
pub const NAME: &str = "mntns";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const SOURCE: &str = "crtest-tmpfs";

fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |s: &str| CString::new(s).expect("no NUL");
    let (src, fs, dat) = (source.map(c), fstype.map(c), data.map(c));
    let tgt = sys::cpath(target).map_err(|e| e.to_string())?;
    let ptr = |o: &Option<CString>| o.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: valid C strings or null.
    sys::cvt(unsafe { libc::mount(ptr(&src), tgt.as_ptr(), ptr(&fs), flags, ptr(&dat).cast()) })
        .map(|_| ())
        .map_err(|e| {
            format!(
                "mount {} on {}: {e}",
                source.unwrap_or("-"),
                target.display()
            )
        })
}

/// One line of `/proc/PID/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    pub dev: String,
    pub root: String,
    pub point: String,
    pub options: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

/// Parses a mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let a: Vec<&str> = left.split_whitespace().collect();
            let b: Vec<&str> = right.split_whitespace().collect();
            Some(MountLine {
                dev: a.get(2)?.to_string(),
                root: a.get(3)?.to_string(),
                point: a.get(4)?.to_string(),
                options: a.get(5)?.to_string(),
                fstype: b.first()?.to_string(),
                source: b.get(1)?.to_string(),
                super_options: b.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

struct State {
    mnt: PathBuf,
    bind: PathBuf,
    data: Vec<u8>,
    sub: Vec<u8>,
    fd: OwnedFd,
    expect: FdExpect,
}

fn setup(wl: &Workload) -> Result<State, String> {
    unshare(libc::CLONE_NEWNS, "CLONE_NEWNS")?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let mnt = wl.path("mnt");
    let bind = wl.path("bind");
    for d in [&mnt, &bind] {
        std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    mount(
        Some(SOURCE),
        &mnt,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=1m,mode=750"),
    )?;
    let data = pattern(141, 10 * 1024);
    let sub = pattern(142, 333);
    create_with(&mnt.join("data"), &data)?;
    std::fs::create_dir(mnt.join("sub")).map_err(|e| format!("mkdir mnt/sub: {e}"))?;
    create_with(&mnt.join("sub/file"), &sub)?;
    mount(
        Some(&mnt.join("sub").display().to_string()),
        &bind,
        None,
        libc::MS_BIND,
        None,
    )?;
    mount(
        None,
        &bind,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        None,
    )?;
    let fd = open(&mnt.join("data"), libc::O_RDWR)?;
    seek("mnt/data", &fd, 100)?;
    Ok(State {
        // The tmpfs is part of the checkpoint: a restore makes it anew, with new inodes.
        expect: FdExpect::record("mnt/data", &fd)?.without_inode(),
        mnt,
        bind,
        data,
        sub,
        fd,
    })
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let text = procfs::read("/proc/self/mountinfo")?;
        let lines = parse_mountinfo(&text);
        let find = |point: &Path| {
            lines
                .iter()
                .rev()
                .find(|l| Path::new(&l.point) == point)
                .cloned()
        };
        let mnt = find(&self.mnt);
        match &mnt {
            Some(l) => {
                let mut bad = Vec::new();
                if l.fstype != "tmpfs" || l.source != SOURCE {
                    bad.push(format!("type {} source {}", l.fstype, l.source));
                }
                for o in ["nosuid", "nodev"] {
                    if !l.options.split(',').any(|x| x == o) {
                        bad.push(format!("mount options {} lack {o}", l.options));
                    }
                }
                for o in ["size=1024k", "mode=750"] {
                    if !l.super_options.split(',').any(|x| x == o) {
                        bad.push(format!("superblock options {} lack {o}", l.super_options));
                    }
                }
                if !bad.is_empty() {
                    p.push(format!(
                        "tmpfs on {}: {}",
                        self.mnt.display(),
                        bad.join("; ")
                    ));
                }
            }
            None => p.push(format!(
                "no mount on {} in /proc/self/mountinfo",
                self.mnt.display()
            )),
        }
        match find(&self.bind) {
            Some(l) => {
                let ro = l.options.split(',').any(|x| x == "ro");
                let same_fs = mnt.as_ref().is_some_and(|m| m.dev == l.dev);
                if l.root != "/sub" || !ro || !same_fs {
                    p.push(format!(
                        "bind mount on {}: root {} options {} device {}, expected root /sub, ro, the tmpfs's device {}",
                        self.bind.display(),
                        l.root,
                        l.options,
                        l.dev,
                        mnt.as_ref().map_or("?", |m| m.dev.as_str())
                    ));
                }
            }
            None => p.push(format!(
                "no mount on {} in /proc/self/mountinfo",
                self.bind.display()
            )),
        }
        // The outer namespace must not see them.
        if let (Ok(mine), Ok(outer)) = (ns_inode("self", "mnt"), ns_inode("1", "mnt")) {
            if mine == outer {
                p.push(format!(
                    "the workload shares its mount namespace {mine} with pid 1"
                ));
            } else if let Ok(outer_text) = procfs::read("/proc/1/mountinfo") {
                let point = self.mnt.display().to_string();
                if parse_mountinfo(&outer_text)
                    .iter()
                    .any(|l| l.point == point)
                {
                    p.push(format!(
                        "pid 1's mount namespace sees the private mount on {point}"
                    ));
                }
            }
        }
        self.expect.check(&mut p);
        if let Some(got) = p.take(pread_all("mnt/data", &self.fd)) {
            p.check(compare_bytes(
                "mnt/data (in the private tmpfs)",
                &self.data,
                &got,
            ));
        }
        match std::fs::read(self.bind.join("file")) {
            Ok(got) => p.check(compare_bytes(
                "bind/file (the read-only bind of mnt/sub)",
                &self.sub,
                &got,
            )),
            Err(e) => p.push(format!(
                "read {}: {}",
                self.bind.join("file").display(),
                errno_text(&e)
            )),
        }
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let new = self.mnt.join("sub/new");
        match std::fs::write(&new, b"written after")
            .and_then(|_| std::fs::read(self.bind.join("new")))
        {
            Ok(got) if got == b"written after" => {}
            Ok(got) => p.push(format!(
                "a new file in the tmpfs reads back through the bind as {got:?}"
            )),
            Err(e) => p.push(format!("a new file in the tmpfs: {}", errno_text(&e))),
        }
        match std::fs::write(self.bind.join("refused"), b"x") {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            other => p.push(format!(
                "writing into the read-only bind: expected EROFS, got {other:?}"
            )),
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup(wl).unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "own mount namespace: tmpfs {} on {} (size=1m,mode=750), read-only bind of mnt/sub on {}",
        SOURCE,
        st.mnt.display(),
        st.bind.display()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.exercise()?;
    Ok(format!(
        "the private tmpfs and its read-only bind kept their options and files over {ticks} checks, invisible outside; writes still land, and the bind still refuses them"
    ))
}
