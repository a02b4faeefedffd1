//! A tree held still by the cgroup v2 freezer around the end of a dump that leaves it
//! running. criu's action script reads the tree at `post-dump` (seized, as the images hold
//! it) and then freezes the tree's cgroup; when criu lets the tasks go they stop at once
//! (the freezer's trap comes before any instruction of theirs), so the read after the dump
//! sees the tree exactly as criu left it, and it is thawed after. The tree notices none of
//! it: the freezer sends no signal and a frozen task's sleep goes on where it was. criu's
//! own seizing is not changed (no `--freeze-cgroup`: criu 3.17 handed a cgroup already
//! frozen timed out now and then on a shell whose child was exiting).
//!
//! The criu backend starts the tree in a cgroup of its own ([`TreeCgroup`]); an LXC
//! container has one already.

use nix::errno::Errno;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where cgroup v2 is mounted (in the guest, and on a host that has it).
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How long a freeze may take to reach every task.
const FREEZE_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("{op} {path}: {errno}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("{path} did not report `frozen 1` within {} s", FREEZE_WAIT.as_secs())]
    NotFrozen { path: PathBuf },
}

/// A cgroup of the executor's own, for one tree.
#[derive(Debug)]
pub struct TreeCgroup {
    path: PathBuf,
    /// `<path>/cgroup.procs`, ready for the child to write before it runs the workload.
    procs: CString,
}

impl TreeCgroup {
    /// Makes the cgroup `crtest-<name>` (a fresh one: an old one of that name is removed).
    /// Fails where there is no cgroup v2 freezer (a host with cgroup v1).
    pub fn make(name: &str) -> Result<TreeCgroup, FreezeError> {
        let root = Path::new(CGROUP_ROOT);
        let sys = |op, path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| FreezeError::Sys {
                op,
                path,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            }
        };
        // The root has no cgroup.freeze of its own; cgroup.controllers says it is cgroup v2.
        std::fs::metadata(root.join("cgroup.controllers"))
            .map_err(sys("stat", &root.join("cgroup.controllers")))?;
        let path = root.join(format!("crtest-{}", sanitise(name)));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).map_err(sys("mkdir", &path))?;
        let procs =
            CString::new(path.join("cgroup.procs").as_os_str().as_bytes()).map_err(|_| {
                FreezeError::Sys {
                    op: "name",
                    path: path.clone(),
                    errno: Errno::EINVAL,
                }
            })?;
        Ok(TreeCgroup { path, procs })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What moves the calling process into the cgroup, for a child between fork and exec
    /// (`pre_exec`): it only opens and writes, no allocation.
    pub fn joiner(&self) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
        let procs = self.procs.clone();
        move || {
            use nix::fcntl::{open, OFlag};
            use nix::sys::stat::Mode;
            use std::os::fd::{FromRawFd, OwnedFd};
            let raw = open(procs.as_c_str(), OFlag::O_WRONLY, Mode::empty())?;
            // SAFETY: `raw` was just opened here and is owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            nix::unistd::write(&fd, b"0")?;
            Ok(())
        }
    }

    fn set(&self, frozen: bool) -> Result<(), FreezeError> {
        set(&self.path.join("cgroup.freeze"), frozen)
    }

    /// Thaws and removes the cgroup once its tasks are gone (waits a little for them).
    pub fn remove(self) {
        let _ = self.set(false);
        let end = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.path).is_err() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn set(file: &Path, frozen: bool) -> Result<(), FreezeError> {
    std::fs::write(file, if frozen { "1" } else { "0" }).map_err(|e| FreezeError::Sys {
        op: "write",
        path: file.to_path_buf(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })
}

/// Freezes the cgroup at `path` without waiting (the action script, while criu holds the
/// tasks: they freeze as criu lets them go).
pub fn freeze_now(path: &Path) -> Result<(), FreezeError> {
    set(&path.join("cgroup.freeze"), true)
}

/// Waits until the cgroup at `path` reports `frozen 1`.
pub fn wait_frozen(path: &Path) -> Result<(), FreezeError> {
    let events = path.join("cgroup.events");
    let end = Instant::now() + FREEZE_WAIT;
    loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if text.lines().any(|l| l.trim() == "frozen 1") {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(FreezeError::NotFrozen { path: events });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Thaws the cgroup at `path` when dropped, whatever happened meanwhile.
pub fn thaw_on_drop(path: &Path) -> Thaw {
    Thaw {
        file: path.join("cgroup.freeze"),
    }
}

/// The cgroup v2 folder of process `pid` (`0::/lxc.payload.c` -> `/sys/fs/cgroup/lxc.payload.c`);
/// `None` for the root cgroup (which cannot be frozen) or on cgroup v1.
pub fn cgroup_of(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroup_path(&text)
}

fn cgroup_path(proc_cgroup: &str) -> Option<PathBuf> {
    let rel = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim()
        .trim_start_matches('/');
    let ok = !rel.is_empty() && rel.split('/').all(|c| !c.is_empty() && c != "..");
    ok.then(|| Path::new(CGROUP_ROOT).join(rel))
}

/// See [`thaw_on_drop`].
pub struct Thaw {
    file: PathBuf,
}

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = set(&self.file, false);
    }
}

/// A scenario name as a cgroup name: letters, digits, `-`, `_`, `.`; the rest `_`.
fn sanitise(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_become_cgroup_names() {
        assert_eq!(sanitise("fileio1@leave-running"), "fileio1_leave-running");
        assert_eq!(sanitise("../x y"), ".._x_y");
    }

    #[test]
    fn frozen_is_what_cgroup_events_says_and_the_guard_thaws() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path();
        std::fs::write(cg.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        std::fs::write(cg.join("cgroup.freeze"), "1").unwrap();
        {
            let _thaw = thaw_on_drop(cg);
            wait_frozen(cg).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(cg.join("cgroup.freeze")).unwrap(),
            "0"
        );
        freeze_now(cg).unwrap();
        assert_eq!(
            std::fs::read_to_string(cg.join("cgroup.freeze")).unwrap(),
            "1"
        );
        let e = freeze_now(&cg.join("missing")).unwrap_err().to_string();
        assert!(e.starts_with("write ") && e.contains("ENOENT"), "{e}");
    }

    #[test]
    fn a_process_s_cgroup_folder() {
        assert_eq!(
            cgroup_path("0::/lxc.payload.c1\n"),
            Some(PathBuf::from("/sys/fs/cgroup/lxc.payload.c1"))
        );
        assert_eq!(cgroup_path("0::/\n"), None, "the root cannot be frozen");
        assert_eq!(cgroup_path("0::/a/../../etc\n"), None);
        assert_eq!(cgroup_path("1:name=systemd:/x\n"), None, "cgroup v1");
    }
}
