//! `results/history.jsonl`: one line per finished run (`crtest run`, `crtest matrix`,
//! `crtest merge`), with each cell's counts and median checkpoint/restore times, so reports
//! can show a cell's recent trend without reading every old run directory.

use crate::model::outcome::Outcome;
use crate::results::run::{CellReport, RunReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name under the results root.
pub const FILE: &str = "history.jsonl";

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub run_id: String,
    pub started_at: String,
    /// `i/n` when the run was one shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub cells: Vec<CellEntry>,
}

/// One cell of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellEntry {
    /// The cell's stable key ([`RunReport::cell_key`]).
    pub key: String,
    pub kernel_release: String,
    pub criu: Option<String>,
    pub total: usize,
    /// pass and xfail.
    pub passed: usize,
    pub skipped: usize,
    /// Outcomes that fail a run.
    pub bad: usize,
    pub median_checkpoint_ms: Option<u64>,
    pub median_restore_ms: Option<u64>,
    /// Each scenario's duration, ms: what shards and guests are dealt by
    /// ([`crate::report::durations`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub durations_ms: BTreeMap<String, u64>,
    /// What the cell cost besides its scenarios (preparing, booting), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_ms: Option<u64>,
}

/// The median of some values (the lower middle one for an even count).
pub fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[(v.len() - 1) / 2])
}

fn cell_entry(key: String, c: &CellReport, wall_ms: Option<u64>) -> CellEntry {
    let durations = crate::report::durations::cell_durations(c, wall_ms);
    let count = |f: &dyn Fn(Outcome) -> bool| c.scenarios.iter().filter(|s| f(s.outcome)).count();
    CellEntry {
        key,
        kernel_release: c.kernel.release.clone(),
        criu: c.userland.criu.clone(),
        total: c.scenarios.len(),
        passed: count(&|o| o.is_good()),
        skipped: count(&|o| o == Outcome::Skip),
        bad: count(&|o| o.is_bad()),
        median_checkpoint_ms: median(
            c.scenarios
                .iter()
                .filter_map(|s| s.phases.checkpoint_ms)
                .collect(),
        ),
        median_restore_ms: median(
            c.scenarios
                .iter()
                .filter_map(|s| s.phases.restore_ms)
                .collect(),
        ),
        durations_ms: durations.scenarios,
        overhead_ms: durations.overhead_ms,
    }
}

/// The history line of a run.
pub fn entry(report: &RunReport) -> Entry {
    Entry {
        run_id: report.run_id.clone(),
        started_at: report.started_at.clone(),
        shard: report.matrix.as_ref().and_then(|m| m.shard.clone()),
        cells: report
            .cells
            .iter()
            .map(|c| {
                let wall = report.matrix_cell(&c.id).and_then(|m| m.wall_ms);
                cell_entry(report.cell_key(c), c, wall)
            })
            .collect(),
    }
}

/// Where the history of the results root holding `run_dir` lives.
pub fn path_for_run(run_dir: &Path) -> PathBuf {
    run_dir
        .parent()
        .map(|p| p.join(FILE))
        .unwrap_or_else(|| PathBuf::from(FILE))
}

/// Appends the run's line (one `write` of a whole line with O_APPEND, so runs finishing at
/// the same time do not interleave).
pub fn append(path: &Path, report: &RunReport) -> std::io::Result<()> {
    let mut line = serde_json::to_string(&entry(report)).expect("history entry serialises");
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line.as_bytes())
}

/// Reads a history file; a missing file is an empty history, unreadable lines are skipped.
pub fn load(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One point of a cell's trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub run_id: String,
    pub passed: usize,
    pub total: usize,
    pub checkpoint_ms: Option<u64>,
    pub restore_ms: Option<u64>,
}

/// The last `max` points of the cell `key`, oldest first, up to and including `until` (a
/// run id) when given. Shards of one run are not merged here: each line is one point.
pub fn trend(history: &[Entry], key: &str, until: Option<&str>, max: usize) -> Vec<Point> {
    let mut points = Vec::new();
    for e in history {
        if let Some(c) = e.cells.iter().find(|c| c.key == key) {
            points.push(Point {
                run_id: e.run_id.clone(),
                passed: c.passed,
                total: c.total,
                checkpoint_ms: c.median_checkpoint_ms,
                restore_ms: c.median_restore_ms,
            });
        }
        if until == Some(e.run_id.as_str()) {
            break;
        }
    }
    let skip = points.len().saturating_sub(max);
    points.split_off(skip)
}

