//! A guest saved at the moment its agent is ready, and guests resumed from it.
//!
//! The state is QEMU's migration stream written to a file (`migrate exec:cat > FILE`) and read
//! back with `-incoming exec:cat FILE`: QEMU 7.2 (Debian 12) has no `file:` migration, and a
//! stream holds only the pages the guest touched (zero pages are a flag each). The disks stay
//! as they were because the guest has not written them when it is saved: its root and data
//! disk are mounted read-only until it is resumed (see the agent). The 9p shares are not
//! mounted either (QEMU refuses to migrate while one is): a resumed guest mounts its run's.
//!
//! A resumed guest must be started with the very argv of the saved one plus `-incoming`; the
//! key of a saved state ([`state_key`]) is that argv with the per-run paths replaced, the
//! identity of every file it loads, and QEMU's version.

use crate::qemu::VmSpec;
use crate::qmp::{Qmp, QmpError};
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bumped when what a saved guest holds changes (the agent's save protocol).
pub const FORMAT: &str = "vmstate-v2";
/// The state file's name in its cache entry.
pub const STATE_FILE: &str = "state";

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("QEMU's migration to {path} failed: {desc}")]
    Failed { path: PathBuf, desc: String },
    #[error("QEMU's migration to {path} did not finish within {secs} s (status {status})")]
    Timeout {
        path: PathBuf,
        secs: u64,
        status: String,
    },
    #[error("the resumed guest is `{status}`, not running")]
    NotRunning { status: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A path as one shell word (QEMU runs an `exec:` URI with `/bin/sh -c`).
pub fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `-incoming` argument that reads a saved state.
pub fn incoming_uri(state: &Path) -> String {
    format!("exec:cat {}", shell_word(state))
}

/// The `exec:` URI that writes a saved state: to `<state>.part`, renamed to `state` once
/// `cat` has all of it.
pub fn save_uri(state: &Path) -> String {
    let part = state.with_extension("part");
    format!(
        "exec:cat > {part} && mv -f {part} {state}",
        part = shell_word(&part),
        state = shell_word(state)
    )
}

/// The `status` of a `query-migrate` or `query-status` answer.
fn status_of(info: &serde_json::Value) -> String {
    info.get("status")
        .and_then(|s| s.as_str())
        .unwrap_or("none")
        .to_string()
}

/// How far the save got, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub bytes: u64,
    pub ms: u64,
}

