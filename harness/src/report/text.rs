//! Text rendering of results for the terminal: one line per scenario, and for each one that
//! did not pass, the failure report a developer reads to know what broke.

use crate::model::outcome::{Failure, ScenarioResult, Screens};
use crate::model::visible::VisibleState;
use crate::results::run::{counts, CellReport};
use std::fmt::Write;

/// `pass  fileio1  4.1 s  (ready 0.4 s, checkpoint 1.2 s, restore 0.9 s, verify 0.3 s)`
pub fn scenario_line(s: &ScenarioResult) -> String {
    let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    let phases: Vec<String> = [
        ("ready", s.phases.ready_ms),
        ("checkpoint", s.phases.checkpoint_ms),
        ("restore", s.phases.restore_ms),
        ("verify", s.phases.verify_ms),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| format!("{n} {}", secs(v))))
    .collect();
    let mut line = format!(
        "{:<7} {:<20} {:>7}",
        s.outcome.as_str(),
        s.name,
        secs(s.duration_ms)
    );
    if !phases.is_empty() {
        let _ = write!(line, "  ({})", phases.join(", "));
    }
    if !s.attempts.is_empty() {
        let good = s.attempts.iter().filter(|a| a.outcome.is_good()).count();
        let _ = write!(line, "  [{good}/{} attempts good]", s.attempts.len());
    }
    line
}

/// One step as it finished: `fileio1: checkpoint#1 FAILED in 283 ms`.
pub fn step_line(scenario: &str, step: &str, iteration: u32, ms: u64, ok: bool) -> String {
    let how = if ok { "ok" } else { "FAILED" };
    format!("{scenario}: {step}#{iteration} {how} in {ms} ms")
}

/// A `[vnc]` scenario's figures and screenshots, indented under its line.
pub fn screens_block(sc: &Screens) -> String {
    let mut out = String::new();
    if let Some(d) = &sc.restore_diff {
        let _ = writeln!(
            out,
            "    screens: after the restore {} of {} pixels differ from before the checkpoint (at most {})",
            d.differing, d.total, sc.max_diff_pixels
        );
    }
    if let Some(d) = &sc.typing_diff {
        let _ = writeln!(
            out,
            "    typing after the restore changed {} pixels",
            d.differing
        );
    }
    for p in [&sc.before, &sc.restored, &sc.diff_image, &sc.typed]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "    {p}");
    }
    out
}

/// The failure report: step, command, status, first error line, errno, kernel messages.
pub fn failure_block(f: &Failure) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "    step:    {}", f.step);
    let _ = writeln!(out, "    why:     {}", f.message);
    if let Some(c) = &f.command {
        let _ = writeln!(out, "    command: {c}");
    }
    if let Some(s) = f.exit_status {
        let _ = writeln!(out, "    status:  {s}");
    }
    if let Some(e) = &f.first_error_line {
        let _ = writeln!(out, "    error:   {e}");
    }
    if let Some(e) = &f.errno {
        let _ = writeln!(out, "    errno:   {e}");
    }
    if let Some(c) = &f.class {
        match crate::diagnose::class::class(c) {
            Some(class) => {
                let _ = writeln!(out, "    class:   {c}: {}", class.title);
                let _ = writeln!(out, "    fix:     {}", class.fix);
            }
            None => {
                let _ = writeln!(out, "    class:   {c}");
            }
        }
    }
    for (title, lines) in [("dmesg", &f.dmesg), ("console", &f.console_tail)] {
        if !lines.is_empty() {
            let _ = writeln!(out, "    {title}:");
            for l in lines.iter().rev().take(12).rev() {
                let _ = writeln!(out, "      {l}");
            }
        }
    }
    out
}

/// The summary of one cell: what was paired, each scenario, each failure, the counts.
/// What a scenario's visible-state comparison relaxed (always shown: a relaxation is a
/// decision someone made), and, when it failed, the differences past the first.
pub fn visible_block(v: &VisibleState, failed: bool) -> String {
    let mut out = String::new();
    let mut items: Vec<&str> = Vec::new();
    for ig in &v.ignored {
        if !items.contains(&ig.item.as_str()) {
            items.push(&ig.item);
            let n = v.ignored.iter().filter(|i| i.item == ig.item).count();
            let _ = writeln!(
                out,
                "    visible state: `{}` ignored ({n} difference{}: {}): {}",
                ig.item,
                if n == 1 { "" } else { "s" },
                ig.difference,
                ig.reason
            );
        }
    }
    if failed {
        for d in v.differences.iter().skip(1).take(8) {
            let _ = writeln!(out, "    also differs: {d}");
        }
    }
    out
}

