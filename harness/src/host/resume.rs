//! Guests that start from a saved state instead of a boot (see [`crtest_vm::saved_vm`]).
//!
//! Per cell and root image, one guest boots with `crtest.save=1`; when its agent says it is
//! ready to be saved (disks read-only, no share mounted), the host migrates it into a file in
//! the cache (`vmstate/<key>/state`) and stops it. Every guest after that is a QEMU started
//! with the same argv and `-incoming`: once it runs, the host writes `go <time>` on its
//! control port, and the agent sets the clock, makes its disks writable, mounts the run's
//! shares and reads its plan as after a boot. When saving or resuming fails, the cell boots
//! every guest as before and says why once.

use crate::host::guest_share::EventReader;
use crate::model::event::Event;
use crtest_vm::cache::{Cache, CacheError};
use crtest_vm::qemu::{self, QemuProcess, VmSpec};
use crtest_vm::qmp::Qmp;
use crtest_vm::saved_vm::{self, Saved, STATE_FILE};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The cache kind of saved states.
pub const KIND: &str = "vmstate";
/// Time for QEMU to write a saved state.
const SAVE_LIMIT: Duration = Duration::from_secs(120);
/// Time for a resumed QEMU to read its state and run.
const RESUME_LIMIT: Duration = Duration::from_secs(60);

/// The saved states a cell found or made, by key: shared by the cell's guests (shards are
/// threads), so a state that could not be saved is tried once per run, not once per guest.
#[derive(Debug, Clone, Default)]
pub struct SavedVms {
    known: Arc<Mutex<Vec<Known>>>,
}

/// A key and its state, or why there is none.
type Known = (String, Result<PathBuf, SaveFailed>);

/// Why a saved state is not there (remembered for the run, and shared by its guests: the
/// cause is kept as its message).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SaveFailed(pub String);

