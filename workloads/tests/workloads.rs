//! Runs each workload binary on the host the way the guest agent does (fresh work dir as
//! cwd, stdin from /dev/null, output to a log, own process group), drives the protocol, and
//! shows that each workload's check tells a good state from a damaged one.

use crtest_workloads::protocol::{Ready, Verdict, PROGRESS_FILE, READY_FILE, RESULT_FILE};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

/// A workload running in its own temp dir and process group; killed (whole group) on drop.
struct Running {
    dir: tempfile::TempDir,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Running {
    fn start(bin: &str, args: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("log")).unwrap();
        let child = Command::new(bin)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        Running {
            dir,
            child,
            exited: None,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    /// Polls `probe` every 2 ms until it gives a value; panics (with the log) after LIMIT
    /// or if the workload exits first.
    fn wait_for<T>(&mut self, what: &str, mut probe: impl FnMut(&Running) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "workload exited ({status}) while waiting for {what}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < LIMIT,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(2));
        }
    }

    fn wait_ready(&mut self) -> Ready {
        let ready: Ready = self.wait_for("ready", |r| {
            fs::read(r.path(READY_FILE))
                .ok()
                .map(|b| serde_json::from_slice(&b).expect("ready is complete JSON"))
        });
        assert_eq!(ready.pid, self.child.id());
        ready
    }

    fn progress(&self) -> Option<u64> {
        let text = fs::read_to_string(self.path(PROGRESS_FILE)).ok()?;
        Some(
            text.trim()
                .parse()
                .expect("progress is a complete decimal u64"),
        )
    }

    /// Waits until progress goes above its current value; returns the new value.
    fn wait_progress_increase(&mut self) -> u64 {
        let first = self.progress().expect("progress exists once ready");
        let mut last = first;
        let new = self.wait_for("progress to increase", |r| {
            let now = r.progress().unwrap();
            assert!(now >= last, "progress went back from {last} to {now}");
            last = now;
            (now > first).then_some(now)
        });
        new
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                return status;
            }
            assert!(
                start.elapsed() < LIMIT,
                "workload did not exit; log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(5));
        }
    }

    fn result(&self) -> Verdict {
        let bytes = fs::read(self.path(RESULT_FILE))
            .unwrap_or_else(|e| panic!("no result ({e}); log:\n{}", self.log()));
        serde_json::from_slice(&bytes).expect("result is complete JSON")
    }

    /// Sends SIGTERM and returns the exit code and the verdict.
    fn verify(&mut self) -> (i32, Verdict) {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit();
        let code = status.code().unwrap_or_else(|| {
            panic!(
                "killed by signal {:?}; log:\n{}",
                status.signal(),
                self.log()
            )
        });
        (code, self.result())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = killpg(self.pid(), Signal::SIGKILL);
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Live processes (not zombies) whose process group is `pgid`.
fn group_members(pgid: Pid) -> Vec<Pid> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may contain anything, hence the last ')'):
        // state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.as_raw().to_string() {
            pids.push(Pid::from_raw(pid));
        }
    }
    pids
}

fn assert_pass(code: i32, verdict: &Verdict, log: &str) {
    assert!(verdict.ok, "verdict {verdict:?}; log:\n{log}");
    assert_eq!(code, 0, "log:\n{log}");
}

fn assert_fail(code: i32, verdict: &Verdict, log: &str, needles: &[&str]) {
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

const FILEIO: &[&str] = &[
    "--records",
    "300",
    "--record-size",
    "512",
    "--interval-ms",
    "5",
    "--ready-after",
    "4",
];

#[test]
fn fileio1_passes_and_copies_everything() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_fileio1"), FILEIO);
    let ready = w.wait_ready();
    assert!(
        ready.detail.contains("300 records of 512 bytes"),
        "{}",
        ready.detail
    );
    assert!(w.wait_progress_increase() > 4);
    let (code, verdict) = w.verify();
    assert_pass(code, &verdict, &w.log());
    assert_eq!(
        verdict.detail,
        "copied 300 records of 512 bytes; dst == src"
    );
    assert_eq!(verdict.progress, 300);
    let src = fs::read(w.path("src.dat")).unwrap();
    assert_eq!(src.len(), 300 * 512);
    assert!(src == fs::read(w.path("dst.dat")).unwrap());
}

#[test]
fn fileio1_catches_a_corrupted_copy() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_fileio1"), FILEIO);
    w.wait_ready();
    // Record 1 (bytes 512..1024) is already copied: damage one byte of it behind the
    // workload's back, as a bad restore of the file could.
    let dst = OpenOptions::new()
        .read(true)
        .write(true)
        .open(w.path("dst.dat"))
        .unwrap();
    let mut byte = [0u8; 1];
    dst.read_exact_at(&mut byte, 1000).unwrap();
    dst.write_all_at(&[byte[0] ^ 0xff], 1000).unwrap();
    drop(dst);
    let (code, verdict) = w.verify();
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["dst.dat differs from src.dat at offset 1000 (record 1)"],
    );
}

