//! `crtest bench`: where the time goes, over several repetitions (min / median / max).
//!
//! - QEMU start to agent ready, booted (`boot_ms`, with the guest's own marks within it) and
//!   resumed from the saved ready state (`resume_ms`), in the same run;
//! - the harness's overhead per checkpoint/restore step: the step's time minus the time of
//!   the criu command inside it;
//! - checkpoint and restore time of a fixed large-memory workload;
//! - the default scenarios in one guest for all, and in a guest each (`--pristine`), resumed
//!   and booted;
//! - peak memory of crtest itself and of its largest child (QEMU).

use crate::host::vm_run::{self, Cell};
use crate::model::outcome::{CriuMeasure, ScenarioResult};
use crate::model::scenario::Scenario;
use crate::report::progress::Reporter;
use crate::results::run::{CellReport, ResultsError, RunDir};
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
    /// QEMU start to agent ready, resumed from the saved ready state.
    pub resume_ms: Option<Stats>,
    /// Guest uptime at each boot mark, median over the boots.
    pub boot_marks: Vec<(String, u64)>,
    pub overhead_ms: Option<Stats>,
    pub big_scenario: Option<String>,
    pub big_checkpoint_ms: Option<Stats>,
    pub big_restore_ms: Option<Stats>,
    /// The large scenario in each mode of `--big-modes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub big_modes: Vec<ModeBench>,
    /// The scenarios in one guest (resumed).
    pub one_boot_for_all_ms: Option<Stats>,
    /// The scenarios in a guest each, every guest booted.
    pub one_boot_per_scenario_ms: Option<Stats>,
    /// The scenarios in a guest each, every guest resumed (`--pristine`).
    pub one_resume_per_scenario_ms: Option<Stats>,
    pub scenarios: Vec<String>,
    pub failures: Vec<String>,
    pub peak_rss_crtest_kib: i64,
    pub peak_rss_qemu_kib: i64,
}

/// The large scenario in one mode, over the repetitions (criu's own measures, from
/// run.json's `criu_runs`).
#[derive(Debug, Default, Serialize)]
pub struct ModeBench {
    pub mode: String,
    /// The whole checkpoint step, pre-dumps included.
    pub checkpoint_ms: Option<Stats>,
    pub restore_ms: Option<Stats>,
    /// The final dump's frozen time (criu's `frozen_time`): the workload held still.
    pub frozen_ms: Option<Stats>,
    /// Every dump's and pre-dump's frozen time added up.
    pub frozen_all_ms: Option<Stats>,
    /// The final dump's frozen time plus the restore up to a running tree: how long the
    /// workload did not run, as a migration would see it.
    pub downtime_ms: Option<Stats>,
    /// A lazy restore: from its start to the last page served.
    pub lazy_done_ms: Option<Stats>,
    /// Pages the final dump wrote.
    pub final_pages: Option<Stats>,
}

/// One run of the large scenario in a mode, from criu's measures of its first iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSample {
    /// The final dump's frozen time, ms.
    pub frozen: u64,
    /// Every dump's and pre-dump's frozen time, ms.
    pub frozen_all: u64,
    /// The final dump's frozen time plus the restore to a running tree, ms.
    pub downtime: u64,
    /// A lazy restore's last page, ms from its start.
    pub lazy_done: Option<u64>,
    /// Pages the final dump wrote.
    pub pages: u64,
}

pub fn mode_sample(r: &ScenarioResult) -> Option<ModeSample> {
    let runs: Vec<&CriuMeasure> = r.criu_runs.iter().filter(|c| c.iteration == 1).collect();
    let last = runs.iter().rev().find(|c| c.action == "dump")?;
    let frozen = last.dump.as_ref()?.frozen_us / 1000;
    let frozen_all: u64 = runs
        .iter()
        .filter_map(|c| c.dump.as_ref())
        .map(|d| d.frozen_us / 1000)
        .sum();
    let restore = runs.iter().find(|c| c.action == "restore")?;
    let running = restore.lazy_running_ms.unwrap_or(restore.ms);
    Some(ModeSample {
        frozen,
        frozen_all,
        downtime: frozen + running,
        lazy_done: restore.lazy_done_ms,
        pages: last.dump.as_ref()?.pages_written,
    })
}

