//! A run's results as the kernel field's tools and a person read them: a run holding every
//! outcome is exported with `crtest export --kcidb` and validated with the schema of the
//! pinned `kcidb-io` package, its `results.ktap` is read by Perl's TAP::Parser, and its
//! `report.html` is rendered in headless Chromium (Debian's), its filters driven, and a
//! screenshot saved under `target/report-html/`.

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
                r.tags = if *o == Outcome::Fail || *o == Outcome::Pass {
                    vec!["files".into(), "smoke".into()]
                } else {
                    vec!["smoke".into()]
                };
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
            // The second cell's criu is built from a tree, as `--criu SOURCE` makes it.
            userland: if source.starts_with("git:") {
                UserlandInfo {
                    suite: "bookworm".into(),
                    criu: Some("4.1.1".into()),
                    criu_source: Some("git:a44aa6d985472d995d04fef7eae22d63c7500f8c".into()),
                    lxc: None,
                    oci: Default::default(),
                }
            } else {
                UserlandInfo {
                    suite: "bookworm".into(),
                    criu: Some("3.17.1-2+deb12u2".into()),
                    criu_source: Some("debian:criu=3.17.1-2+deb12u2".into()),
                    lxc: None,
                    oci: Default::default(),
                }
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

/// What headless Chromium made of a page: the DOM after its scripts ran, and its log.
fn chromium(url: &str, screenshot: Option<&std::path::Path>) -> (String, String) {
    crtest_vm::hostdeps::ensure_for_tests().unwrap_or_else(|e| panic!("{e}"));
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,1400",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(p) => cmd.arg(format!("--screenshot={}", p.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd.arg(url).output().expect("chromium starts");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The scenario rows of the page's table, as (outcome, shown).
fn rows(dom: &str) -> Vec<(String, bool)> {
    dom.split("<tr ")
        .skip(1)
        .filter(|r| r.starts_with("class=\"sc-row\""))
        .map(|r| {
            let head = &r[..r.find('>').unwrap_or(r.len())];
            let outcome = head
                .split("data-outcome=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("")
                .to_string();
            (outcome, !head.contains(" hidden"))
        })
        .collect()
}

#[test]
fn the_html_report_reads_failures_first_and_filters_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let mut run = run_with_every_outcome(&tmp.path().join("results"));
    // A desktop scenario's screenshots, inline.
    let shots = run.dir.join("scenarios/s-pass@pre-dump");
    std::fs::create_dir_all(&shots).unwrap();
    let mut frame = crtest::vnc::frame::Frame::new(64, 48);
    frame.rgb.iter_mut().step_by(3).for_each(|r| *r = 200);
    frame.write_png(&shots.join("screen-before.png")).unwrap();
    run.report.cells[0].scenarios[0].screens = Some(crtest::model::outcome::Screens {
        before: Some("scenarios/s-pass@pre-dump/screen-before.png".into()),
        ..Default::default()
    });
    crtest::report::views::write_views(&run.dir, &run.report).unwrap();
    let page = run.dir.join("report.html");
    let url = format!("file://{}", page.display());

    // As loaded: every row shown, what broke first, passes last; no script errors.
    let (dom, log) = chromium(&url, None);
    assert!(
        !log.contains("Uncaught"),
        "the page's script failed:\n{log}"
    );
    let all = rows(&dom);
    assert_eq!(all.len(), 2 * OUTCOMES.len());
    assert!(all.iter().all(|(_, shown)| *shown));
    let order: Vec<&str> = all.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(&order[..2], ["panic", "panic"]);
    assert_eq!(&order[order.len() - 2..], ["pass", "pass"]);
    let xfail = order.iter().position(|o| *o == "xfail").unwrap();
    assert!(order[..xfail].iter().all(|o| !["skip", "pass"].contains(o)));
    assert!(
        dom.contains("Error (criu/files.c:1): broke # badly"),
        "the failure's line"
    );
    assert!(dom.contains("<summary>failure report</summary>"));
    assert!(dom.contains("screen-before.png"), "the screenshot inline");
    assert!(
        !dom.contains("scenarios asked for: s-"),
        "no wall of names at the top"
    );

    // The filters: only the failures tagged `files`.
    let (dom, log) = chromium(&format!("{url}#outcome=fail&tag=files"), None);
    assert!(!log.contains("Uncaught"), "{log}");
    let shown: Vec<String> = rows(&dom)
        .into_iter()
        .filter(|(_, s)| *s)
        .map(|(o, _)| o)
        .collect();
    assert_eq!(shown, ["fail", "fail"]);
    assert!(
        dom.contains("<span id=\"shown\">2</span>"),
        "the count follows the filter"
    );

    // A screenshot for a person to look at.
    let out = crtest::host::guest_build::workspace_root().join("target/report-html");
    std::fs::create_dir_all(&out).unwrap();
    let png = out.join("report.png");
    let _ = std::fs::remove_file(&png);
    chromium(&url, Some(&png));
    let shot = crtest::vnc::frame::Frame::read_png(&png).unwrap();
    assert_eq!((shot.width, shot.height), (1280, 1400));
    eprintln!("screenshot of the report: {}", png.display());
}
