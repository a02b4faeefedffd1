//! The one place a cell's results are written: each result into the cell's report, told to
//! the reporter, and run.json saved at once (so an interrupted run keeps what it had).

use crate::host::guest_share;
use crate::model::outcome::{Failure, Outcome, ScenarioResult};
use crate::model::scenario::Scenario;
use crate::report::progress::{Progress, Reporter};
use crate::results::run::{CellReport, ResultsError, RunDir};
use crtest_vm::console::ConsoleWatch;

/// The recorder of one cell of a run.
pub struct CellRecorder<'a> {
    pub run: &'a mut RunDir,
    pub reporter: &'a mut dyn Reporter,
    index: usize,
}

impl<'a> CellRecorder<'a> {
    /// Adds `cell` to the run (saved) and records into it from now on.
    pub fn start(
        run: &'a mut RunDir,
        reporter: &'a mut dyn Reporter,
        cell: CellReport,
    ) -> Result<CellRecorder<'a>, ResultsError> {
        run.report.cells.push(cell);
        let index = run.report.cells.len() - 1;
        run.save()?;
        Ok(CellRecorder {
            run,
            reporter,
            index,
        })
    }

    /// The cell's report.
    pub fn cell(&mut self) -> &mut CellReport {
        &mut self.run.report.cells[self.index]
    }

    pub fn save(&mut self) -> Result<(), ResultsError> {
        self.run.save()
    }

    pub fn progress(&mut self, p: &Progress) {
        self.reporter.on(p);
    }

    /// A note of the cell's report, told to the reporter as a guest note.
    pub fn guest_note(&mut self, note: String) {
        self.reporter
            .on(&Progress::GuestNote { note: note.clone() });
        self.cell().notes.push(note);
    }

    /// Results decided without a guest (skips): recorded as they are.
    pub fn decided(&mut self, results: Vec<ScenarioResult>) {
        for r in results {
            self.reporter.on(&Progress::ScenarioFinished {
                result: Box::new(r.clone()),
            });
            self.cell().scenarios.push(r);
        }
    }

    /// Records a result a guest reported for one of `remaining`, attaching the kernel trouble
    /// the console showed meanwhile; returns whether there was such trouble (the guest is
    /// then no clean base for the next scenario). The guest is untrusted: a result for a
    /// scenario it was not given is dropped (noted), and its file paths must stay inside
    /// its share.
    pub fn record(
        &mut self,
        mut result: ScenarioResult,
        remaining: &mut Vec<Scenario>,
        console: &mut ConsoleWatch,
    ) -> Result<bool, ResultsError> {
        if !remaining.iter().any(|s| s.name == result.name) {
            let note = format!(
                "the guest reported a result for `{}`, which it was not given; ignored",
                crate::report::markup::shown(&result.name)
            );
            self.cell().notes.push(note);
            return Ok(false);
        }
        guest_share::adopt_paths(&mut result);
        let trouble = console.take_trouble();
        let troubled = !trouble.is_empty();
        if troubled {
            let f = result.failure.get_or_insert_with(|| Failure {
                step: "scenario".into(),
                message: "the kernel reported trouble while the scenario ran".into(),
                ..Failure::default()
            });
            f.console_tail = trouble.into_iter().map(|(_, l)| l).collect();
            if result.outcome == Outcome::Pass {
                result.outcome = Outcome::Fail;
            }
        }
        remaining.retain(|s| s.name != result.name);
        self.decided(vec![result]);
        self.run.save()?;
        Ok(troubled)
    }

    /// Every scenario of `remaining` ends with `outcome` at `step`, with `message` and the
    /// console `lines` (a guest that never came up, an interrupted run, a variant image that
    /// could not be built).
    pub fn fail_all(
        &mut self,
        remaining: &mut Vec<Scenario>,
        outcome: Outcome,
        step: &str,
        message: &str,
        lines: &[String],
    ) -> Result<(), ResultsError> {
        let results = std::mem::take(remaining)
            .into_iter()
            .map(|sc| {
                ScenarioResult::without_steps(
                    &sc.name,
                    outcome,
                    Failure {
                        step: step.into(),
                        message: message.into(),
                        console_tail: lines.to_vec(),
                        ..Failure::default()
                    },
                )
            })
            .collect();
        self.decided(results);
        self.run.save()
    }
}
