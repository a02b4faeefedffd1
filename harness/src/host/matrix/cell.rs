//! One cell of a matrix run: its images prepared (both guests' for a migration pair), its
//! scenarios run into its own directory, and a report that says why when it could not run.

use super::plan::PlannedCell;
use super::CellSettings;
use crate::host::cell_choice::{self, KernelName};
use crate::host::vm_run::{self, CellOptions, CriuChoice};
use crate::report::progress::Reporter;
use crate::results::run::{self as results, CellReport, RunDir};
use std::path::Path;

/// A cell report for a cell whose images could not be prepared: every scenario `error`
/// with the reason, so the report says why the cell has no results.
pub fn unprepared(planned: &PlannedCell, why: &str) -> CellReport {
    CellReport {
        id: planned.id.clone(),
        kernel: results::KernelInfo {
            release: "?".into(),
            source: planned.kernel_label.clone(),
            missing_options: vec![],
        },
        userland: results::UserlandInfo {
            suite: planned.userland.clone(),
            criu: None,
            criu_source: match &planned.criu {
                CriuChoice::Tree(p) => Some(format!("tree at {}", p.display())),
                CriuChoice::Package => None,
            },
            lxc: None,
            oci: Default::default(),
        },
        notes: vec![format!("could not prepare the cell: {why}")],
        scenarios: planned
            .scenarios
            .iter()
            .map(|s| {
                crate::model::outcome::ScenarioResult::without_steps(
                    &s.name,
                    crate::model::outcome::Outcome::Error,
                    crate::model::outcome::Failure {
                        step: "prepare".into(),
                        message: format!("could not prepare the cell: {why}"),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        ..CellReport::default()
    }
}

/// Prepares and runs one cell in `cell_dir`; returns its report (artifacts relative to the
/// cell's directory).
pub fn run_one(
    planned: &PlannedCell,
    settings: &CellSettings,
    cell_dir: &Path,
    run_id: &str,
    reporter: &mut dyn Reporter,
) -> CellReport {
    let mut run = match RunDir::create_at(cell_dir, run_id) {
        Ok(r) => r,
        Err(e) => return unprepared(planned, &e.to_string()),
    };
    let target = Side {
        kernel: &planned.kernel,
        userland: &planned.userland,
        criu: &planned.criu,
        cpu: &planned.cpu,
    };
    let report = match (
        &planned.moved_from,
        target.prepare(planned, settings, reporter),
    ) {
        (_, Err(why)) => {
            run.report.cells.push(unprepared(planned, &why));
            Ok(())
        }
        (None, Ok(cell)) => vm_run::run_cell(&cell, &planned.scenarios, &[], &mut run, reporter),
        (Some(from), Ok(target)) => {
            let source = Side {
                kernel: &from.kernel,
                userland: &from.userland,
                criu: &from.criu,
                cpu: &from.cpu,
            };
            match source.prepare(planned, settings, reporter) {
                Err(why) => {
                    run.report
                        .cells
                        .push(unprepared(planned, &format!("source: {why}")));
                    Ok(())
                }
                Ok(source) => {
                    let pair = crate::host::migrate::Pair {
                        source: &source,
                        target: &target,
                        mode: from.mode,
                        fault: None,
                        dir: String::new(),
                    };
                    let res = crate::host::migrate::run_pair(
                        &pair,
                        &planned.scenarios,
                        &mut run,
                        reporter,
                    );
                    // The plan's id, which stays the same across kernel releases.
                    if let Some(c) = run.report.cells.last_mut() {
                        c.id.clone_from(&planned.id);
                    }
                    res
                }
            }
        }
    };
    if let Err(e) = report {
        let mut r = run
            .report
            .cells
            .pop()
            .unwrap_or_else(|| unprepared(planned, &e.to_string()));
        r.notes.push(format!("results: {e}"));
        run.report.cells.push(r);
    }
    let _ = crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by());
    run.report
        .cells
        .pop()
        .unwrap_or_else(|| unprepared(planned, "the cell wrote no report"))
}

/// One guest's cell of a planned cell: the target, or a migration's source.
struct Side<'a> {
    kernel: &'a KernelName,
    userland: &'a String,
    criu: &'a CriuChoice,
    cpu: &'a Option<String>,
}

impl Side<'_> {
    /// Its images, prepared (cached); the reason when they cannot be.
    fn prepare(
        &self,
        planned: &PlannedCell,
        settings: &CellSettings,
        reporter: &mut dyn Reporter,
    ) -> Result<vm_run::Cell, String> {
        let kernel =
            cell_choice::kernel_choice(self.kernel, None, None).map_err(|e| e.to_string())?;
        let opts = CellOptions {
            kernel,
            suite: Some(self.userland.clone()),
            criu: self.criu.clone(),
            zdtm: settings.zdtm.clone(),
            memory_mib: settings.memory_mib,
            cpus: settings.cpus,
            cpu: self.cpu.clone(),
            variants: crate::model::variant::needed(&planned.scenarios),
        };
        let cell = vm_run::prepare(&opts, reporter).map_err(|e| e.to_string())?;
        let id = match planned.moved_from {
            None => planned.id.clone(),
            Some(_) => cell.id.clone(),
        };
        Ok(vm_run::Cell {
            id,
            keep_images: settings.keep_images,
            ..cell
        })
    }
}

/// Prefixes a cell's artifact paths with its directory, so they are relative to the run.
pub fn relocate(mut cell: CellReport, dir: &str) -> CellReport {
    for s in &mut cell.scenarios {
        for a in s.paths_mut() {
            *a = format!("{dir}/{a}");
        }
    }
    cell
}
