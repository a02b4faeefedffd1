//! `crtest compare OLD NEW`: what changed between two runs, cell by cell and scenario by
//! scenario. Cells are matched by their stable key (kernel and userland names, see
//! [`RunReport::cell_key`]), so a nightly that picked up a new kernel release is compared
//! with the night before and the version change is shown next to its effects.
//!
//! - regression: passed (pass or xfail) before, fails now (fail, xpass, error, timeout,
//!   panic). Any regression makes the command exit 1.
//! - fix: failed before, passes now.
//! - new skip: ran before, skipped now (with the unmet requirement).
//! - new failure: did not run before (new scenario, or skipped), fails now.
//! - timing: checkpoint_ms or restore_ms of a scenario passing in both runs changed by more
//!   than `--threshold-pct` percent and by at least `--threshold-ms` milliseconds (short
//!   phases jitter by tens of ms under TCG).

use crate::model::outcome::{Outcome, ScenarioResult};
use crate::results::run::{CellReport, RunReport};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub cell: String,
    pub scenario: String,
    pub old: Option<Outcome>,
    pub new: Outcome,
    /// The new failure's headline (class, first error line), or the skip's reason.
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimingChange {
    pub cell: String,
    pub scenario: String,
    /// `checkpoint` or `restore`.
    pub phase: &'static str,
    pub old_ms: u64,
    pub new_ms: u64,
    pub pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionChange {
    pub cell: String,
    pub what: &'static str,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    pub old_run: String,
    pub new_run: String,
    pub regressions: Vec<Change>,
    pub fixes: Vec<Change>,
    pub new_skips: Vec<Change>,
    pub new_failures: Vec<Change>,
    pub timing: Vec<TimingChange>,
    pub versions: Vec<VersionChange>,
    /// Cells only in OLD, only in NEW.
    pub cells_gone: Vec<String>,
    pub cells_new: Vec<String>,
    /// Scenarios that ran in OLD's cell and not in NEW's (a shard not merged, a rename).
    pub not_run: Vec<(String, String)>,
}

impl Comparison {
    pub fn has_regressions(&self) -> bool {
        !self.regressions.is_empty()
    }
}

fn good(o: Outcome) -> bool {
    o.is_good()
}

fn why(s: &ScenarioResult) -> Option<String> {
    if s.outcome == Outcome::Skip {
        return s.detail.clone();
    }
    let f = s.failure.as_ref()?;
    let mut t = match f.class.as_deref() {
        Some(c) if c != "unknown" => format!("{c}: {}", f.message),
        _ => f.message.clone(),
    };
    if let Some(l) = &f.first_error_line {
        t.push_str(&format!(" [{l}]"));
    }
    Some(t)
}

/// Compares two runs.
pub fn compare(
    old: &RunReport,
    new: &RunReport,
    threshold_pct: f64,
    threshold_ms: u64,
) -> Comparison {
    let mut c = Comparison {
        old_run: old.run_id.clone(),
        new_run: new.run_id.clone(),
        ..Comparison::default()
    };
    let keyed = |r: &RunReport| -> Vec<(String, CellReport)> {
        r.cells
            .iter()
            .map(|cell| (r.cell_key(cell), cell.clone()))
            .collect()
    };
    let (olds, news) = (keyed(old), keyed(new));
    for (key, _) in &olds {
        if !news.iter().any(|(k, _)| k == key) {
            c.cells_gone.push(key.clone());
        }
    }
    for (key, n) in &news {
        let Some((_, o)) = olds.iter().find(|(k, _)| k == key) else {
            c.cells_new.push(key.clone());
            continue;
        };
        // A cell that could not be prepared knows no versions: nothing to compare.
        let prepared = |c: &CellReport| c.kernel.release != "?";
        for (what, a, b) in [
            ("kernel", o.kernel.release.clone(), n.kernel.release.clone()),
            ("criu", o.userland.criu_text(), n.userland.criu_text()),
            (
                "lxc",
                o.userland.lxc.clone().unwrap_or_default(),
                n.userland.lxc.clone().unwrap_or_default(),
            ),
        ]
        .into_iter()
        .chain(crate::results::run::OCI_TOOLS.iter().filter_map(|t| {
            // An OCI tool compared where both runs ran OCI scenarios.
            let (a, b) = (o.userland.oci.get(*t)?, n.userland.oci.get(*t)?);
            Some((*t, a.clone(), b.clone()))
        })) {
            if a != b && prepared(o) && prepared(n) {
                c.versions.push(VersionChange {
                    cell: key.clone(),
                    what,
                    old: a,
                    new: b,
                });
            }
        }
        for s in &o.scenarios {
            if s.outcome != Outcome::Skip && !n.scenarios.iter().any(|x| x.name == s.name) {
                c.not_run.push((key.clone(), s.name.clone()));
            }
        }
        for ns in &n.scenarios {
            let os = o.scenarios.iter().find(|x| x.name == ns.name);
            let change = Change {
                cell: key.clone(),
                scenario: ns.name.clone(),
                old: os.map(|s| s.outcome),
                new: ns.outcome,
                why: why(ns),
            };
            match os.map(|s| s.outcome) {
                Some(po) if good(po) && ns.outcome.is_bad() => c.regressions.push(change),
                Some(po) if po.is_bad() && good(ns.outcome) => c.fixes.push(change),
                Some(po) if po != Outcome::Skip && ns.outcome == Outcome::Skip => {
                    c.new_skips.push(change)
                }
                None | Some(Outcome::Skip) if ns.outcome.is_bad() => c.new_failures.push(change),
                _ => {}
            }
            let Some(os) = os else { continue };
            if !(good(os.outcome) && good(ns.outcome)) {
                continue;
            }
            for (phase, a, b) in [
                (
                    "checkpoint",
                    os.phases.checkpoint_ms,
                    ns.phases.checkpoint_ms,
                ),
                ("restore", os.phases.restore_ms, ns.phases.restore_ms),
            ] {
                let (Some(a), Some(b)) = (a, b) else { continue };
                if a == 0 || a.abs_diff(b) < threshold_ms {
                    continue;
                }
                let pct = (b as f64 - a as f64) * 100.0 / a as f64;
                if pct.abs() > threshold_pct {
                    c.timing.push(TimingChange {
                        cell: key.clone(),
                        scenario: ns.name.clone(),
                        phase,
                        old_ms: a,
                        new_ms: b,
                        pct,
                    });
                }
            }
        }
    }
    c
}

fn outcome_text(o: Option<Outcome>) -> &'static str {
    o.map_or("(not run)", Outcome::as_str)
}

