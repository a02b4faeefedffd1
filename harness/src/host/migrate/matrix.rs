//! Every pair of a set of cells (`crtest migrate --matrix`): the pairs in order, and the
//! from x to table of their verdicts.

use crate::model::outcome::Outcome;
use crate::results::run::CellReport;

/// Every ordered (source, target) pair of `n` cells, the same cell twice included (a move
/// between two guests of one cell: the baseline of its row and column).
pub fn pairs(n: usize) -> Vec<(usize, usize)> {
    (0..n).flat_map(|s| (0..n).map(move |t| (s, t))).collect()
}

/// One pair's entry of the table: `6/6` when every moved scenario passed, else the passes
/// and the first failure's class (`4/6 cpu-mismatch`); `-` when nothing moved.
pub fn entry(cell: &CellReport) -> String {
    let moved: Vec<_> = cell
        .scenarios
        .iter()
        .filter(|r| r.outcome != Outcome::Skip)
        .collect();
    if moved.is_empty() {
        return "-".into();
    }
    let good = moved.iter().filter(|r| !r.outcome.is_bad()).count();
    let first_bad = moved.iter().find(|r| r.outcome.is_bad());
    match first_bad {
        None => format!("{good}/{}", moved.len()),
        Some(r) => {
            let class = r
                .failure
                .as_ref()
                .and_then(|f| f.class.clone())
                .unwrap_or_else(|| r.outcome.as_str().to_string());
            format!("{good}/{} {class}", moved.len())
        }
    }
}

/// The from x to table: a row per source cell, a column per target cell (`labels`), each
/// pair's entry from `cells` (pair cells in [`pairs`] order).
pub fn table(labels: &[String], cells: &[CellReport]) -> String {
    let n = labels.len();
    let entries: Vec<String> = cells.iter().map(entry).collect();
    let width = |col: usize| {
        let mut w = labels[col].len();
        for s in 0..n {
            if let Some(e) = entries.get(s * n + col) {
                w = w.max(e.len());
            }
        }
        w
    };
    let first = labels.iter().map(String::len).max().unwrap_or(0).max(9);
    let mut out = format!("{:<first$}", "from \\ to");
    for (t, label) in labels.iter().enumerate() {
        out.push_str(&format!("  {:<w$}", label, w = width(t)));
    }
    out.push('\n');
    for (s, label) in labels.iter().enumerate() {
        out.push_str(&format!("{label:<first$}"));
        for t in 0..n {
            let e = entries.get(s * n + t).map_or("?", String::as_str);
            out.push_str(&format!("  {:<w$}", e, w = width(t)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Failure, ScenarioResult};

    fn cell(outcomes: &[(Outcome, Option<&str>)]) -> CellReport {
        let scenarios = outcomes
            .iter()
            .map(|(o, class)| {
                let mut r = ScenarioResult::without_steps("s", *o, Failure::default());
                r.failure = class.map(|c| Failure {
                    class: Some(c.into()),
                    ..Failure::default()
                });
                r
            })
            .collect();
        CellReport {
            scenarios,
            ..CellReport::default()
        }
    }

    #[test]
    fn every_pair_once_the_diagonal_included() {
        assert_eq!(pairs(2), [(0, 0), (0, 1), (1, 0), (1, 1)]);
        assert_eq!(pairs(3).len(), 9);
    }

    #[test]
    fn the_table_names_each_pair() {
        use Outcome::*;
        let cells = vec![
            cell(&[(Pass, None), (Pass, None)]),
            cell(&[(Pass, None), (Fail, Some("cpu-mismatch"))]),
            cell(&[(Skip, None)]),
            cell(&[(Pass, None), (Error, None), (Skip, None)]),
        ];
        let labels = vec!["6.1+max".to_string(), "6.1+Nehalem".to_string()];
        insta::assert_snapshot!(table(&labels, &cells), @r"
        from \ to    6.1+max  6.1+Nehalem     
        6.1+max      2/2      1/2 cpu-mismatch
        6.1+Nehalem  -        1/2 error       
        ");
    }
}
