//! Runs the first workloads (`fileio1`, `counterloop`, `ptree1`) on the host the way the
//! guest agent does and shows that each one's check tells a good state from a damaged one;
//! and that every binary is listed in `ALL` and handles bad arguments the same way.

mod common;

use common::*;
use crtest_workloads::protocol::{Verdict, RESULT_FILE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

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
    let code = w.wait_exit().unwrap();
    let verdict = w.result();
    assert_fail(
        code,
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
    let code = w.wait_exit().unwrap();
    let verdict = w.result();
    assert_fail(
        code,
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

/// Where cargo put the workload binaries (next to `fileio1`).
fn bin_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_fileio1"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn every_binary_is_listed_in_all_and_built() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut in_src: Vec<String> = fs::read_dir(src)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    in_src.sort();
    let mut all: Vec<String> = crtest_workloads::ALL
        .iter()
        .map(|s| s.to_string())
        .collect();
    all.sort();
    assert_eq!(in_src, all, "src/bin and crtest_workloads::ALL differ");
    for name in crtest_workloads::ALL {
        assert!(bin_dir().join(name).exists(), "{name} was not built");
    }
}

#[test]
fn bad_arguments_print_usage_and_exit_2() {
    for name in crtest_workloads::ALL {
        let bin = bin_dir().join(name);
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(&bin)
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

        let help = Command::new(&bin)
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
