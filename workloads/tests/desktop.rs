//! The `desktop` workload on the host: `vncdesk` under the real Xvnc, twm, xterm and vi
//! passes when left alone, and a program of the desktop that went away is named.
//!
//! Needs the packages of the `vnc` userland variant (tigervnc-standalone-server, twm,
//! xterm, x11-xserver-utils, vim-tiny, xfonts-base), which the tests install as root from
//! the one list of host packages (`crtest_vm::hostdeps`). Without them (not root) the tests
//! say what to install and pass, unless `CRTEST_REQUIRE_VM=1` (CI), where they fail.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

fn desktop_or_skip(test: &str) -> bool {
    if let Err(e) = crtest_vm::hostdeps::ensure_for_tests() {
        eprintln!("{test}: {e}");
    }
    let missing: Vec<&str> = ["Xvnc", "twm", "xterm", "xsetroot", "vi"]
        .into_iter()
        .filter(|p| !std::path::Path::new("/usr/bin").join(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CRTEST_REQUIRE_VM").as_deref() != Ok("1"),
        "CRTEST_REQUIRE_VM=1 but {} not installed",
        missing.join(", ")
    );
    eprintln!("skipping {test}: {} not installed", missing.join(", "));
    false
}

#[test]
fn vncdesk_passes() {
    if !desktop_or_skip("vncdesk_passes") {
        return;
    }
    let detail = passes(
        env!("CARGO_BIN_EXE_vncdesk"),
        &["--tick-ms", "50", "--display", "61"],
    );
    assert!(
        detail.contains("Xvnc=") && detail.contains("xterm="),
        "{detail}"
    );
    assert!(detail.ends_with("were ended"), "{detail}");
}

#[test]
fn vncdesk_names_a_program_that_went_away() {
    if !desktop_or_skip("vncdesk_names_a_program_that_went_away") {
        return;
    }
    let mut w = Running::start(
        env!("CARGO_BIN_EXE_vncdesk"),
        &["--tick-ms", "50", "--display", "62"],
    );
    let ready = w.wait_ready();
    assert!(
        w.path("vnc.sock").exists(),
        "the RFB socket is in the working directory"
    );
    let xterm = Pid::from_raw(detail_number(&ready.detail, "xterm") as i32);
    kill(xterm, Signal::SIGKILL).unwrap();
    let (code, verdict) = w.outcome_within(Duration::from_secs(10));
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("xterm (pid {xterm}) was killed by SIGKILL")],
    );
}
