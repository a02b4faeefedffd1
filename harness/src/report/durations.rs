//! What each (cell, scenario) pair took when it last ran: the input that deals work to shards
//! and guests by time.
//!
//! Read from a run (its run.json), from a results root (its `history.jsonl`, every run in
//! order, the newest measurement of a pair winning), or from a `durations.json` that a CI
//! job carries from night to night (`crtest merge` writes one beside the merged run.json):
//!
//! ```json
//! { "format": "crtest-durations-v1",
//!   "cells": { "kernel-trixie+userland-trixie": { "overhead_ms": 41000,
//!              "scenarios": { "fileio1": 5200, "zdtm/static/env00@ns": 2100 } } } }
//! ```
//!
//! Cells are named by their stable key ([`RunReport::cell_key`]: the kernel and userland
//! names), so a new kernel release of the same suite keeps its durations.

use crate::report::history::{self, median};
use crate::results::run::{CellReport, RunReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The `format` of a durations file.
pub const FORMAT: &str = "crtest-durations-v1";

/// The file `crtest merge` writes beside a merged run.json.
pub const FILE: &str = "durations.json";

/// A cell's overhead when no cell's was measured: a cached preparation and a first boot
/// under TCG, about what this machine measures.
pub const DEFAULT_OVERHEAD_MS: u64 = 30_000;

/// Inputs larger than this are refused (a nightly's durations are a few hundred KiB).
const MAX_BYTES: u64 = 64 << 20;

/// Measured durations, by cell key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    pub format: String,
    pub cells: BTreeMap<String, CellDurations>,
}

/// One cell's measurements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellDurations {
    /// What the cell costs besides its scenarios on a machine that runs it: preparing its
    /// images and booting or resuming its first guest, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_ms: Option<u64>,
    /// Scenario name -> its duration, ms.
    #[serde(default)]
    pub scenarios: BTreeMap<String, u64>,
}

/// Why durations could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DurationsError {
    #[error("--durations {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--durations {}: larger than {} MiB: not a durations file", path.display(), MAX_BYTES >> 20)]
    TooLarge { path: PathBuf },
    #[error(
        "--durations {}: neither a `{FORMAT}` file, a run.json nor a results history: {why}",
        path.display()
    )]
    Parse { path: PathBuf, why: String },
}

/// Where an estimate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// This pair's own last duration.
    Measured,
    /// The scenario's median duration in the other cells that ran it.
    OtherCells,
    /// Nothing known of the scenario: the median of every known pair (a count).
    Typical,
}

/// The durations this repository ships (`harness/data/durations.json`): the default
/// catalog and matrices as measured on a 2-core TCG machine, what a machine with no history
/// of its own deals and splits by (its own measurements replace them pair by pair).
const REFERENCE: &str = include_str!("../../data/durations.json");

impl Durations {
    /// The repository's reference durations, with `local` (this machine's) over them.
    pub fn over_reference(local: Durations) -> Durations {
        let mut d: Durations =
            serde_json::from_str(REFERENCE).unwrap_or_else(|_| Durations::empty());
        d.absorb(local);
        d
    }

    fn empty() -> Durations {
        Durations {
            format: FORMAT.into(),
            cells: BTreeMap::new(),
        }
    }

    /// Whether nothing at all was measured.
    pub fn is_empty(&self) -> bool {
        self.cells.values().all(|c| c.scenarios.is_empty())
    }

    /// The number of measured pairs.
    pub fn pairs(&self) -> usize {
        self.cells.values().map(|c| c.scenarios.len()).sum()
    }

    /// The durations of a run's cells (cells under their stable keys).
    pub fn of_report(report: &RunReport) -> Durations {
        let mut d = Durations::empty();
        for cell in &report.cells {
            let wall = report.matrix_cell(&cell.id).and_then(|m| m.wall_ms);
            d.cells
                .insert(report.cell_key(cell), cell_durations(cell, wall));
        }
        d
    }

    /// Adds `newer`'s measurements, which replace those of the same pairs.
    pub fn absorb(&mut self, newer: Durations) {
        for (key, cell) in newer.cells {
            let mine = self.cells.entry(key).or_default();
            if cell.overhead_ms.is_some() {
                mine.overhead_ms = cell.overhead_ms;
            }
            mine.scenarios.extend(cell.scenarios);
        }
    }