/// Saves the running guest of `qmp` to `state` and leaves QEMU stopped. No bandwidth limit
/// (QEMU's default of 32 MiB/s would make a save of a few hundred MiB last seconds).
pub fn save(qmp: &mut Qmp, state: &Path, limit: Duration) -> Result<Saved, SaveError> {
    let start = Instant::now();
    qmp.execute(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": 64u64 << 30, "downtime-limit": 60_000})),
    )?;
    qmp.execute("stop", None)?;
    // `cat` writes a part file and renames it when it has all of it: QEMU's `completed`
    // only says the stream is in the pipe.
    qmp.execute("migrate", Some(json!({ "uri": save_uri(state) })))?;
    loop {
        let info = qmp.execute("query-migrate", None)?;
        let status = status_of(&info);
        match status.as_str() {
            "completed" => break,
            "failed" | "cancelled" => {
                let desc = info
                    .get("error-desc")
                    .and_then(|s| s.as_str())
                    .unwrap_or("no reason given")
                    .to_string();
                return Err(SaveError::Failed {
                    path: state.to_path_buf(),
                    desc,
                });
            }
            _ if start.elapsed() > limit => {
                return Err(SaveError::Timeout {
                    path: state.to_path_buf(),
                    secs: limit.as_secs(),
                    status,
                })
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let bytes = wait_for_file(state, start + limit)?;
    Ok(Saved {
        bytes,
        ms: start.elapsed().as_millis() as u64,
    })
}

/// The size of `state` once `cat` has renamed it into place.
fn wait_for_file(state: &Path, deadline: Instant) -> Result<u64, SaveError> {
    loop {
        match std::fs::metadata(state) {
            Ok(m) => return Ok(m.len()),
            Err(source) if Instant::now() > deadline => {
                return Err(SaveError::Io {
                    path: state.to_path_buf(),
                    source,
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Waits until the guest QEMU is resuming runs (migration read in); a guest that arrives
/// paused (saved after `stop`) is continued.
pub fn wait_running(qmp: &mut Qmp, deadline: Instant) -> Result<(), SaveError> {
    loop {
        let info = qmp.execute("query-status", None)?;
        let status = status_of(&info);
        match status.as_str() {
            "running" => return Ok(()),
            "paused" | "postmigrate" | "prelaunch" => {
                qmp.execute("cont", None)?;
            }
            "inmigrate" | "restore-vm" if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => return Err(SaveError::NotRunning { status }),
        }
    }
}

/// A file as the key of a saved state sees it: path, size and modification time (a cache
/// entry is never changed in place, and a user's kernel that is rebuilt changes all three).
pub fn identity(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "{}:{}:{}.{}",
            path.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ),
        Err(e) => format!("{}: {e}", path.display()),
    }
}

/// The key of the state saved from `spec` under QEMU `qemu_version`: the argv with the
/// per-run paths (results, console, events, sockets) replaced, and the identity of every
/// file the guest loads.
pub fn state_key(spec: &VmSpec, qemu_version: &str) -> String {
    let fixed = VmSpec {
        results_dir: "/run-dir/guest".into(),
        console_log: "/run-dir/console.log".into(),
        events_log: "/run-dir/events.jsonl".into(),
        sockets_dir: "/sockets".into(),
        incoming: None,
        // What the card is joined to is not the guest's state.
        link: spec.link.as_ref().map(|_| crate::qemu::Link::Unplugged),
        ..spec.clone()
    };
    let argv = crate::qemu::argv(&fixed).join("\n");
    let mut files = vec![
        identity(&spec.kernel),
        identity(&spec.initrd),
        identity(&spec.rootfs),
    ];
    if let Some(d) = &spec.data_disk {
        files.push(identity(d));
    }
    let files = files.join("\n");
    crate::cache::key_of(&[
        FORMAT.as_bytes(),
        qemu_version.as_bytes(),
        argv.as_bytes(),
        files.as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Accel;

    fn spec(dir: &Path) -> VmSpec {
        let f = |n: &str| {
            let p = dir.join(n);
            std::fs::write(&p, n).unwrap();
            p
        };
        VmSpec {
            kernel: f("vmlinuz"),
            initrd: f("initrd"),
            rootfs: f("root.ext4"),
            data_disk: None,
            modules_dir: "/c/lib/modules".into(),
            results_dir: "/r1/guest".into(),
            results_tag: "crtest-results".into(),
            modules_tag: "crtest-modules".into(),
            console_log: "/r1/console.log".into(),
            events_log: "/r1/events-1.jsonl".into(),
            sockets_dir: "/tmp/crtest-a".into(),
            incoming: None,
            save_mode: true,
            memory_mib: 2048,
            cpus: 1,
            accel: Accel::Tcg,
            cpu: None,
            link: None,
        }
    }

    #[test]
    fn per_run_paths_do_not_change_the_key_and_the_rest_does() {
        let dir = tempfile::tempdir().unwrap();
        let a = spec(dir.path());
        let key = state_key(&a, "QEMU 7.2.22");
        let other_run = VmSpec {
            results_dir: "/r2/guest".into(),
            console_log: "/r2/console.log".into(),
            events_log: "/r2/events-9.jsonl".into(),
            sockets_dir: "/tmp/crtest-b".into(),
            incoming: Some("/c/state".into()),
            ..a.clone()
        };
        assert_eq!(state_key(&other_run, "QEMU 7.2.22"), key);
        let linked = |link| VmSpec {
            link: Some(link),
            ..a.clone()
        };
        let saved = state_key(&linked(crate::qemu::Link::Unplugged), "QEMU 7.2.22");
        assert_ne!(saved, key, "a card is another machine");
        let peer = crate::qemu::Link::Peer {
            local: "/tmp/crtest-b/a".into(),
            remote: "/tmp/crtest-c/b".into(),
        };
        assert_eq!(
            state_key(&linked(peer), "QEMU 7.2.22"),
            saved,
            "joined at resume"
        );
        let haswell = VmSpec {
            cpu: Some("Haswell".into()),
            ..a.clone()
        };
        assert_ne!(state_key(&haswell, "QEMU 7.2.22"), key, "CPU model");
        assert_ne!(state_key(&a, "QEMU 8.2.0"), key, "QEMU version");
        let two_cpus = VmSpec {
            cpus: 2,
            ..a.clone()
        };
        assert_ne!(state_key(&two_cpus, "QEMU 7.2.22"), key, "machine options");
        let with_disk = VmSpec {
            data_disk: Some(dir.path().join("initrd")),
            ..a.clone()
        };
        assert_ne!(state_key(&with_disk, "QEMU 7.2.22"), key, "a data disk");
        // A rebuilt initramfs (other size) is another state.
        std::fs::write(&a.initrd, "a larger initramfs").unwrap();
        assert_ne!(state_key(&a, "QEMU 7.2.22"), key, "initramfs changed");
    }

    #[test]
    fn a_state_appears_only_when_cat_has_all_of_it() {
        assert_eq!(
            save_uri(Path::new("/c/k/state")),
            "exec:cat > '/c/k/state.part' && mv -f '/c/k/state.part' '/c/k/state'"
        );
    }

    #[test]
    fn state_paths_are_one_shell_word() {
        assert_eq!(
            incoming_uri(Path::new("/c/it's here/state")),
            r"exec:cat '/c/it'\''s here/state'"
        );
    }
}
