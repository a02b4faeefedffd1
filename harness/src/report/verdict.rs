//! What a cell came to, for the matrix views (HTML, Markdown, terminal): one verdict, the
//! counts, and the diagnosis of its failures grouped by failure class, so a failing cell
//! always says why.

use crate::model::outcome::{Outcome, ScenarioResult};
use crate::results::run::{CellReport, RunReport};

/// A cell's verdict, from its scenarios' outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellVerdict {
    /// Everything that ran passed (skips allowed).
    Pass,
    /// Some passed, some failed.
    Partial,
    /// Nothing passed and something failed, timed out or panicked.
    Fail,
    /// Nothing passed and the harness could not run the scenarios (boot, images).
    Error,
    /// Every scenario was skipped.
    Skip,
    /// No scenario (not planned for this run or shard).
    Empty,
}

impl CellVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            CellVerdict::Pass => "pass",
            CellVerdict::Partial => "partial",
            CellVerdict::Fail => "fail",
            CellVerdict::Error => "error",
            CellVerdict::Skip => "skip",
            CellVerdict::Empty => "not run",
        }
    }

    /// A one-character mark for plain-text tables.
    pub fn mark(self) -> &'static str {
        match self {
            CellVerdict::Pass => "✅",
            CellVerdict::Partial => "⚠️",
            CellVerdict::Fail => "❌",
            CellVerdict::Error => "💥",
            CellVerdict::Skip => "⏭️",
            CellVerdict::Empty => "·",
        }
    }
}

pub fn verdict(scenarios: &[ScenarioResult]) -> CellVerdict {
    if scenarios.is_empty() {
        return CellVerdict::Empty;
    }
    let good = scenarios.iter().filter(|s| s.outcome.is_good()).count();
    let bad: Vec<Outcome> = scenarios
        .iter()
        .map(|s| s.outcome)
        .filter(|o| o.is_bad())
        .collect();
    match (good, bad.is_empty()) {
        (0, true) => CellVerdict::Skip,
        (_, true) => CellVerdict::Pass,
        (0, false) if bad.iter().all(|o| *o == Outcome::Error) => CellVerdict::Error,
        (0, false) => CellVerdict::Fail,
        (_, false) => CellVerdict::Partial,
    }
}

/// `2 pass, 1 fail` (outcomes in the vocabulary's order).
pub fn counts_text(scenarios: &[ScenarioResult]) -> String {
    let c: Vec<String> = crate::results::run::counts(scenarios)
        .into_iter()
        .map(|(o, n)| format!("{n} {o}"))
        .collect();
    if c.is_empty() {
        "no scenarios".into()
    } else {
        c.join(", ")
    }
}

/// One reason a cell failed: its class (when known) and what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The failure class id (`version-mismatch`), when the failure was classified.
    pub class: Option<String>,
    /// The class's title, or the failure's message when unclassified.
    pub title: String,
    /// What to do, from the class table.
    pub fix: Option<String>,
    /// The first failure's step, first error line and errno: the evidence.
    pub step: String,
    pub first_error_line: Option<String>,
    pub errno: Option<String>,
    /// The scenarios that failed this way.
    pub scenarios: Vec<String>,
}

impl Diagnosis {
    /// `version-mismatch: the kernel and ... (fileio1, ptree1)`.
    pub fn headline(&self) -> String {
        let what = match &self.class {
            Some(c) if c != "unknown" => format!("{c}: {}", self.title),
            _ => self.title.clone(),
        };
        format!("{what} ({})", self.scenarios.join(", "))
    }
}

/// The diagnoses of a cell's bad scenarios, grouped by class (unclassified failures by
/// their message), in order of first appearance.
pub fn diagnoses(cell: &CellReport) -> Vec<Diagnosis> {
    let mut out: Vec<Diagnosis> = Vec::new();
    for s in cell.scenarios.iter().filter(|s| s.outcome.is_bad()) {
        let f = s
            .failure
            .clone()
            .unwrap_or_else(|| crate::model::outcome::Failure {
                step: "scenario".into(),
                message: format!("{} with no failure report", s.outcome),
                ..Default::default()
            });
        let class = f.class.clone().filter(|c| !c.is_empty());
        let known = class.as_deref().and_then(crate::diagnose::class::class);
        let title = match known {
            Some(k) => k.title.clone(),
            None => first_line(&f.message),
        };
        if let Some(d) = out
            .iter_mut()
            .find(|d| d.class == class && (known.is_some() || d.title == title))
        {
            d.scenarios.push(s.name.clone());
            continue;
        }
        out.push(Diagnosis {
            class,
            title,
            fix: known.map(|k| k.fix.clone()),
            step: f.step.clone(),
            first_error_line: f.first_error_line.clone(),
            errno: f.errno.clone(),
            scenarios: vec![s.name.clone()],
        });
    }
    out
}