    /// The expected duration of `scenario` on the cell keyed `cell`, and what it rests on;
    /// `None` when nothing at all was measured.
    pub fn estimate(&self, cell: &str, scenario: &str) -> Option<(u64, Basis)> {
        if let Some(ms) = self.cells.get(cell).and_then(|c| c.scenarios.get(scenario)) {
            return Some((*ms, Basis::Measured));
        }
        let others: Vec<u64> = self
            .cells
            .values()
            .filter_map(|c| c.scenarios.get(scenario).copied())
            .collect();
        if let Some(ms) = median(others) {
            return Some((ms, Basis::OtherCells));
        }
        let all: Vec<u64> = self
            .cells
            .values()
            .flat_map(|c| c.scenarios.values().copied())
            .collect();
        median(all).map(|ms| (ms, Basis::Typical))
    }

    /// What a cell costs besides its scenarios: its own, else the median of the cells',
    /// else [`DEFAULT_OVERHEAD_MS`].
    pub fn overhead(&self, cell: &str) -> u64 {
        self.cells
            .get(cell)
            .and_then(|c| c.overhead_ms)
            .or_else(|| median(self.cells.values().filter_map(|c| c.overhead_ms).collect()))
            .unwrap_or(DEFAULT_OVERHEAD_MS)
    }

    /// A digest of the contents (FNV-1a over the canonical JSON), so shards can tell
    /// whether they were split from the same durations.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).expect("durations serialise");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("durations serialise") + "\n"
    }

    /// Reads durations from `path`: a durations file, a run.json or a run directory, or a
    /// results root (its history, or the run its `latest` names when it has none).
    pub fn load(path: &Path) -> Result<Durations, DurationsError> {
        if path.is_dir() {
            let history = path.join(history::FILE);
            if history.is_file() {
                return Durations::load(&history);
            }
            for file in [path.join(FILE), path.join("run.json")] {
                if file.is_file() {
                    return Durations::load(&file);
                }
            }
            let latest = path.join("latest");
            if latest.is_dir() {
                return Durations::load(&latest);
            }
            return Err(DurationsError::Parse {
                path: path.to_path_buf(),
                why: "a directory with no history.jsonl, durations.json or run.json".into(),
            });
        }
        let text = read_bounded(path)?;
        parse(&text).map_err(|why| DurationsError::Parse {
            path: path.to_path_buf(),
            why,
        })
    }

    /// The durations of a results root's history (empty when it has none).
    pub fn of_history(root: &Path) -> Durations {
        let path = root.join(history::FILE);
        match read_bounded(&path) {
            Ok(text) => parse_history(&text).unwrap_or_else(|_| Durations::empty()),
            Err(_) => Durations::empty(),
        }
    }
}

/// The durations of one cell report (`wall_ms`: the cell's whole time, when known).
pub fn cell_durations(cell: &CellReport, wall_ms: Option<u64>) -> CellDurations {
    let scenarios: BTreeMap<String, u64> = cell
        .scenarios
        .iter()
        .map(|s| (s.name.clone(), s.duration_ms))
        .collect();
    let sum: u64 = scenarios.values().sum();
    let overhead = match wall_ms {
        Some(w) if w >= sum => Some(w - sum),
        _ if cell.scenarios.is_empty() => None,
        _ => Some(cell.prepare_ms + cell.resume_ms.or(cell.boot_ms).unwrap_or(0)),
    };
    CellDurations {
        overhead_ms: overhead,
        scenarios,
    }
}

/// The slowest of some times over their mean, 1.0 being even (`None` when there are none or
/// all are 0): how balanced shards or guests were, expected or measured.
pub fn balance(times: &[u64]) -> Option<f64> {
    let max = *times.iter().max()?;
    let mean = times.iter().sum::<u64>() as f64 / times.len() as f64;
    (mean > 0.0).then(|| max as f64 / mean)
}

