//! The run's results in the kernel field's formats, read by those formats' own tools: a run
//! holding every outcome is exported with `crtest export --kcidb` and validated with the
//! schema of the pinned `kcidb-io` package, and its `results.ktap` is read by Perl's
//! TAP::Parser.

mod common {
    pub mod kcidb;
    pub mod tap;
}

use crtest::model::outcome::{Failure, Outcome, ScenarioResult};
use crtest::results::run::{CellReport, KernelInfo, RunDir, UserlandInfo};

const OUTCOMES: &[Outcome] = &[
    Outcome::Pass,
    Outcome::Fail,
    Outcome::Skip,
    Outcome::Xfail,
    Outcome::Xpass,
    Outcome::Error,
    Outcome::Timeout,
    Outcome::Panic,
];

/// A finished run directory with one cell per kernel, each holding every outcome.
fn run_with_every_outcome(root: &std::path::Path) -> RunDir {
    let mut run = RunDir::create(root).unwrap();
    for (kernel, source) in [
        (
            "6.1.0-56-amd64",
            "debian:linux-image-6.1.0-56-amd64=6.1.192-2",
        ),
        (
            "6.1.192-g3b3ce4eef46c",
            "git:3b3ce4eef46c0a5e1d6a2c7b8e9f00112233aabb",
        ),
    ] {
        let scenarios = OUTCOMES
            .iter()
            .map(|o| {
                let failure = Failure {
                    step: "restore".into(),
                    command: Some("criu restore --images-dir /w/images-1".into()),
                    exit_status: Some(1),
                    first_error_line: Some("Error (criu/files.c:1): broke # badly\0".into()),
                    errno: Some("EBUSY".into()),
                    class: Some("resource-busy".into()),
                    message: "criu restore exited with status 1".into(),
                    dmesg: vec!["[    5.1] something".into()],
                    console_tail: Vec::new(),
                };
                let mut r = ScenarioResult::without_steps(&format!("s-{o}@pre-dump"), *o, failure);
                if *o == Outcome::Pass {
                    r.failure = None;
                }
                if *o == Outcome::Skip {
                    r.failure = None;
                    r.detail = Some("needs criu >= 9.0, have 3.17.1".into());
                }
                r.duration_ms = 1234;
                r
            })
            .collect();
        run.report.cells.push(CellReport {
            id: format!("kernel-{kernel}+userland-bookworm"),
            kernel: KernelInfo {
                release: kernel.into(),
                source: source.into(),
                missing_options: vec!["CONFIG_X".into()],
            },
            userland: UserlandInfo {
                suite: "bookworm".into(),
                criu: Some("3.17.1-2+deb12u2".into()),
                lxc: None,
            },
            scenarios,
            ..CellReport::default()
        });
    }
    crtest::report::views::finish(&mut run, None).unwrap();
    run
}

#[test]
fn kcidb_export_passes_the_kcidb_io_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_with_every_outcome(&tmp.path().join("results"));
    let out_dir = tmp.path().join("kcidb");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(["export", "--kcidb"])
        .arg(&out_dir)
        .args(["--origin", "crtest_ci"])
        .arg(&run.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = out_dir.join(crtest::report::kcidb::KCIDB_FILE);
    let n = common::kcidb::validate(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 2 * OUTCOMES.len());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["checkouts"].as_array().unwrap().len(), 2);
    let hashes: Vec<&str> = doc["checkouts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["git_commit_hash"].as_str())
        .collect();
    assert_eq!(hashes, ["3b3ce4eef46c0a5e1d6a2c7b8e9f00112233aabb"]);
    let statuses: Vec<&str> = doc["tests"]
        .as_array()
        .unwrap()
        .iter()
        .take(OUTCOMES.len())
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["PASS", "FAIL", "SKIP", "PASS", "FAIL", "ERROR", "ERROR", "FAIL"]
    );
}

#[test]
fn bad_export_input_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["export", "--kcidb", "out", "/nonexistent/run"],
        vec!["export", "--kcidb", "out", "--origin", "Not-Valid", "."],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
            .args(&args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn ktap_is_read_by_tap_parser() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_with_every_outcome(tmp.path());
    let text = std::fs::read_to_string(run.dir.join(crtest::report::views::KTAP_FILE)).unwrap();
    let cells = run.report.cells.len();
    // Two cells, both not ok (each has bad outcomes).
    assert_eq!(
        common::tap::counts(&common::tap::top_level(&text)).unwrap(),
        common::tap::Counts {
            run: cells,
            passed: 0,
            failed: cells,
            skipped: 0,
            errors: 0
        }
    );
    // Each cell's subtests: pass, skip, xfail are ok; fail, xpass, error, timeout, panic not.
    let sub = common::tap::subtests(&text);
    assert_eq!(sub.len(), cells);
    for s in sub {
        assert_eq!(
            common::tap::counts(&s).unwrap(),
            common::tap::Counts {
                run: 8,
                passed: 3,
                failed: 5,
                skipped: 1,
                errors: 0
            }
        );
    }
}