/// The first non-empty line of a message, cut to 200 characters: a title for tables (the
/// whole message stays in the failure report).
pub fn first_line(message: &str) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut cut: String = line.chars().take(200).collect();
    if cut.len() < line.len() || message.trim().lines().count() > 1 {
        cut.push_str(" ...");
    }
    cut
}

/// The cell whose versions best stand for a row or a column: the first that was prepared
/// (its kernel release known).
pub fn representative(
    report: &RunReport,
    indices: impl Iterator<Item = Option<usize>>,
) -> Option<&CellReport> {
    let cells: Vec<&CellReport> = indices.flatten().map(|i| &report.cells[i]).collect();
    cells
        .iter()
        .find(|c| c.kernel.release != "?" && c.userland.criu.is_some())
        .or(cells.first())
        .copied()
}

/// The cells of a run laid out as kernels x userlands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    pub kernels: Vec<String>,
    pub userlands: Vec<String>,
    /// `cells[k][u]`: the index into `report.cells`, when the run has that cell.
    pub cells: Vec<Vec<Option<usize>>>,
}

/// The grid of a run: from its plan when it has one, else from the cells' kernel releases
/// and userland suites.
pub fn grid(report: &RunReport) -> Grid {
    let mut kernels: Vec<String> = Vec::new();
    let mut userlands: Vec<String> = Vec::new();
    let axes = |c: &CellReport| -> (String, String) {
        if let Some(pair) = &c.migration {
            // A migration's pair: from (rows) x to (columns).
            return (pair.source_id.clone(), pair.target_id.clone());
        }
        match report.matrix_cell(&c.id) {
            Some(m) => (m.kernel.clone(), m.userland.clone()),
            None => (c.kernel.release.clone(), c.userland.suite.clone()),
        }
    };
    if let Some(m) = &report.matrix {
        kernels.clone_from(&m.kernels);
        userlands.clone_from(&m.userlands);
    }
    for c in &report.cells {
        let (k, u) = axes(c);
        if !kernels.contains(&k) {
            kernels.push(k);
        }
        if !userlands.contains(&u) {
            userlands.push(u);
        }
    }
    let mut cells = vec![vec![None; userlands.len()]; kernels.len()];
    for (i, c) in report.cells.iter().enumerate() {
        let (k, u) = axes(c);
        let ki = kernels.iter().position(|x| *x == k).expect("added above");
        let ui = userlands.iter().position(|x| *x == u).expect("added above");
        cells[ki][ui] = Some(i);
    }
    Grid {
        kernels,
        userlands,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures;

    #[test]
    fn verdicts() {
        use Outcome::*;
        let v = |o: &[Outcome]| {
            verdict(
                &o.iter()
                    .map(|o| fixtures::scenario("s", *o, 1, 1))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(v(&[]), CellVerdict::Empty);
        assert_eq!(v(&[Pass, Skip]), CellVerdict::Pass);
        assert_eq!(v(&[Skip]), CellVerdict::Skip);
        assert_eq!(v(&[Pass, Fail]), CellVerdict::Partial);
        assert_eq!(v(&[Fail, Error]), CellVerdict::Fail);
        assert_eq!(v(&[Error, Error]), CellVerdict::Error);
        assert_eq!(v(&[Xfail]), CellVerdict::Pass);
    }

    #[test]
    fn grid_and_diagnoses_of_the_fixture() {
        let r = fixtures::matrix_report();
        let g = grid(&r);
        assert_eq!(g.kernels, ["bookworm", "sid"]);
        assert_eq!(g.userlands, ["bookworm", "trixie"]);
        assert_eq!(g.cells[1][0], Some(2));
        let sid_bookworm = &r.cells[2];
        let d = diagnoses(sid_bookworm);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].class.as_deref(), Some("version-mismatch"));
        assert_eq!(d[0].scenarios, ["counterloop", "fileio1"]);
        assert!(d[0].headline().starts_with("version-mismatch: "));
        assert_eq!(first_line("one"), "one");
        assert_eq!(
            first_line("\n a: failed with status 101:\nnote: x\n"),
            "a: failed with status 101: ..."
        );
    }
}