fn read_bounded(path: &Path) -> Result<String, DurationsError> {
    let read = |source| DurationsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(DurationsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

/// Parses a durations file, a run.json or a history (JSON lines).
fn parse(text: &str) -> Result<Durations, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.get("format").and_then(|f| f.as_str()) == Some(FORMAT) => {
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
        Ok(v) if v.get("format_version").is_some() && v.get("cells").is_some() => {
            let report: RunReport = serde_json::from_value(v).map_err(|e| e.to_string())?;
            Ok(Durations::of_report(&report))
        }
        // A history of one line.
        Ok(v) if v.get("run_id").is_some() && v.get("cells").is_some() => parse_history(text),
        Ok(v) if v.get("format").is_some() => Err(format!(
            "format {} (this crtest reads {FORMAT})",
            v["format"]
        )),
        Ok(_) => Err("a JSON document of another kind".into()),
        Err(e) if text.lines().count() > 1 => parse_history(text).map_err(|_| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The durations of a history's runs, older first, so the newest measurement wins.
fn parse_history(text: &str) -> Result<Durations, String> {
    let mut d = Durations::empty();
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: history::Entry = serde_json::from_str(line).map_err(|e| e.to_string())?;
        lines += 1;
        let mut newer = Durations::empty();
        for c in entry.cells {
            newer.cells.insert(
                c.key,
                CellDurations {
                    overhead_ms: c.overhead_ms,
                    scenarios: c.durations_ms,
                },
            );
        }
        d.absorb(newer);
    }
    if lines == 0 {
        return Err("an empty history".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures;

    #[test]
    fn the_reference_parses_and_local_measurements_win() {
        let reference = Durations::over_reference(Durations::empty());
        assert!(reference.pairs() > 100, "{}", reference.pairs());
        let (cell, name) = {
            let (k, c) = reference.cells.iter().next().unwrap();
            (k.clone(), c.scenarios.keys().next().unwrap().clone())
        };
        let mut local = Durations::empty();
        local
            .cells
            .entry(cell.clone())
            .or_default()
            .scenarios
            .insert(name.clone(), 1);
        let both = Durations::over_reference(local);
        assert_eq!(both.estimate(&cell, &name), Some((1, Basis::Measured)));
        assert_eq!(both.pairs(), reference.pairs());
    }

    #[test]
    fn estimates_say_what_they_rest_on() {
        let d = Durations::of_report(&fixtures::matrix_report());
        let (cell, name) = {
            let (k, c) = d.cells.iter().next().unwrap();
            (k.clone(), c.scenarios.keys().next().unwrap().clone())
        };
        assert_eq!(d.estimate(&cell, &name).unwrap().1, Basis::Measured);
        assert_eq!(
            d.estimate("kernel-x+userland-y", &name).unwrap().1,
            Basis::OtherCells
        );
        assert_eq!(d.estimate(&cell, "never-ran").unwrap().1, Basis::Typical);
        assert_eq!(Durations::default().estimate(&cell, &name), None);
        assert_eq!(Durations::default().overhead("x"), DEFAULT_OVERHEAD_MS);
        assert_eq!(d.digest(), d.clone().digest());
    }

    #[test]
    fn reads_a_durations_file_a_run_a_history_and_a_results_root() {
        let t = tempfile::tempdir().unwrap();
        let report = fixtures::matrix_report();
        let want = Durations::of_report(&report);
        assert!(!want.is_empty());
        // durations.json, as merge writes it
        let file = t.path().join(FILE);
        std::fs::write(&file, want.to_json()).unwrap();
        assert_eq!(Durations::load(&file).unwrap(), want);
        // a run directory
        let run = t.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(
            run.join("run.json"),
            serde_json::to_string(&report).unwrap(),
        )
        .unwrap();
        assert_eq!(Durations::load(&run).unwrap(), want);
        // a results root: its history, the newest line winning
        let root = t.path().join("results");
        std::fs::create_dir(&root).unwrap();
        let history = root.join(history::FILE);
        let mut older = report.clone();
        for s in older.cells.iter_mut().flat_map(|c| c.scenarios.iter_mut()) {
            s.duration_ms += 99_999;
        }
        history::append(&history, &older).unwrap();
        assert_eq!(
            Durations::load(&history).unwrap().pairs(),
            want.pairs(),
            "one line"
        );
        history::append(&history, &report).unwrap();
        let read = Durations::load(&root).unwrap();
        assert_eq!(
            read.cells.keys().collect::<Vec<_>>(),
            want.cells.keys().collect::<Vec<_>>()
        );
        for (k, c) in &want.cells {
            assert_eq!(read.cells[k].scenarios, c.scenarios, "{k}");
        }
        assert_eq!(Durations::of_history(&root).pairs(), want.pairs());
        assert!(Durations::of_history(t.path()).is_empty());
    }

    #[test]
    fn what_is_not_durations_is_refused_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        let cases = [
            (
                "{\"format\": \"crtest-durations-v9\"}",
                "crtest-durations-v9",
            ),
            ("[1, 2]", "another kind"),
            ("not json", "expected"),
            ("{\"a\": 1}\n{\"b\": 2}\n", "trailing characters"),
        ];
        for (text, want) in cases {
            let p = t.path().join("d.json");
            std::fs::write(&p, text).unwrap();
            let e = Durations::load(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = Durations::load(&t.path().join("missing")).unwrap_err();
        assert!(matches!(e, DurationsError::Read { .. }), "{e}");
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(Durations::load(&empty).is_err());
    }
}