fn mode_bench(mode: String, results: &[&ScenarioResult]) -> ModeBench {
    let samples: Vec<ModeSample> = results.iter().filter_map(|r| mode_sample(r)).collect();
    let col = |f: fn(&ModeSample) -> Option<u64>| {
        Stats::of(&samples.iter().filter_map(f).collect::<Vec<_>>())
    };
    let phase = |f: fn(&ScenarioResult) -> Option<u64>| {
        Stats::of(&results.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    ModeBench {
        mode,
        checkpoint_ms: phase(|r| r.phases.checkpoint_ms),
        restore_ms: phase(|r| r.phases.restore_ms),
        frozen_ms: col(|s| Some(s.frozen)),
        frozen_all_ms: col(|s| Some(s.frozen_all)),
        downtime_ms: col(|s| Some(s.downtime)),
        lazy_done_ms: col(|s| s.lazy_done),
        final_pages: col(|s| Some(s.pages)),
    }
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
) -> Result<(CellReport, u64), ResultsError> {
    let mut run = RunDir::create(root)?;
    let t = Instant::now();
    vm_run::run_cell(cell, scenarios, probes, &mut run, reporter)?;
    let wall = t.elapsed().as_millis() as u64;
    crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by())?;
    Ok((run.report.cells.remove(0), wall))
}

/// Runs the benchmark; results also go to `<dir>/bench.json`.
pub fn run(
    cell: &Cell,
    scenarios: &[Scenario],
    big: &[Scenario],
    reps: u32,
    dir: &Path,
    reporter: &mut dyn Reporter,
) -> Result<BenchReport, ResultsError> {
    let mut report = BenchReport {
        cell: cell.id.clone(),
        reps,
        scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
        big_scenario: big.first().map(|b| b.name.clone()),
        ..BenchReport::default()
    };
    let booted = Cell {
        saved_vms: None,
        pristine: false,
        ..cell.clone()
    };
    let resumed = Cell {
        saved_vms: Some(Default::default()),
        pristine: false,
        ..cell.clone()
    };
    let mut boots = Vec::new();
    let mut resumes = Vec::new();
    let mut marks: Vec<Vec<(String, u64)>> = Vec::new();
    let mut overhead = Vec::new();
    let (mut all, mut per, mut per_resumed) = (Vec::new(), Vec::new(), Vec::new());
    let (mut big_c, mut big_r) = (Vec::new(), Vec::new());
    let mut big_runs: Vec<ScenarioResult> = Vec::new();
    let note = |report: &mut BenchReport, results: &[ScenarioResult]| {
        for r in results.iter().filter(|r| r.outcome.is_bad()) {
            report.failures.push(format!("{}: {}", r.name, r.outcome));
        }
    };
    let trivial = [vec!["true".to_string()]];
    // The saved state is made (or found) once, outside the timings.
    let (c, _) = run_once(&resumed, &[], &trivial, &dir.join("save"), reporter)?;
    if c.resume_ms.is_none() {
        report
            .failures
            .push(format!("no resumed guest: {}", c.notes.join("; ")));
    }
    for _ in 0..reps {
        // Start only: the agent answers one trivial probe and powers off.
        let (c, _) = run_once(&booted, &[], &trivial, &dir.join("boot"), reporter)?;
        boots.extend(c.boot_ms);
        marks.push(c.boot_marks);
        let (c, _) = run_once(&resumed, &[], &trivial, &dir.join("resume"), reporter)?;
        resumes.extend(c.resume_ms);

        let (c, wall) = run_once(&resumed, scenarios, &[], &dir.join("one-boot"), reporter)?;
        all.push(wall);
        overhead.extend(c.scenarios.iter().flat_map(overheads));
        note(&mut report, &c.scenarios);

        for (cell, into, folder) in [
            (&booted, &mut per, "per-scenario"),
            (&resumed, &mut per_resumed, "per-scenario-resumed"),
        ] {
            let pristine = Cell {
                pristine: true,
                ..cell.clone()
            };
            let (c, wall) = run_once(&pristine, scenarios, &[], &dir.join(folder), reporter)?;
            into.push(wall);
            note(&mut report, &c.scenarios);
        }

        if !big.is_empty() {
            // Each mode in a guest of its own, so that none pays for another's memory.
            let own = Cell {
                pristine: true,
                ..resumed.clone()
            };
            let (c, _) = run_once(&own, big, &[], &dir.join("big"), reporter)?;
            if let Some(r) = c.scenarios.iter().find(|r| r.name == big[0].name) {
                big_c.extend(r.phases.checkpoint_ms);
                big_r.extend(r.phases.restore_ms);
            }
            note(&mut report, &c.scenarios);
            big_runs.extend(c.scenarios);
        }
    }
    if big.len() > 1 || big.first().is_some_and(|b| !b.mode.is_plain()) {
        for b in big {
            let of_mode: Vec<&ScenarioResult> =
                big_runs.iter().filter(|r| r.name == b.name).collect();
            report
                .big_modes
                .push(mode_bench(b.mode.to_string(), &of_mode));
        }
    }
    report.boot_ms = Stats::of(&boots);
    report.resume_ms = Stats::of(&resumes);
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
    report.one_resume_per_scenario_ms = Stats::of(&per_resumed);
    report.big_checkpoint_ms = Stats::of(&big_c);
    report.big_restore_ms = Stats::of(&big_r);
    let usage = |who| nix::sys::resource::getrusage(who).map_or(0, |u| u.max_rss());
    report.peak_rss_crtest_kib = usage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    report.peak_rss_qemu_kib = usage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    let json = serde_json::to_string_pretty(&report).expect("bench report serialises");
    let path = dir.join("bench.json");
    std::fs::write(&path, json + "\n").map_err(|source| ResultsError::Write { path, source })?;
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
    row("QEMU start to agent ready, booted", &r.boot_ms);
    row("QEMU start to agent ready, resumed", &r.resume_ms);
    row("harness overhead per checkpoint/restore", &r.overhead_ms);
    if let Some(b) = &r.big_scenario {
        row(&format!("{b}: checkpoint"), &r.big_checkpoint_ms);
        row(&format!("{b}: restore"), &r.big_restore_ms);
    }
    let n = r.scenarios.len();
    row(
        &format!("{n} scenarios, one guest for all"),
        &r.one_boot_for_all_ms,
    );
    row(
        &format!("{n} scenarios, a booted guest each"),
        &r.one_boot_per_scenario_ms,
    );
    row(
        &format!("{n} scenarios, a resumed guest each"),
        &r.one_resume_per_scenario_ms,
    );
    mode_table(r, &mut o);
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

/// The large scenario's modes, each against the first (`--big-modes`).
fn mode_table(r: &BenchReport, o: &mut String) {
    if let Some(plain) = r.big_modes.first().and_then(|m| m.downtime_ms.clone()) {
        let _ = writeln!(
            o,
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "mode (median ms)", "ckpt", "restore", "frozen", "downtime", "vs first", "lazy done"
        );
        for m in &r.big_modes {
            let med = |s: &Option<Stats>| s.as_ref().map_or("-".into(), |s| s.median.to_string());
            let ratio = m.downtime_ms.as_ref().map_or("-".into(), |d| {
                format!("{:.2}", d.median as f64 / plain.median.max(1) as f64)
            });
            let _ = writeln!(
                o,
                "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                m.mode,
                med(&m.checkpoint_ms),
                med(&m.restore_ms),
                med(&m.frozen_ms),
                med(&m.downtime_ms),
                ratio,
                med(&m.lazy_done_ms)
            );
        }
    }
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
            visible_state: None,
            criu_runs: Vec::new(),
            migration: None,
        };
        assert_eq!(overheads(&r), [50, 70]);
    }
}
