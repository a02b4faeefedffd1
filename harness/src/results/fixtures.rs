//! Fixed reports for the unit tests of the matrix views, and the redactor their snapshots
//! go through (times, run ids, temporary paths).

use crate::model::outcome::{Failure, Outcome, Phases, ScenarioResult};
use crate::results::run::{
    cell_id, CellReport, KernelInfo, MatrixCell, MatrixInfo, QemuInfo, RunReport, UserlandInfo,
};

pub fn scenario(
    name: &str,
    outcome: Outcome,
    checkpoint_ms: u64,
    restore_ms: u64,
) -> ScenarioResult {
    ScenarioResult {
        name: name.into(),
        outcome,
        duration_ms: 400 + checkpoint_ms + restore_ms,
        phases: Phases {
            ready_ms: Some(200),
            checkpoint_ms: Some(checkpoint_ms),
            restore_ms: Some(restore_ms),
            verify_ms: Some(100),
        },
        steps: vec![],
        detail: None,
        failure: None,
        artifacts: vec![],
        leftovers: vec![],
        screens: None,
        tags: vec![],
        attempts: vec![],
        visible_state: None,
        criu_runs: Vec::new(),
        migration: None,
    }
}

fn failed(name: &str, outcome: Outcome, failure: Failure) -> ScenarioResult {
    let mut s = ScenarioResult::without_steps(name, outcome, failure);
    s.artifacts = vec![format!("scenarios/{name}/dump-1.log")];
    s
}

fn vdso_failure() -> Failure {
    Failure {
        step: "checkpoint".into(),
        command: Some("criu dump --tree 123 --images-dir /tmp/crtest/x/images-1 -v4".into()),
        exit_status: Some(1),
        first_error_line: Some(
            "Error (criu/vdso.c:627): vdso: Unexpected rt vDSO area bounds".into(),
        ),
        errno: None,
        class: Some("version-mismatch".into()),
        message: "criu dump exited with status 1".into(),
        dmesg: vec!["[    5.100000] criu[123]: segfault at 0 ip 0".into()],
        console_tail: vec![],
    }
}

fn cell(
    kernel: &str,
    release: &str,
    userland: &str,
    criu: &str,
    scenarios: Vec<ScenarioResult>,
) -> (CellReport, MatrixCell) {
    let id = cell_id(kernel, userland);
    let report = CellReport {
        id: id.clone(),
        kernel: KernelInfo {
            release: release.into(),
            source: format!("debian:linux-image-{release}=1"),
            missing_options: vec![],
        },
        userland: UserlandInfo {
            suite: userland.into(),
            criu: Some(criu.into()),
            criu_source: None,
            lxc: None,
            oci: Default::default(),
        },
        qemu: QemuInfo {
            accel: "tcg".into(),
            version: Some("QEMU emulator version 7.2.15".into()),
            accel_note: None,
            boots: 1,
            resumes: 0,
            cpu: None,
        },
        boot_ms: Some(4200),
        prepare_ms: 300,
        scenarios,
        ..CellReport::default()
    };
    let m = MatrixCell {
        id: id.clone(),
        kernel: kernel.into(),
        userland: userland.into(),
        dir: Some(format!("cells/{id}")),
        wall_ms: Some(30_000),
    };
    (report, m)
}

/// Two kernels x two userlands: a passing cell, a cell with a skip, a cell failing on the
/// vDSO version mismatch, and a cell with a timeout whose console holds markup.
pub fn matrix_report() -> RunReport {
    use Outcome::*;
    let skip = {
        let mut s = ScenarioResult::without_steps("fileio1", Skip, Failure::default());
        s.failure = None;
        s.detail = Some("needs criu >= 9.0, have 4.1.1-1".into());
        s
    };
    let timeout = failed(
        "fileio1",
        Timeout,
        Failure {
            step: "scenario".into(),
            message: "the guest stopped answering: scenario time limit passed".into(),
            console_tail: vec!["[   9.0] <script>alert(1)</script> & stuck".into()],
            ..Failure::default()
        },
    );
    let cells = vec![
        cell(
            "bookworm",
            "6.1.0-56-amd64",
            "bookworm",
            "3.17.1-2+deb12u2",
            vec![
                scenario("counterloop", Pass, 1200, 900),
                scenario("fileio1", Pass, 1400, 1000),
            ],
        ),
        cell(
            "bookworm",
            "6.1.0-56-amd64",
            "trixie",
            "4.1.1-1",
            vec![scenario("counterloop", Pass, 1100, 800), skip],
        ),
        cell(
            "sid",
            "7.2.13+deb14-amd64",
            "bookworm",
            "3.17.1-2+deb12u2",
            vec![
                failed("counterloop", Fail, vdso_failure()),
                failed("fileio1", Fail, vdso_failure()),
            ],
        ),
        cell(
            "sid",
            "7.2.13+deb14-amd64",
            "trixie",
            "4.1.1-1",
            vec![scenario("counterloop", Pass, 1000, 700), timeout],
        ),
    ];
    let (reports, plan): (Vec<CellReport>, Vec<MatrixCell>) = cells.into_iter().unzip();
    RunReport {
        format_version: 1,
        run_id: "20261126-200000-abcd".into(),
        started_at: "2026-11-26T20:00:00Z".into(),
        finished_at: None,
        wall_ms: None,
        finished: true,
        interrupted: None,
        crtest_version: "0.1.0".into(),
        cells: reports,
        matrix: Some(MatrixInfo {
            kernels: vec!["bookworm".into(), "sid".into()],
            userlands: vec!["bookworm".into(), "trixie".into()],
            scenarios: vec!["counterloop".into(), "fileio1".into()],
            shard: None,
            merged_from: vec![],
            split: None,
            shard_times: vec![],
            cells: plan,
        }),
    }
}

/// Replaces what changes from run to run with placeholders: run ids (`[RUN-ID]`), RFC 3339
/// times (`[TIME]`) and the given paths (`[DIR]`).
pub fn redact(text: &str, paths: &[&std::path::Path]) -> String {
    let mut out = text.to_string();
    for p in paths {
        out = out.replace(&p.display().to_string(), "[DIR]");
    }
    let b: Vec<char> = out.chars().collect();
    let digits = |s: &[char], pat: &str| {
        s.len() >= pat.len()
            && pat.chars().zip(s).all(|(p, c)| match p {
                'd' => c.is_ascii_digit(),
                'h' => c.is_ascii_hexdigit(),
                _ => p == *c,
            })
    };
    let mut res = String::new();
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if digits(rest, "dddddddd-dddddd-hhhh") {
            res.push_str("[RUN-ID]");
            i += 20;
        } else if digits(rest, "dddd-dd-ddTdd:dd:ddZ") {
            res.push_str("[TIME]");
            i += 20;
        } else {
            res.push(b[i]);
            i += 1;
        }
    }
    res
}

#[test]
fn redactor_replaces_ids_times_and_paths() {
    let t = std::path::Path::new("/tmp/x1");
    assert_eq!(
        redact(
            "run 20261126-193012-1a2b at 2026-11-26T19:30:12Z in /tmp/x1/a",
            &[t]
        ),
        "run [RUN-ID] at [TIME] in [DIR]/a"
    );
}

/// xorshift64: a small deterministic generator for the seeded mutation tests, so a failure
/// reproduces.
pub fn xorshift(mut seed: u64) -> impl FnMut() -> usize {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    }
}