#[test]
fn counterloop_passes() {
    let mut w = Running::start(
        env!("CARGO_BIN_EXE_counterloop"),
        &["--tick-ms", "2", "--ready-after", "5"],
    );
    w.wait_ready();
    assert!(w.wait_progress_increase() > 5);
    let (code, verdict) = w.verify();
    assert_pass(code, &verdict, &w.log());
    assert_eq!(verdict.detail, format!("counter={}", verdict.progress));
    let on_file = fs::read(w.path("counter.dat")).unwrap();
    assert_eq!(on_file, verdict.progress.to_le_bytes());
}

#[test]
fn counterloop_catches_a_changed_file() {
    let mut w = Running::start(
        env!("CARGO_BIN_EXE_counterloop"),
        &["--tick-ms", "2", "--ready-after", "5"],
    );
    w.wait_ready();
    // Keep overwriting the file for a while so the workload's next tick sees it (a single
    // write could land between its pread and its pwrite and be overwritten unseen).
    let file = OpenOptions::new()
        .write(true)
        .open(w.path("counter.dat"))
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(100) {
        file.write_all_at(&1_000_000_000u64.to_le_bytes(), 0)
            .unwrap();
        sleep(Duration::from_millis(1));
    }
    // It has most likely already failed and exited on its own.
    let _ = kill(w.pid(), Signal::SIGTERM);
    let status = w.wait_exit();
    let verdict = w.result();
    assert_fail(
        status.code().unwrap(),
        &verdict,
        &w.log(),
        &["counter.dat holds 1000000000 but the memory counter is"],
    );
}

const PTREE: &[&str] = &["--depth", "2", "--width", "2", "--tick-ms", "5"];

#[test]
fn ptree1_passes_and_leaves_no_process() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_ptree1"), PTREE);
    let ready = w.wait_ready();
    assert!(ready.detail.starts_with("7 processes"), "{}", ready.detail);
    assert_eq!(group_members(w.pid()).len(), 7);
    w.wait_progress_increase();
    let (code, verdict) = w.verify();
    assert_pass(code, &verdict, &w.log());
    assert!(verdict
        .detail
        .starts_with("7 processes (depth 2, width 2) kept counting"));
    assert_eq!(group_members(w.pid()), Vec::<Pid>::new());
}

#[test]
fn ptree1_catches_a_process_that_stopped_counting() {
    let mut w = Running::start(env!("CARGO_BIN_EXE_ptree1"), PTREE);
    w.wait_ready();
    let victim = *group_members(w.pid())
        .iter()
        .find(|&&p| p != w.pid())
        .expect("a child process");
    kill(victim, Signal::SIGSTOP).unwrap();
    sleep(Duration::from_millis(30));
    w.signal(Signal::SIGTERM);
    // Past the root's 300 ms window, let the victim go on so it can answer its SIGTERM.
    sleep(Duration::from_millis(600));
    kill(victim, Signal::SIGCONT).unwrap();
    let status = w.wait_exit();
    let verdict = w.result();
    assert_fail(
        status.code().unwrap(),
        &verdict,
        &w.log(),
        &[
            &format!("(pid {victim}, level"),
            "did not count during the 300 ms window",
        ],
    );
    // Only the victim is blamed.
    assert_eq!(
        verdict.detail.matches("did not count").count(),
        1,
        "{}",
        verdict.detail
    );
}

#[test]
fn bad_arguments_print_usage_and_exit_2() {
    for (bin, name) in [
        (env!("CARGO_BIN_EXE_fileio1"), "fileio1"),
        (env!("CARGO_BIN_EXE_ptree1"), "ptree1"),
        (env!("CARGO_BIN_EXE_counterloop"), "counterloop"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(bin)
            .args(["--bogus", "1"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("unknown argument `--bogus`"),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("usage: {name} [--")),
            "{name}: {stderr}"
        );
        let verdict: Verdict =
            serde_json::from_slice(&fs::read(dir.path().join(RESULT_FILE)).unwrap()).unwrap();
        assert!(!verdict.ok);
        assert!(
            verdict.detail.contains("unknown argument"),
            "{}",
            verdict.detail
        );

        let help = Command::new(bin)
            .arg("--help")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(help.status.code(), Some(0), "{name}");
        assert!(String::from_utf8_lossy(&help.stdout).starts_with(&format!("usage: {name}")));
    }
}

#[test]
fn setup_errors_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fileio1"))
        .args(["--records", "4", "--ready-after", "5"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let verdict: Verdict =
        serde_json::from_slice(&fs::read(dir.path().join(RESULT_FILE)).unwrap()).unwrap();
    assert!(!verdict.ok);
    assert_eq!(
        verdict.detail,
        "setup failed: --ready-after 5 exceeds --records 4"
    );
}
