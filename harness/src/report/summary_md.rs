//! `summary.md`: the run in a few lines of Markdown for CI logs and job summaries (e.g.
//! `cat summary.md >> $GITHUB_STEP_SUMMARY`): the kernels x userlands table with each cell's
//! verdict and counts, then why each failing cell fails.

use crate::report::verdict;
use crate::results::run::RunReport;
use std::fmt::Write;

/// Text for a Markdown table cell: no `|`, no line breaks.
fn cell_text(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub fn render(report: &RunReport) -> String {
    let grid = verdict::grid(report);
    let mut out = String::new();
    let all: Vec<_> = report
        .cells
        .iter()
        .flat_map(|c| c.scenarios.iter().cloned())
        .collect();
    let _ = writeln!(out, "# crtest {}\n", report.run_id);
    let mut meta = vec![
        format!("started {}", report.started_at),
        format!("{} cells", report.cells.len()),
        verdict::counts_text(&all),
    ];
    if let Some(s) = report.matrix.as_ref().and_then(|m| m.shard.as_ref()) {
        meta.push(format!("shard {s}"));
    }
    if !report.finished {
        meta.push("**unfinished**".into());
    }
    let _ = writeln!(out, "{}\n", meta.join(" · "));
    let mut header = String::from("| kernel \\ userland |");
    let mut rule = String::from("|---|");
    for (ui, u) in grid.userlands.iter().enumerate() {
        let criu = verdict::representative(report, grid.cells.iter().map(|row| row[ui]))
            .filter(|c| c.userland.criu.is_some())
            .map(|c| c.userland.criu_text());
        let label = match criu {
            Some(c) => format!("{u} (criu {c})"),
            None => u.clone(),
        };
        let _ = write!(header, " {} |", cell_text(&label));
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for (ki, k) in grid.kernels.iter().enumerate() {
        let release = verdict::representative(report, grid.cells[ki].iter().copied())
            .map(|c| c.kernel.release.clone());
        let label = match release {
            Some(r) => format!("{k} ({r})"),
            None => k.clone(),
        };
        let _ = write!(out, "| {} |", cell_text(&label));
        for ui in 0..grid.userlands.len() {
            let text = match grid.cells[ki][ui] {
                None => "· not run".to_string(),
                Some(i) => {
                    let c = &report.cells[i];
                    let v = verdict::verdict(&c.scenarios);
                    let mut t = format!("{} {}", v.mark(), verdict::counts_text(&c.scenarios));
                    let classes: Vec<String> = verdict::diagnoses(c)
                        .into_iter()
                        .map(|d| {
                            d.class.unwrap_or_else(|| {
                                let t: String = d.title.chars().take(80).collect();
                                if t.len() < d.title.len() {
                                    format!("{t} ...")
                                } else {
                                    t
                                }
                            })
                        })
                        .collect();
                    if !classes.is_empty() {
                        let _ = write!(t, ": {}", classes.join(", "));
                    }
                    t
                }
            };
            let _ = write!(out, " {} |", cell_text(&text));
        }
        out.push('\n');
    }
    let mut why = String::new();
    for c in &report.cells {
        let diags = verdict::diagnoses(c);
        if diags.is_empty() {
            continue;
        }
        let (k, u) = report
            .matrix_cell(&c.id)
            .map(|m| (m.kernel.clone(), m.userland.clone()))
            .unwrap_or_else(|| (c.kernel.release.clone(), c.userland.suite.clone()));
        let _ = writeln!(
            why,
            "- **kernel {k} × userland {u}** (kernel {}, criu {}):",
            c.kernel.release,
            c.userland.criu_text()
        );
        for d in diags {
            let _ = writeln!(why, "  - {}", d.headline());
            if let Some(l) = &d.first_error_line {
                let _ = writeln!(why, "    `{}`", l.replace('`', "'"));
            }
            if let Some(f) = &d.fix {
                let _ = writeln!(why, "    fix: {f}");
            }
        }
    }
    if !why.is_empty() {
        let _ = writeln!(out, "\n## Why cells fail\n\n{why}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_fixed_matrix() {
        let md = render(&crate::results::fixtures::matrix_report());
        insta::assert_snapshot!(crate::results::fixtures::redact(&md, &[]));
    }
}
