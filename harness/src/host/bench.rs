//! `crtest bench`: where the time goes, over several repetitions (min / median / max).
//!
//! - QEMU start to agent ready (`boot_ms`), and the guest's own marks within it;
//! - the harness's overhead per checkpoint/restore step: the step's time minus the time of
//!   the criu command inside it;
//! - checkpoint and restore time of a fixed large-memory workload;
//! - the default scenarios with one boot for all, and with one boot per scenario;
//! - peak memory of crtest itself and of its largest child (QEMU).

use crate::host::vm_run::{self, Cell};
use crate::model::outcome::ScenarioResult;
use crate::model::scenario::Scenario;
use crate::report::progress::Reporter;
use crate::results::run::{CellReport, RunDir};
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

/// min / median / max of a series, in ms.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub n: usize,
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

impl Stats {
    pub fn of(values: &[u64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
        };
        Some(Stats {
            n: v.len(),
            min: v[0],
            median,
            max: v[v.len() - 1],
        })
    }
}

#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    pub cell: String,
    pub reps: u32,
    pub boot_ms: Option<Stats>,
    /// Guest uptime at each boot mark, median over the boots.
    pub boot_marks: Vec<(String, u64)>,
    pub overhead_ms: Option<Stats>,
    pub big_scenario: Option<String>,
    pub big_checkpoint_ms: Option<Stats>,
    pub big_restore_ms: Option<Stats>,
    pub one_boot_for_all_ms: Option<Stats>,
    pub one_boot_per_scenario_ms: Option<Stats>,
    pub scenarios: Vec<String>,
    pub failures: Vec<String>,
    pub peak_rss_crtest_kib: i64,
    pub peak_rss_qemu_kib: i64,
}

/// The harness's time around criu in each checkpoint/restore step: the step's time minus
/// its `criu ...` substeps.
pub fn overheads(r: &ScenarioResult) -> Vec<u64> {
    r.steps
        .iter()
        .filter(|s| s.ok && (s.step == "checkpoint" || s.step == "restore"))
        .filter_map(|s| {
            let prefix = format!("{}:criu ", s.step);
            let criu: u64 = r
                .steps
                .iter()
                .filter(|c| c.step.starts_with(&prefix) && c.iteration == s.iteration)
                .map(|c| c.ms)
                .sum();
            (criu > 0).then(|| s.ms.saturating_sub(criu))
        })
        .collect()
}

fn run_once(
    cell: &Cell,
    scenarios: &[Scenario],
    probes: &[Vec<String>],
    root: &Path,
    reporter: &mut dyn Reporter,
) -> Result<(CellReport, u64), String> {
    let mut run = RunDir::create(root).map_err(|e| e.to_string())?;
    let t = Instant::now();
    vm_run::run_cell(cell, scenarios, probes, &mut run, reporter).map_err(|e| e.to_string())?;
    let wall = t.elapsed().as_millis() as u64;
    crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by())
        .map_err(|e| e.to_string())?;
    Ok((run.report.cells.remove(0), wall))
}

