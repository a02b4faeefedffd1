//! What a finished run directory holds besides run.json: junit.xml, report.html, summary.md,
//! the history line, and the terminal summary of its cells.

use crate::results::run::{MatrixCell, MatrixInfo, ResultsError, RunDir, RunReport};
use std::path::Path;

/// Marks the run finished (or stopped by `interrupted`, a signal's name) and writes
/// run.json, junit.xml and results.ktap.
pub fn finish(run: &mut RunDir, interrupted: Option<String>) -> Result<(), ResultsError> {
    run.finish(interrupted)?;
    for (name, text) in [
        ("junit.xml", crate::report::junit::render(&run.report)),
        (KTAP_FILE, crate::report::ktap::render(&run.report)),
    ] {
        let path = run.dir.join(name);
        std::fs::write(&path, text).map_err(|source| ResultsError::Write { path, source })?;
    }
    Ok(())
}

/// The run's KTAP file, beside run.json.
pub const KTAP_FILE: &str = "results.ktap";

/// Writes `report.html` and `summary.md` for a finished run and appends the run to the
/// history of its results root.
pub fn write_views(run_dir: &Path, report: &RunReport) -> std::io::Result<()> {
    let history_path = crate::report::history::path_for_run(run_dir);
    crate::report::history::append(&history_path, report)?;
    let history = crate::report::history::load(&history_path);
    let html = crate::report::html::render(report, &history);
    std::fs::write(run_dir.join("report.html"), html)?;
    std::fs::write(
        run_dir.join("summary.md"),
        crate::report::summary_md::render(report),
    )
}

/// What `crtest run` adds to its run directory: its one cell in the plan (so `compare` and
/// the history match it with matrix cells), report.html, summary.md and the history line.
pub fn record_single_run(run: &mut RunDir, kernel_label: &str, userland: &str) {
    let cells = run
        .report
        .cells
        .iter()
        .map(|c| MatrixCell {
            id: c.id.clone(),
            kernel: kernel_label.into(),
            userland: userland.into(),
            dir: None,
            wall_ms: None,
        })
        .collect();
    run.report.matrix = Some(MatrixInfo {
        kernels: vec![kernel_label.into()],
        userlands: vec![userland.into()],
        scenarios: run
            .report
            .cells
            .iter()
            .flat_map(|c| c.scenarios.iter().map(|s| s.name.clone()))
            .collect(),
        cells,
        ..MatrixInfo::default()
    });
    if let Err(e) = run.save() {
        eprintln!("crtest: {e}");
    }
    if let Err(e) = write_views(&run.dir, &run.report) {
        eprintln!("crtest: writing report.html, summary.md, history: {e}");
    }
}

/// The matrix's terminal summary: one line per cell with its verdict, counts, times and
/// diagnoses.
pub fn terminal_summary(report: &RunReport) -> String {
    let mut out = String::new();
    for c in &report.cells {
        let v = crate::report::verdict::verdict(&c.scenarios);
        let wall = report
            .matrix_cell(&c.id)
            .and_then(|m| m.wall_ms)
            .map_or(String::new(), |ms| {
                format!(", wall {:.1} s", ms as f64 / 1000.0)
            });
        out.push_str(&format!(
            "{:<8} {:<40} kernel {} criu {}: {} (prepare {:.1} s, boot {}{wall})\n",
            v.as_str(),
            c.id,
            c.kernel.release,
            c.userland.criu_text(),
            crate::report::verdict::counts_text(&c.scenarios),
            c.prepare_ms as f64 / 1000.0,
            c.boot_ms
                .map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
        ));
        for d in crate::report::verdict::diagnoses(c) {
            out.push_str(&format!("           {}\n", d.headline()));
            if let Some(l) = &d.first_error_line {
                out.push_str(&format!("             {l}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishing_writes_run_json_and_junit() {
        let tmp = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(tmp.path()).unwrap();
        finish(&mut run, Some("SIGTERM".into())).unwrap();
        let text = std::fs::read_to_string(run.dir.join("run.json")).unwrap();
        let back: RunReport = serde_json::from_str(&text).unwrap();
        assert!(!back.finished);
        assert_eq!(back.interrupted.as_deref(), Some("SIGTERM"));
        assert!(run.dir.join("junit.xml").is_file());
        let ktap = std::fs::read_to_string(run.dir.join(KTAP_FILE)).unwrap();
        assert!(ktap.starts_with("KTAP version 1\n1..0\n"), "{ktap}");
    }
}