/// The comparison for people.
pub fn render(c: &Comparison, threshold_pct: f64, threshold_ms: u64) -> String {
    let mut out = format!("compare {} -> {}\n", c.old_run, c.new_run);
    let changes = |out: &mut String, title: &str, list: &[Change]| {
        if list.is_empty() {
            return;
        }
        let _ = writeln!(out, "{title} ({}):", list.len());
        for ch in list {
            let _ = writeln!(
                out,
                "  {}  {}: {} -> {}",
                ch.cell,
                ch.scenario,
                outcome_text(ch.old),
                ch.new
            );
            if let Some(w) = &ch.why {
                let _ = writeln!(out, "      {w}");
            }
        }
    };
    changes(&mut out, "REGRESSIONS", &c.regressions);
    changes(&mut out, "fixes", &c.fixes);
    changes(&mut out, "new skips", &c.new_skips);
    changes(&mut out, "new failures", &c.new_failures);
    if !c.timing.is_empty() {
        let _ = writeln!(
            out,
            "timing changes beyond {threshold_pct}% and {threshold_ms} ms ({}):",
            c.timing.len()
        );
        for t in &c.timing {
            let _ = writeln!(
                out,
                "  {}  {} {}: {} ms -> {} ms ({:+.0}%{})",
                t.cell,
                t.scenario,
                t.phase,
                t.old_ms,
                t.new_ms,
                t.pct,
                if t.pct > 0.0 { ", slower" } else { ", faster" }
            );
        }
    }
    if !c.versions.is_empty() {
        let _ = writeln!(out, "version changes:");
        for v in &c.versions {
            let show = |s: &str| {
                if s.is_empty() {
                    "(none)".to_string()
                } else {
                    s.to_string()
                }
            };
            let _ = writeln!(
                out,
                "  {}  {} {} -> {}",
                v.cell,
                v.what,
                show(&v.old),
                show(&v.new)
            );
        }
    }
    for (title, list) in [
        ("cells only in OLD", &c.cells_gone),
        ("cells only in NEW", &c.cells_new),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "{title}: {}", list.join(", "));
        }
    }
    if !c.not_run.is_empty() {
        let _ = writeln!(out, "ran in OLD, not in NEW:");
        for (cell, s) in &c.not_run {
            let _ = writeln!(out, "  {cell}  {s}");
        }
    }
    let _ = writeln!(
        out,
        "{} regressions, {} fixes, {} new skips, {} new failures, {} timing changes",
        c.regressions.len(),
        c.fixes.len(),
        c.new_skips.len(),
        c.new_failures.len(),
        c.timing.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures;

    #[test]
    fn regressions_fixes_skips_and_timing() {
        let old = fixtures::matrix_report();
        let mut new = old.clone();
        new.run_id = "20261127-200000-0002".into();
        // bookworm x bookworm: fileio1 regresses, counterloop's checkpoint doubles.
        new.cells[0].scenarios[1].outcome = Outcome::Fail;
        new.cells[0].scenarios[1].failure = old.cells[2].scenarios[0].failure.clone();
        new.cells[0].scenarios[0].phases.checkpoint_ms = Some(2400);
        // sid x trixie: fileio1 fixed; counterloop restore a bit faster (below threshold).
        new.cells[3].scenarios[1] = fixtures::scenario("fileio1", Outcome::Pass, 1000, 700);
        new.cells[3].scenarios[0].phases.restore_ms = Some(650);
        // bookworm x trixie: counterloop now skipped.
        new.cells[1].scenarios[0].outcome = Outcome::Skip;
        new.cells[1].scenarios[0].detail = Some("needs kernel >= 9".into());
        // a new kernel release for the sid rows.
        new.cells[2].kernel.release = "7.2.14+deb14-amd64".into();
        let c = compare(&old, &new, 25.0, 50);
        assert!(c.has_regressions());
        assert_eq!(c.regressions.len(), 1);
        assert_eq!(c.regressions[0].scenario, "fileio1");
        assert_eq!(c.fixes.len(), 1);
        assert_eq!(c.new_skips.len(), 1);
        assert_eq!(c.timing.len(), 1, "{:?}", c.timing);
        assert_eq!(c.versions.len(), 1);
        insta::assert_snapshot!(fixtures::redact(&render(&c, 25.0, 50), &[]));

        let same = compare(&old, &old, 25.0, 50);
        assert!(!same.has_regressions());
        assert_eq!(
            same,
            Comparison {
                old_run: old.run_id.clone(),
                new_run: old.run_id.clone(),
                ..Comparison::default()
            }
        );
    }

    #[test]
    fn cells_are_matched_by_key_not_release() {
        let old = fixtures::matrix_report();
        let mut new = old.clone();
        new.matrix.as_mut().unwrap().cells.remove(3);
        let c = compare(&old, &new, 25.0, 50);
        // Without its plan entry, the last cell is keyed by its id, which is the same key.
        assert!(c.cells_gone.is_empty() && c.cells_new.is_empty(), "{c:?}");
        new.cells.remove(3);
        let c = compare(&old, &new, 25.0, 50);
        assert_eq!(c.cells_gone, ["kernel-sid+userland-trixie"]);
    }
}
