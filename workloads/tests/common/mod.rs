//! What the workload tests share: running a workload binary the way the guest agent does
//! (fresh work dir as cwd, stdin from /dev/null, output to a log, own process group),
//! driving the protocol, and reaching into a running workload from outside (taking a copy
//! of one of its descriptors, finding its processes) to damage its state the way a broken
//! restore would.

#![allow(dead_code)]

use crtest_workloads::protocol::{Ready, Verdict, PROGRESS_FILE, READY_FILE, RESULT_FILE};
use nix::libc;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs::{self, File};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const LIMIT: Duration = Duration::from_secs(20);

/// A workload running in its own temp dir and session; killed (whole group) on drop.
pub struct Running {
    pub dir: tempfile::TempDir,
    pub child: Child,
    exited: Option<ExitStatus>,
    /// The pid `ready` named (the process to signal), once ready.
    pub target: Option<Pid>,
}

impl Running {
    pub fn start(bin: &str, args: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("log")).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: setsid is async-signal-safe. Like the harness: the workload leads its
        // own session (and process group, which Drop kills whole).
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(Into::into));
        }
        let child = cmd.spawn().unwrap();
        Running {
            dir,
            child,
            exited: None,
            target: None,
        }
    }

    /// The started process.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The process `ready` named (the started one unless it said otherwise).
    pub fn target(&self) -> Pid {
        self.target.unwrap_or_else(|| self.pid())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    /// Polls `probe` every 2 ms until it gives a value; panics (with the log) after LIMIT
    /// or if the workload exits first.
    pub fn wait_for<T>(&mut self, what: &str, mut probe: impl FnMut(&Running) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            if self.target.is_none() {
                if let Some(status) = self.child.try_wait().unwrap() {
                    self.exited = Some(status);
                    panic!(
                        "workload exited ({status}) while waiting for {what}; log:\n{}",
                        self.log()
                    );
                }
            }
            assert!(
                start.elapsed() < LIMIT,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(2));
        }
    }

    /// Waits for `ready`; it must name the started process.
    pub fn wait_ready(&mut self) -> Ready {
        let ready = self.wait_ready_any();
        assert_eq!(ready.pid, self.child.id());
        ready
    }

    /// Waits for `ready`, which may name another process (then the target of signals).
    pub fn wait_ready_any(&mut self) -> Ready {
        let ready: Ready = self.wait_for("ready", |r| {
            fs::read(r.path(READY_FILE))
                .ok()
                .map(|b| serde_json::from_slice(&b).expect("ready is complete JSON"))
        });
        self.target = Some(Pid::from_raw(ready.pid as i32));
        ready
    }

    pub fn progress(&self) -> Option<u64> {
        let text = fs::read_to_string(self.path(PROGRESS_FILE)).ok()?;
        Some(
            text.trim()
                .parse()
                .expect("progress is a complete decimal u64"),
        )
    }

    /// Waits until progress goes above its current value; returns the new value.
    pub fn wait_progress_increase(&mut self) -> u64 {
        let first = self.progress().expect("progress exists once ready");
        let mut last = first;
        self.wait_for("progress to increase", |r| {
            let now = r.progress().unwrap();
            assert!(now >= last, "progress went back from {last} to {now}");
            last = now;
            (now > first).then_some(now)
        })
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.target(), signal).unwrap();
    }

    /// Waits until the target process is gone (for a process that is not our child: until
    /// it no longer exists or is a zombie) and returns the exit code when it was our child.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if self.target() == self.pid() {
                if let Some(status) = self.child.try_wait().unwrap() {
                    self.exited = Some(status);
                    return Some(status.code().unwrap_or_else(|| {
                        panic!(
                            "killed by signal {:?}; log:\n{}",
                            status.signal(),
                            self.log()
                        )
                    }));
                }
            } else {
                if self.exited.is_none() {
                    if let Some(status) = self.child.try_wait().unwrap() {
                        self.exited = Some(status);
                    }
                }
                let gone = crtest_workloads::procfs::stat(self.target().as_raw())
                    .map_or(true, |s| s.state == 'Z');
                if gone && self.path(RESULT_FILE).exists() {
                    return None;
                }
            }
            assert!(
                start.elapsed() < LIMIT,
                "workload did not exit; log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(5));
        }
    }

    pub fn result(&self) -> Verdict {
        let bytes = fs::read(self.path(RESULT_FILE))
            .unwrap_or_else(|e| panic!("no result ({e}); log:\n{}", self.log()));
        serde_json::from_slice(&bytes).expect("result is complete JSON")
    }

    /// Sends SIGTERM and returns the exit code (1 or 0 when the target is not our child,
    /// from the verdict) and the verdict.
    pub fn verify(&mut self) -> (i32, Verdict) {
        self.signal(Signal::SIGTERM);
        self.outcome()
    }

    /// Waits for the workload to end on its own (a check that failed while it worked) and
    /// returns its exit code and verdict; sends SIGTERM if it does not within `grace`.
    pub fn outcome_within(&mut self, grace: Duration) -> (i32, Verdict) {
        let start = Instant::now();
        while !self.path(RESULT_FILE).exists() && start.elapsed() < grace {
            sleep(Duration::from_millis(5));
        }
        if !self.path(RESULT_FILE).exists() {
            let _ = kill(self.target(), Signal::SIGTERM);
        }
        self.outcome()
    }

    fn outcome(&mut self) -> (i32, Verdict) {
        let code = self.wait_exit();
        let verdict = self.result();
        let code = code.unwrap_or(if verdict.ok { 0 } else { 1 });
        (code, verdict)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = killpg(self.pid(), Signal::SIGKILL);
        if let Some(t) = self.target {
            let _ = kill(t, Signal::SIGKILL);
        }
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn assert_pass(code: i32, verdict: &Verdict, log: &str) {
    assert!(verdict.ok, "verdict {verdict:?}; log:\n{log}");
    assert_eq!(code, 0, "log:\n{log}");
}

pub fn assert_fail(code: i32, verdict: &Verdict, log: &str, needles: &[&str]) {
    assert!(!verdict.ok, "verdict {verdict:?}; log:\n{log}");
    assert_eq!(code, 1, "log:\n{log}");
    for needle in needles {
        assert!(
            verdict.detail.contains(needle),
            "`{needle}` missing from detail: {}",
            verdict.detail
        );
    }
}

/// Starts `bin`, waits for ready and one progress step, verifies and requires a pass.
/// Returns the verdict's detail.
pub fn passes(bin: &str, args: &[&str]) -> String {
    let mut w = Running::start(bin, args);
    w.wait_ready_any();
    w.wait_progress_increase();
    let (code, verdict) = w.verify();
    assert_pass(code, &verdict, &w.log());
    verdict.detail
}

/// A copy of descriptor `fd` of process `pid` (`pidfd_getfd`): the same open file
/// description, so what is done through it happens to the workload's descriptor.
pub fn steal_fd(pid: Pid, fd: i32) -> OwnedFd {
    // SAFETY: plain syscalls; the results are checked and owned below.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) as i32;
        assert!(
            pidfd >= 0,
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        );
        let pidfd = OwnedFd::from_raw_fd(pidfd);
        use std::os::fd::AsRawFd;
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) as i32;
        assert!(
            copy >= 0,
            "pidfd_getfd({pid}, {fd}): {}",
            std::io::Error::last_os_error()
        );
        OwnedFd::from_raw_fd(copy)
    }
}