/// Why a resumed guest could not be sent on.
#[derive(Debug, thiserror::Error)]
pub enum SendOnError {
    #[error("QEMU's monitor")]
    Qmp(#[source] crtest_vm::qmp::QmpError),
    #[error("the resumed guest did not run")]
    NotRunning(#[source] crtest_vm::saved_vm::SaveError),
    #[error("control socket {}", path.display())]
    Control {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<CacheError> for SaveFailed {
    fn from(e: CacheError) -> Self {
        SaveFailed(e.to_string())
    }
}

/// A state found or saved, with how it was had.
#[derive(Debug, Clone)]
pub struct State {
    pub path: PathBuf,
    /// Set when this call saved it (a cache miss).
    pub saved: Option<Saved>,
}

impl SavedVms {
    /// The state saved from a guest of `spec` (its save-mode argv), from the cache, or saved
    /// now by a boot whose console, events and QEMU log go to `logs` (`console-save-<key>.log`,
    /// ...). The error says why there is none; it is remembered for this run.
    pub fn get(
        &self,
        spec: &VmSpec,
        qemu_version: &str,
        logs: &Path,
        boot_limit: Duration,
    ) -> Result<State, SaveFailed> {
        let key = saved_vm::state_key(spec, qemu_version);
        // Held while saving: the other guests of the cell wait for the one state they need.
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, r)) = known.iter().find(|(k, _)| *k == key) {
            return r.clone().map(|path| State { path, saved: None });
        }
        let cache = Cache::from_env()?;
        let slot = slot_of(spec);
        let mut saved = None;
        let r = cache
            .entry(KIND, &key, |tmp: &Path| {
                std::fs::write(tmp.join(SLOT_FILE), &slot)
                    .map_err(|e| SaveFailed(format!("{}: {e}", tmp.display())))?;
                // Files of their own: the events of an earlier save must not be read as this
                // guest's (QEMU empties the file only once it has started).
                let spec = VmSpec {
                    console_log: logs.join(format!("console-save-{key}.log")),
                    events_log: logs.join(format!("events-save-{key}.jsonl")),
                    ..spec.clone()
                };
                let _ = std::fs::remove_file(&spec.events_log);
                saved = Some(boot_and_save(
                    &spec,
                    &tmp.join(STATE_FILE),
                    &logs.join(format!("qemu-save-{key}.log")),
                    boot_limit,
                )?);
                Ok::<(), SaveFailed>(())
            })
            .map(|dir| dir.join(STATE_FILE))
            .map_err(|e| SaveFailed(crate::diagnose::chain::chain(&e)));
        if r.is_ok() && saved.is_some() {
            drop_replaced(&cache.root().join(KIND), &key, &slot);
        }
        known.push((key, r.clone()));
        r.map(|path| State { path, saved })
    }
}

/// Drops the saved state a guest could not be resumed from, so the next run saves a new
/// one (only inside a `vmstate/<key>/` entry).
pub fn forget(state: &Path) {
    let Some(entry) = state.parent() else {
        return;
    };
    if entry.parent().and_then(Path::file_name) == Some(std::ffi::OsStr::new(KIND)) {
        let _ = std::fs::remove_dir_all(entry);
    }
}

/// The file of a saved state's entry that says which guest it is a state of.
const SLOT_FILE: &str = "slot";

/// What stays the same when a saved state is replaced by a newer one of the same guest (a
/// rebuilt initramfs or image, another QEMU): the kernel, root and data disk paths and the
/// machine's size. States are hundreds of MiB: one per slot is kept.
fn slot_of(spec: &VmSpec) -> String {
    format!(
        "kernel {}\nroot {}\ndata {}\nmemory {} MiB, {} vCPUs, {}, cpu {}, card {}\n",
        spec.kernel.display(),
        spec.rootfs.display(),
        spec.data_disk
            .as_deref()
            .unwrap_or(Path::new("-"))
            .display(),
        spec.memory_mib,
        spec.cpus,
        spec.accel.as_str(),
        spec.cpu.as_deref().unwrap_or("max"),
        spec.link.is_some()
    )
}

/// Removes the other saved states of `slot` under `dir` (best effort: a state being read
/// by a running QEMU stays readable through its open file).
fn drop_replaced(dir: &Path, key: &str, slot: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let same_slot = std::fs::read_to_string(path.join(SLOT_FILE)).is_ok_and(|s| s == slot);
        if same_slot && e.file_name() != key {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Boots a save-mode guest and saves it into `state` when its agent says it may.
fn boot_and_save(
    spec: &VmSpec,
    state: &Path,
    qemu_log: &Path,
    limit: Duration,
) -> Result<Saved, SaveFailed> {
    let argv = qemu::argv(spec);
    let mut q = QemuProcess::spawn("qemu-system-x86_64", &argv, qemu_log)
        .map_err(|e| SaveFailed(e.to_string()))?;
    let mut events = EventReader::default();
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        for ev in events.poll(&spec.events_log) {
            match ev {
                Event::SaveReady { .. } => {
                    let r = save_now(spec, state);
                    q.kill();
                    return r;
                }
                Event::AgentError { message } => {
                    return Err(SaveFailed(format!(
                        "the guest agent failed before it could be saved: {message}"
                    )))
                }
                _ => {}
            }
        }
        if let Some(status) = q.try_wait() {
            let log = std::fs::read_to_string(qemu_log).unwrap_or_default();
            let said = crtest_vm::command::tail_lines(&log, 3).join(" / ");
            return Err(SaveFailed(format!(
                "QEMU exited ({status}) before the guest was ready to be saved: {said}"
            )));
        }
        if start.elapsed() > limit {
            return Err(SaveFailed(format!(
                "the guest to save was not ready within {} s (see {})",
                limit.as_secs(),
                spec.console_log.display()
            )));
        }
        if crate::host::interrupt::requested().is_some() {
            return Err(SaveFailed("interrupted while saving the guest".into()));
        }
    }
}

fn save_now(spec: &VmSpec, state: &Path) -> Result<Saved, SaveFailed> {
    let fail = |e: &dyn std::fmt::Display| SaveFailed(format!("saving the guest: {e}"));
    let mut qmp = Qmp::connect(&spec.qmp_socket(), Instant::now() + Duration::from_secs(10))
        .map_err(|e| fail(&e))?;
    let saved = saved_vm::save(&mut qmp, state, SAVE_LIMIT).map_err(|e| fail(&e))?;
    let _ = qmp.execute("quit", None);
    Ok(saved)
}

/// Sends a resumed guest on: waits until QEMU has read the state and runs it, then writes
/// `go <host time>` on its control port. The connection is returned to be kept open until
/// the guest is ready: QEMU hands the line to the serial port as fast as the guest drains
/// its 16-byte FIFO, and drops what is left when the host hangs up.
pub fn send_on(spec: &VmSpec) -> Result<std::os::unix::net::UnixStream, SendOnError> {
    let deadline = Instant::now() + RESUME_LIMIT;
    let mut qmp = Qmp::connect(&spec.qmp_socket(), deadline).map_err(SendOnError::Qmp)?;
    saved_vm::wait_running(&mut qmp, deadline).map_err(SendOnError::NotRunning)?;
    let path = spec.control_socket();
    let control = |source| SendOnError::Control {
        path: path.clone(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(control)?;
    stream
        .write_all(go_line(SystemTime::now()).as_bytes())
        .map_err(control)?;
    Ok(stream)
}

/// The line that sends a resumed guest on, with the host's wall clock.
pub fn go_line(now: SystemTime) -> String {
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("go {} {}\n", t.as_secs(), t.subsec_nanos())
}

/// A private folder for one QEMU's sockets, short enough for a socket path.
pub fn sockets_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("crtest-qemu-").tempdir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_go_line_is_what_the_agent_reads() {
        let now = UNIX_EPOCH + Duration::new(1_796_187_600, 250_000_000);
        let line = go_line(now);
        assert_eq!(line, "go 1796187600 250000000\n");
        let t = crate::guest::setup::parse_go(line.trim_end()).unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (1_796_187_600, 250_000_000));
    }

    #[test]
    fn a_new_state_replaces_the_old_one_of_its_slot_only() {
        let dir = tempfile::tempdir().unwrap();
        for (key, slot) in [("old", "a"), ("new", "a"), ("other", "b")] {
            let d = dir.path().join(key);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(SLOT_FILE), slot).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("no-slot")).unwrap();
        drop_replaced(dir.path(), "new", "a");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["new", "no-slot", "other"]);
    }

    #[test]
    fn sockets_fit_a_socket_path() {
        let d = sockets_dir().unwrap();
        assert!(d.path().join("control.sock").as_os_str().len() < 100);
    }
}
