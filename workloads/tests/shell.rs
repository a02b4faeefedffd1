//! The `shell` workload on the host: bash driven through a pty answers with its state
//! intact when left alone, and a shell that went away is named precisely.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

const ARGS: &[&str] = &["--tick-ms", "20"];

fn bash_or_skip(test: &str) -> bool {
    if std::path::Path::new("/bin/bash").exists() {
        return true;
    }
    eprintln!("skipping {test}: /bin/bash is not installed here");
    false
}

#[test]
fn bashpty_passes() {
    if !bash_or_skip("bashpty_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_bashpty"), ARGS);
    assert!(detail.starts_with("bash answered "), "{detail}");
    assert!(
        detail.contains("`exit 7` ended it with status 7"),
        "{detail}"
    );
}

#[test]
fn bashpty_catches_a_shell_that_went_away() {
    if !bash_or_skip("bashpty_catches_a_shell_that_went_away") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_bashpty"), ARGS);
    let ready = w.wait_ready();
    let bash = Pid::from_raw(detail_number(&ready.detail, "bash") as i32);
    kill(bash, Signal::SIGKILL).unwrap();
    let (code, verdict) = w.outcome_within(Duration::from_secs(8));
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            &format!("bash (pid {bash}) on /dev/pts/"),
            "it was killed by SIGKILL",
        ],
    );
}