/// The descriptor numbers of process `pid` whose `/proc/PID/fd` link satisfies `pick`.
pub fn fds_where(pid: Pid, pick: impl Fn(&str) -> bool) -> Vec<i32> {
    let mut fds: Vec<i32> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let target = fs::read_link(e.path()).ok()?;
            pick(&target.to_string_lossy()).then(|| e.file_name().to_string_lossy().parse().ok())?
        })
        .collect();
    fds.sort();
    fds
}

/// The number after `key=` in a ready detail such as `fds: a=3 b=4`.
pub fn detail_number(detail: &str, key: &str) -> i64 {
    let at = detail
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("`{key}=` missing from `{detail}`"));
    let rest = &detail[at + key.len() + 1..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).unwrap()
    } else {
        digits
            .parse()
            .unwrap_or_else(|_| panic!("`{key}=` is not a number in `{detail}`"))
    }
}

/// The children of process `pid` (from `/proc/PID/task/*/children`).
pub fn children(pid: Pid) -> Vec<Pid> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|w| w.parse().ok())
                        .map(Pid::from_raw),
                );
            }
        }
    }
    out
}

/// Whether the tests run as root; otherwise prints why `test` is skipped.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "skipping {test}: it needs root (namespaces, /proc/PID/mem, other processes' descriptors)"
    );
    false
}

/// Runs `f` on a new thread that has joined namespace `ns` (`ipc`, `uts`, `net`) of `pid`,
/// as a tool entering a workload's namespace from outside would.
pub fn in_namespace_of<T: Send + 'static>(
    pid: Pid,
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let path = format!("/proc/{pid}/ns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall; this thread alone changes namespace and then ends.
        let r = unsafe { libc::setns(file.as_raw_fd(), 0) };
        assert_eq!(r, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// Writes `data` into process `pid`'s memory at `addr` through `/proc/PID/mem`.
pub fn poke(pid: Pid, addr: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let mem = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .unwrap();
    mem.write_all_at(data, addr).unwrap();
}

/// Reads `len` bytes of process `pid`'s memory at `addr`.
pub fn peek(pid: Pid, addr: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mem = File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut buf = vec![0u8; len];
    mem.read_exact_at(&mut buf, addr).unwrap();
    buf
}