/// Runs the benchmark; results also go to `<dir>/bench.json`.
pub fn run(
    cell: &Cell,
    scenarios: &[Scenario],
    big: Option<&Scenario>,
    reps: u32,
    dir: &Path,
    reporter: &mut dyn Reporter,
) -> Result<BenchReport, String> {
    let mut report = BenchReport {
        cell: cell.id.clone(),
        reps,
        scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
        big_scenario: big.map(|b| b.name.clone()),
        ..BenchReport::default()
    };
    let mut boots = Vec::new();
    let mut marks: Vec<Vec<(String, u64)>> = Vec::new();
    let mut overhead = Vec::new();
    let (mut all, mut per, mut big_c, mut big_r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let note = |report: &mut BenchReport, results: &[ScenarioResult]| {
        for r in results.iter().filter(|r| r.outcome.is_bad()) {
            report.failures.push(format!("{}: {}", r.name, r.outcome));
        }
    };
    for _ in 0..reps {
        // Boot only: the agent answers one trivial probe and powers off.
        let (c, _) = run_once(
            cell,
            &[],
            &[vec!["true".into()]],
            &dir.join("boot"),
            reporter,
        )?;
        boots.extend(c.boot_ms);
        marks.push(c.boot_marks);

        let (c, wall) = run_once(cell, scenarios, &[], &dir.join("one-boot"), reporter)?;
        all.push(wall);
        overhead.extend(c.scenarios.iter().flat_map(overheads));
        note(&mut report, &c.scenarios);

        let mut total = 0;
        for sc in scenarios {
            let (c, wall) = run_once(
                cell,
                std::slice::from_ref(sc),
                &[],
                &dir.join("per-scenario"),
                reporter,
            )?;
            total += wall;
            note(&mut report, &c.scenarios);
        }
        per.push(total);

        if let Some(b) = big {
            let (c, _) = run_once(
                cell,
                std::slice::from_ref(b),
                &[],
                &dir.join("big"),
                reporter,
            )?;
            for r in &c.scenarios {
                big_c.extend(r.phases.checkpoint_ms);
                big_r.extend(r.phases.restore_ms);
            }
            note(&mut report, &c.scenarios);
        }
    }
    report.boot_ms = Stats::of(&boots);
    if let Some(first) = marks.first() {
        for (i, (name, _)) in first.iter().enumerate() {
            let v: Vec<u64> = marks.iter().filter_map(|m| m.get(i).map(|x| x.1)).collect();
            report
                .boot_marks
                .push((name.clone(), Stats::of(&v).map_or(0, |s| s.median)));
        }
    }
    report.overhead_ms = Stats::of(&overhead);
    report.one_boot_for_all_ms = Stats::of(&all);
    report.one_boot_per_scenario_ms = Stats::of(&per);
    report.big_checkpoint_ms = Stats::of(&big_c);
    report.big_restore_ms = Stats::of(&big_r);
    let usage = |who| nix::sys::resource::getrusage(who).map_or(0, |u| u.max_rss());
    report.peak_rss_crtest_kib = usage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    report.peak_rss_qemu_kib = usage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    let json = serde_json::to_string_pretty(&report).expect("bench report serialises");
    std::fs::write(dir.join("bench.json"), json + "\n").map_err(|e| e.to_string())?;
    Ok(report)
}

/// The table for people.
pub fn render(r: &BenchReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "crtest bench: {} ({} repetitions)", r.cell, r.reps);
    let _ = writeln!(o, "{:<44} {:>8} {:>8} {:>8}", "ms", "min", "median", "max");
    let mut row = |name: &str, s: &Option<Stats>| {
        if let Some(s) = s {
            let _ = writeln!(o, "{name:<44} {:>8} {:>8} {:>8}", s.min, s.median, s.max);
        }
    };
    row("QEMU start to agent ready", &r.boot_ms);
    row("harness overhead per checkpoint/restore", &r.overhead_ms);
    if let Some(b) = &r.big_scenario {
        row(&format!("{b}: checkpoint"), &r.big_checkpoint_ms);
        row(&format!("{b}: restore"), &r.big_restore_ms);
    }
    row(
        &format!("{} scenarios, one boot for all", r.scenarios.len()),
        &r.one_boot_for_all_ms,
    );
    row(
        &format!("{} scenarios, one boot per scenario", r.scenarios.len()),
        &r.one_boot_per_scenario_ms,
    );
    if !r.boot_marks.is_empty() {
        let marks: Vec<String> = r
            .boot_marks
            .iter()
            .map(|(n, ms)| format!("{n} {ms}"))
            .collect();
        let _ = writeln!(
            o,
            "guest uptime at boot marks (median ms): {}",
            marks.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "peak memory: crtest {} MiB, QEMU {} MiB",
        r.peak_rss_crtest_kib / 1024,
        r.peak_rss_qemu_kib / 1024
    );
    for f in &r.failures {
        let _ = writeln!(o, "not passed: {f}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Outcome, Phases, StepRecord};

    #[test]
    fn stats() {
        assert_eq!(Stats::of(&[]), None);
        let s = Stats::of(&[5, 1, 3]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1, 3, 5));
        assert_eq!(Stats::of(&[4, 2]).unwrap().median, 3);
    }

    #[test]
    fn overhead_is_step_minus_criu() {
        let step = |step: &str, iteration, ms| StepRecord {
            step: step.into(),
            iteration,
            ms,
            ok: true,
        };
        let r = ScenarioResult {
            name: "x".into(),
            outcome: Outcome::Pass,
            duration_ms: 0,
            phases: Phases::default(),
            steps: vec![
                step("checkpoint", 1, 900),
                step("checkpoint:criu dump", 1, 850),
                step("restore", 1, 400),
                step("restore:criu restore", 1, 330),
                step("verify", 1, 20),
            ],
            detail: None,
            failure: None,
            artifacts: vec![],
            leftovers: vec![],
            screens: None,
            tags: vec![],
            attempts: vec![],
        };
        assert_eq!(overheads(&r), [50, 70]);
    }
}
