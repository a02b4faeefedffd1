//! `results.ktap`: the run in KTAP version 1 (the kernel's `Documentation/dev-tools/ktap.rst`),
//! which kselftest and KUnit tooling and plain TAP consumers read.
//!
//! One top-level test per cell, one subtest per scenario, indented two spaces:
//!
//! ```text
//! KTAP version 1
//! 1..1
//!   KTAP version 1
//!   # Subtest: kernel-6.1.0-56+userland-bookworm
//!   1..3
//!   ok 1 counterloop # pass 2.1 s
//!   ok 2 timerfd # XFAIL unsupported: Error (criu/timerfd.c:...)
//!   # step:    restore
//!   # why:     criu restore exited with status 1
//!   not ok 3 fileio1
//! not ok 1 kernel-6.1.0-56+userland-bookworm
//! ```
//!
//! `pass` is `ok`; `skip` is `ok # SKIP reason`; `xfail` is `ok # XFAIL class: first error
//! line`, as kselftest writes it; `flaky` is `ok # flaky: N of M attempts passed ...`; `fail` and `xpass` are `not ok` (the latter `# XPASS`),
//! `timeout` `not ok # TIMEOUT`, `error` and `panic` `not ok # ERROR`. The failure report of
//! a scenario that did not pass stands before its result line as diagnostic lines. A cell
//! is `not ok` when any of its scenarios is.

use crate::model::outcome::{Outcome, ScenarioResult};
use crate::results::run::{CellReport, RunReport};
use std::fmt::Write;

/// The KTAP text of a run.
pub fn render(run: &RunReport) -> String {
    let mut out = String::from("KTAP version 1\n");
    let _ = writeln!(out, "1..{}", run.cells.len());
    for (i, cell) in run.cells.iter().enumerate() {
        cell_block(&mut out, i + 1, cell);
    }
    out
}

fn cell_block(out: &mut String, number: usize, cell: &CellReport) {
    let _ = writeln!(out, "  KTAP version 1");
    let _ = writeln!(out, "  # Subtest: {}", description(&cell.id));
    let _ = writeln!(
        out,
        "  # kernel {} | criu {} | lxc {}",
        one_line(&cell.kernel.release),
        one_line(&cell.userland.criu_text()),
        one_line(cell.userland.lxc.as_deref().unwrap_or("?")),
    );
    if !cell.userland.oci.is_empty() {
        let tools: Vec<String> = cell
            .userland
            .oci
            .iter()
            .map(|(p, v)| format!("{p} {}", one_line(v)))
            .collect();
        let _ = writeln!(out, "  # {}", tools.join(" | "));
    }
    let _ = writeln!(out, "  1..{}", cell.scenarios.len());
    for (i, s) in cell.scenarios.iter().enumerate() {
        scenario_lines(out, i + 1, s);
    }
    let bad = cell.scenarios.iter().any(|s| s.outcome.is_bad());
    let _ = writeln!(
        out,
        "{} {number} {}",
        if bad { "not ok" } else { "ok" },
        description(&cell.id)
    );
}

fn scenario_lines(out: &mut String, number: usize, s: &ScenarioResult) {
    if s.outcome.is_bad() || matches!(s.outcome, Outcome::Xfail | Outcome::Flaky) {
        if let Some(f) = &s.failure {
            for line in crate::report::text::failure_block(f).lines() {
                let _ = writeln!(out, "  # {}", one_line(line.trim_start()));
            }
        }
    }
    let name = description(&s.name);
    let seconds = format!("{:.1} s", s.duration_ms as f64 / 1000.0);
    let why = || {
        s.failure
            .as_ref()
            .map(|f| {
                let class = f.class.as_deref().unwrap_or("unclassified");
                let line = f.first_error_line.as_deref().unwrap_or(&f.message);
                format!("{class}: {}", one_line(line))
            })
            .or_else(|| s.detail.as_deref().map(one_line))
            .unwrap_or_default()
    };
    let line = match s.outcome {
        Outcome::Pass => format!("ok {number} {name} # {seconds}"),
        Outcome::Skip => format!(
            "ok {number} {name} # SKIP {}",
            s.detail.as_deref().map(one_line).unwrap_or_default()
        ),
        Outcome::Xfail => format!("ok {number} {name} # XFAIL {}", why()),
        Outcome::Flaky => format!(
            "ok {number} {name} # flaky: {}; {}",
            s.detail.as_deref().map(one_line).unwrap_or_default(),
            why()
        ),
        Outcome::Fail => format!("not ok {number} {name} # {}", why()),
        Outcome::Xpass => {
            format!("not ok {number} {name} # XPASS passed, but the scenario expects it to fail")
        }
        Outcome::Timeout => format!("not ok {number} {name} # TIMEOUT {}", why()),
        Outcome::Error | Outcome::Panic => {
            format!("not ok {number} {name} # ERROR {}: {}", s.outcome, why())
        }
    };
    let _ = writeln!(out, "  {}", line.trim_end());
}

/// A test's description: KTAP allows any words but `#`.
fn description(name: &str) -> String {
    one_line(name).replace('#', "_")
}

/// Text on one line (diagnostic data and lines end at a newline).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures;

    #[test]
    fn a_matrix_in_ktap() {
        let report = fixtures::matrix_report();
        insta::assert_snapshot!(render(&report));
    }

    #[test]
    fn names_and_lines_stay_on_one_line_without_hashes() {
        assert_eq!(description("a#b\nc"), "a_b c");
    }
}