/// A small inline SVG of a trend: passed/total (green, left scale 0..100 %) and the median
/// checkpoint (blue) and restore (orange) times (right scale, 0..the largest time). Each
/// point carries a tooltip with its numbers.
pub fn svg(points: &[Point]) -> String {
    const W: f64 = 160.0;
    const H: f64 = 40.0;
    const PAD: f64 = 3.0;
    if points.is_empty() {
        return String::new();
    }
    let max_ms = points
        .iter()
        .flat_map(|p| [p.checkpoint_ms, p.restore_ms])
        .flatten()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |i: usize| {
        if points.len() == 1 {
            W / 2.0
        } else {
            PAD + (W - 2.0 * PAD) * i as f64 / (points.len() - 1) as f64
        }
    };
    let y = |frac: f64| PAD + (H - 2.0 * PAD) * (1.0 - frac);
    let series = |f: &dyn Fn(&Point) -> Option<f64>, colour: &str| -> String {
        let pts: Vec<String> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| f(p).map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        if pts.is_empty() {
            return String::new();
        }
        let mut s = format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            pts.join(" ")
        );
        for pt in &pts {
            let (cx, cy) = pt.split_once(',').unwrap_or(("0", "0"));
            s.push_str(&format!(
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"1.8\" fill=\"{colour}\"/>"
            ));
        }
        s
    };
    let frac = |p: &Point| (p.total > 0).then(|| p.passed as f64 / p.total as f64);
    let ms = |v: Option<u64>| v.map(|v| v as f64 / max_ms);
    let mut out = format!(
        "<svg class=\"trend\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\"><title>last {} runs: passed (green), median \
         checkpoint (blue) and restore (orange) ms, 0..{} ms</title>\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fff\" stroke=\"#ccc\"/>",
        points.len(),
        max_ms as u64
    );
    out.push_str(&series(&|p| ms(p.checkpoint_ms), "#1f77b4"));
    out.push_str(&series(&|p| ms(p.restore_ms), "#ff7f0e"));
    out.push_str(&series(&frac, "#2ca02c"));
    // Hover targets: one transparent column per run with its numbers.
    let col = if points.len() == 1 {
        W
    } else {
        (W - 2.0 * PAD) / (points.len() - 1) as f64
    };
    for (i, p) in points.iter().enumerate() {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        out.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{H}\" fill=\"transparent\">\
             <title>{}: {}/{} passed, checkpoint {} ms, restore {} ms</title></rect>",
            (x(i) - col / 2.0).max(0.0),
            col,
            crate::report::markup::escape(&p.run_id),
            p.passed,
            p.total,
            opt(p.checkpoint_ms),
            opt(p.restore_ms)
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures::scenario;

    fn run(id: &str, outcomes: &[Outcome]) -> RunReport {
        let scenarios = outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| scenario(&format!("s{i}"), *o, 100 * (i as u64 + 1), 50))
            .collect();
        RunReport {
            format_version: 1,
            run_id: id.into(),
            started_at: "2026-11-26T00:00:00Z".into(),
            finished_at: None,
            wall_ms: None,
            finished: true,
            interrupted: None,
            crtest_version: "0.1.0".into(),
            cells: vec![CellReport {
                id: "c".into(),
                scenarios,
                ..CellReport::default()
            }],
            matrix: None,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5]), Some(5));
        assert_eq!(median(vec![9, 1, 5]), Some(5));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
    }

    #[test]
    fn append_load_and_trend() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join(FILE);
        append(
            &path,
            &run("r1", &[Outcome::Pass, Outcome::Fail, Outcome::Skip]),
        )
        .unwrap();
        append(
            &path,
            &run("r2", &[Outcome::Pass, Outcome::Pass, Outcome::Pass]),
        )
        .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        append(&path, &run("r3", &[Outcome::Xfail])).unwrap();
        let h = load(&path);
        assert_eq!(h.len(), 3);
        let c = &h[0].cells[0];
        assert_eq!((c.total, c.passed, c.skipped, c.bad), (3, 1, 1, 1));
        assert_eq!(c.median_checkpoint_ms, Some(200));
        let tr = trend(&h, "c", Some("r2"), 10);
        assert_eq!(
            tr.iter().map(|p| p.run_id.as_str()).collect::<Vec<_>>(),
            ["r1", "r2"]
        );
        let last = trend(&h, "c", None, 2);
        assert_eq!(last[1].run_id, "r3");
        assert!(trend(&h, "other", None, 5).is_empty());
        let svg = svg(&tr);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("r1: 1/3 passed, checkpoint 200 ms, restore 50 ms"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(load(&t.path().join("missing")).is_empty());
    }
}