pub fn cell_summary(cell: &CellReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cell {}: kernel {} ({}), userland {} (criu {}{}{}), {}{}{}",
        cell.id,
        cell.kernel.release,
        cell.kernel.source,
        cell.userland.suite,
        cell.userland.criu_text(),
        cell.userland
            .lxc
            .as_deref()
            .map(|v| format!(", lxc {v}"))
            .unwrap_or_default(),
        cell.userland.oci_text(),
        cell.qemu.accel,
        cell.boot_ms
            .map(|ms| format!(", boot {:.1} s", ms as f64 / 1000.0))
            .unwrap_or_default(),
        cell.resume_ms
            .map(|ms| format!(
                ", resume {:.1} s ({} of {} guests)",
                ms as f64 / 1000.0,
                cell.qemu.resumes,
                cell.qemu.boots
            ))
            .unwrap_or_default()
    );
    for s in &cell.scenarios {
        let _ = writeln!(out, "  {}", scenario_line(s));
        if let Some(sc) = &s.screens {
            out.push_str(&screens_block(sc));
        }
        if let (true, Some(f)) = (s.outcome.is_bad(), &s.failure) {
            out.push_str(&failure_block(f));
        }
        if let Some(v) = &s.visible_state {
            out.push_str(&visible_block(v, s.outcome.is_bad()));
        }
    }
    let c: Vec<String> = counts(&cell.scenarios)
        .into_iter()
        .map(|(o, n)| format!("{n} {o}"))
        .collect();
    let _ = writeln!(
        out,
        "  {}",
        if c.is_empty() {
            "no scenarios".into()
        } else {
            c.join(", ")
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Outcome, Phases};
    use crate::results::run::{KernelInfo, QemuInfo, UserlandInfo};

    #[test]
    fn visible_state_relaxations_and_differences() {
        use crate::model::visible::Ignored;
        let v = VisibleState {
            differences: vec![
                "pid 1 fds.3.flags: 02 before, 0102 after".into(),
                "pid 1 signals.SigBlk: 0 before, 4 after".into(),
            ],
            ignored: vec![
                Ignored {
                    item: "fds.8.flags".into(),
                    reason: "criu reopens the directory without O_DIRECTORY".into(),
                    difference: "pid 1 fds.8.flags: 0300000 before, 0100000 after".into(),
                };
                2
            ],
            ..VisibleState::default()
        };
        insta::assert_snapshot!(format!(
            "{}--\n{}",
            visible_block(&v, true),
            visible_block(&v, false)
        ));
    }

    #[test]
    fn summary_with_a_failure() {
        let pass = ScenarioResult {
            name: "fileio1".into(),
            outcome: Outcome::Pass,
            duration_ms: 4100,
            phases: Phases {
                ready_ms: Some(400),
                checkpoint_ms: Some(1200),
                restore_ms: Some(900),
                verify_ms: Some(300),
            },
            steps: vec![],
            detail: Some("copied".into()),
            failure: None,
            artifacts: vec![],
            leftovers: vec![],
            screens: None,
            tags: vec![],
            attempts: vec![],
            visible_state: None,
            criu_runs: Vec::new(),
            migration: None,
        };
        let fail = ScenarioResult::without_steps(
            "ptree1",
            Outcome::Fail,
            Failure {
                step: "restore".into(),
                command: Some("criu restore --images-dir /tmp/crtest/ptree1/images-1".into()),
                exit_status: Some(1),
                first_error_line: Some(
                    "Error (criu/cr-restore.c:1): Can't fork for 42: File exists".into(),
                ),
                errno: Some("EEXIST".into()),
                class: Some("pid-collision".into()),
                message: "criu restore exited with status 1".into(),
                dmesg: vec!["[    5.000000] hello".into()],
                console_tail: vec![],
            },
        );
        let cell = CellReport {
            id: "bookworm-6.1".into(),
            kernel: KernelInfo {
                release: "6.1.0-56-amd64".into(),
                source: "debian:linux-image-6.1.0-56-amd64=6.1.192-2".into(),
                missing_options: vec![],
            },
            userland: UserlandInfo {
                suite: "bookworm".into(),
                criu: Some("3.17.1".into()),
                criu_source: None,
                lxc: None,
                oci: Default::default(),
            },
            qemu: QemuInfo {
                accel: "tcg".into(),
                ..QemuInfo::default()
            },
            boot_ms: Some(4200),
            scenarios: vec![pass, fail],
            ..CellReport::default()
        };
        insta::assert_snapshot!(cell_summary(&cell));
    }

    #[test]
    fn a_repeated_scenario_says_how_many_attempts_were_good() {
        use crate::model::outcome::combine;
        let r = |o| {
            let mut r = ScenarioResult::without_steps("x", o, Failure::default());
            r.failure = None;
            r
        };
        let flaky = combine(vec![r(Outcome::Pass), r(Outcome::Fail), r(Outcome::Pass)]).unwrap();
        let line = scenario_line(&flaky);
        assert!(
            line.starts_with("flaky") && line.ends_with("[2/3 attempts good]"),
            "{line}"
        );
        assert!(!scenario_line(&r(Outcome::Pass)).contains("attempts"));
    }
}
