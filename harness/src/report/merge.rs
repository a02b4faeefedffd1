//! `crtest merge DIR...`: shard runs (`crtest matrix --shard i/n` on several machines) made
//! into one run directory with run.json, junit.xml, report.html and summary.md, as if one
//! machine had run everything.
//!
//! Cells with the same id are joined: their scenarios put together (a scenario in two
//! inputs is an error: the shards overlap), boots added up. Their files go to the same
//! `cells/<id>/`: `console.log` is appended (as boots of one run are), `events-N.jsonl` and
//! `qemu-N.log` are renumbered after the boots already there, `scenarios/<name>/` are
//! disjoint, and any other file already present is kept under `<name>.<run-id>`.

use crate::results::run::{self as results, CellReport, MatrixCell, MatrixInfo, RunDir, RunReport};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Load(#[from] results::LoadError),
    #[error("scenario `{scenario}` of cell `{cell}` is in both {first} and {second}: the shards overlap")]
    Overlap {
        cell: String,
        scenario: String,
        first: String,
        second: String,
    },
    #[error(
        "{run}: cell `{cell}` has no directory of its own and the run has {cells} cells; \
         only matrix runs or single-cell runs can be merged"
    )]
    NoCellDir {
        run: String,
        cell: String,
        cells: usize,
    },
    #[error("{run}: cell `{cell}`: {why}")]
    BadCellPath {
        run: String,
        cell: String,
        why: String,
    },
    #[error("cannot copy {from} to {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Results(#[from] results::ResultsError),
}

impl MergeError {
    /// Whether the shards are at fault (unreadable, overlapping, malformed), not the disk.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, MergeError::Copy { .. } | MergeError::Results(_))
    }
}

/// Joins reports (pure: the files are copied by [`merge_into`]). The first input's run id
/// and time stand for the whole; the plan is the union of the inputs' plans.
pub fn merge_reports(inputs: &[RunReport]) -> Result<RunReport, MergeError> {
    let mut out = RunReport {
        format_version: results::FORMAT_VERSION,
        run_id: String::new(),
        started_at: inputs
            .iter()
            .map(|r| r.started_at.clone())
            .min()
            .unwrap_or_default(),
        finished_at: None,
        wall_ms: None,
        finished: inputs.iter().all(|r| r.finished),
        interrupted: inputs.iter().find_map(|r| r.interrupted.clone()),
        crtest_version: inputs
            .first()
            .map(|r| r.crtest_version.clone())
            .unwrap_or_default(),
        cells: Vec::new(),
        matrix: None,
    };
    let mut plan = MatrixInfo::default();
    let mut owner: Vec<(String, String, String)> = Vec::new(); // (cell, scenario, run)
    for r in inputs {
        plan.merged_from.push(r.run_id.clone());
        let m = r.matrix.clone().unwrap_or_default();
        if let Some(t) = shard_time(r) {
            plan.shard_times.push(t);
        }
        for (dst, src) in [
            (&mut plan.kernels, &m.kernels),
            (&mut plan.userlands, &m.userlands),
            (&mut plan.scenarios, &m.scenarios),
        ] {
            for x in src {
                if !dst.contains(x) {
                    dst.push(x.clone());
                }
            }
        }
        for cell in &r.cells {
            let mc = r.matrix_cell(&cell.id).cloned().unwrap_or(MatrixCell {
                id: cell.id.clone(),
                kernel: cell.kernel.release.clone(),
                userland: cell.userland.suite.clone(),
                dir: None,
                wall_ms: None,
            });
            for x in [
                (&mut plan.kernels, &mc.kernel),
                (&mut plan.userlands, &mc.userland),
            ] {
                if !x.0.contains(x.1) {
                    x.0.push(x.1.clone());
                }
            }
            let target_dir = format!("cells/{}", cell.id);
            let moved = rebase(cell.clone(), mc.dir.as_deref(), &target_dir);
            for s in &moved.scenarios {
                if let Some((_, _, first)) =
                    owner.iter().find(|(c, n, _)| *c == cell.id && *n == s.name)
                {
                    return Err(MergeError::Overlap {
                        cell: cell.id.clone(),
                        scenario: s.name.clone(),
                        first: first.clone(),
                        second: r.run_id.clone(),
                    });
                }
                owner.push((cell.id.clone(), s.name.clone(), r.run_id.clone()));
            }
            match out.cells.iter_mut().find(|c| c.id == cell.id) {
                Some(have) => join_cell(have, moved),
                None => {
                    out.cells.push(moved);
                    plan.cells.push(MatrixCell {
                        dir: Some(target_dir),
                        wall_ms: None,
                        ..mc
                    });
                }
            }
            if let Some(p) = plan.cells.iter_mut().find(|p| p.id == cell.id) {
                if let Some(w) = r.matrix_cell(&cell.id).and_then(|m| m.wall_ms) {
                    p.wall_ms = Some(p.wall_ms.unwrap_or(0) + w);
                }
            }
        }
    }
    // Cells in plan order: kernels outer, userlands inner, as a single run writes them.
    let order = |c: &MatrixCell| {
        (
            plan.kernels.iter().position(|k| *k == c.kernel),
            plan.userlands.iter().position(|u| *u == c.userland),
        )
    };
    plan.cells.sort_by_key(order);
    out.cells.sort_by_key(|c| {
        plan.cells
            .iter()
            .position(|p| p.id == c.id)
            .unwrap_or(usize::MAX)
    });
    for c in &mut out.cells {
        c.scenarios.sort_by(|a, b| a.name.cmp(&b.name));
    }
    out.matrix = Some(plan);
    Ok(out)
}

/// A shard's expected and actual time, when the run was one shard.
fn shard_time(r: &RunReport) -> Option<results::ShardTime> {
    let m = r.matrix.as_ref()?;
    let shard = m.shard.clone()?;
    let index: usize = shard.split_once('/')?.0.parse().ok()?;
    Some(results::ShardTime {
        expected_ms: m
            .split
            .as_ref()
            .and_then(|s| s.expected_ms.get(index.checked_sub(1)?).copied()),
        wall_ms: r.wall_ms,
        run_id: r.run_id.clone(),
        shard,
    })
}

/// What a merge of shards says of their split and their times: how balanced they were
/// (slowest / mean, actual and expected), and whether they were split alike.
pub fn balance_text(merged: &RunReport, inputs: &[RunReport]) -> String {
    let Some(m) = merged.matrix.as_ref() else {
        return String::new();
    };
    let mut out = String::new();
    let secs = |ms: u64| format!("{:.0} s", ms as f64 / 1000.0);
    for t in &m.shard_times {
        out += &format!(
            "shard {}: {} (expected {})\n",
            t.shard,
            t.wall_ms.map_or("?".into(), secs),
            t.expected_ms.map_or("-".into(), secs)
        );
    }
    let actual: Vec<u64> = m.shard_times.iter().filter_map(|t| t.wall_ms).collect();
    let expected: Vec<u64> = m.shard_times.iter().filter_map(|t| t.expected_ms).collect();
    let ratio = crate::report::durations::balance;
    if let Some(b) = ratio(&actual) {
        out += &format!("balance: slowest shard / mean = {b:.2}");
        if let Some(e) = ratio(&expected) {
            out += &format!(" (expected {e:.2})");
        }
        out.push('\n');
    }
    let mut splits: Vec<(String, String)> = inputs
        .iter()
        .filter_map(|r| r.matrix.as_ref())
        .filter_map(|m| {
            let s = m.split.as_ref()?;
            let n = m.shard.as_deref()?.split_once('/')?.1.to_string();
            let digest = s.digest.as_deref().unwrap_or("");
            Some((n, format!("by {} {digest}, -j {}", s.method, s.jobs)))
        })
        .collect();
    splits.sort();
    splits.dedup();
    if splits.len() > 1 {
        out += "warning: the shards were not split alike (counts, durations or -j differ); \
                pairs may be missing or twice:\n";
        for (n, how) in splits {
            out += &format!("  of {n}: {how}\n");
        }
    }
    out
}

/// Rewrites a cell's artifact paths from its old directory (relative to its run) to
/// `target` (relative to the merged run).
fn rebase(mut cell: CellReport, old_dir: Option<&str>, target: &str) -> CellReport {
    for s in &mut cell.scenarios {
        for a in s.paths_mut() {
            let inner = match old_dir {
                Some(d) => a
                    .strip_prefix(d)
                    .map(|r| r.trim_start_matches('/'))
                    .unwrap_or(a),
                None => a,
            };
            *a = format!("{target}/{inner}");
        }
    }
    cell
}

fn join_cell(have: &mut CellReport, more: CellReport) {
    have.scenarios.extend(more.scenarios);
    have.qemu.boots += more.qemu.boots;
    have.boot_ms = match (have.boot_ms, more.boot_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    have.prepare_ms = have.prepare_ms.max(more.prepare_ms);
    for n in more.notes {
        if !have.notes.contains(&n) {
            have.notes.push(n);
        }
    }
    if have.kernel.release == "?" {
        have.kernel = more.kernel;
        have.userland = more.userland;
    }
}

fn copy_err(from: &Path, to: &Path) -> impl FnOnce(std::io::Error) -> MergeError {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    move |source| MergeError::Copy { from, to, source }
}

/// The number N of `<prefix>N<suffix>` file names in `dir`, highest first.
fn highest_numbered(dir: &Path, prefix: &str, suffix: &str) -> u32 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Copies one input cell directory into the merged cell directory (see the module doc).
pub fn copy_cell_dir(from: &Path, to: &Path, run_id: &str) -> Result<(), MergeError> {
    std::fs::create_dir_all(to).map_err(copy_err(from, to))?;
    let offset = highest_numbered(to, "events-", ".jsonl");
    // Shard directories come from other machines: only plain files and folders are copied,
    // never through a symlink (DirEntry::file_type does not follow one).
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(copy_err(from, to))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_dir()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for src in entries {
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A single-cell run directory also holds the run's own files and other cells.
        if matches!(
            name.as_str(),
            "run.json" | "junit.xml" | "report.html" | "summary.md" | "cells" | "plan.json"
        ) {
            continue;
        }
        let numbered = [("events-", ".jsonl"), ("qemu-", ".log")]
            .iter()
            .find_map(|(p, s)| {
                let n: u32 = name.strip_prefix(p)?.strip_suffix(s)?.parse().ok()?;
                Some(format!("{p}{}{s}", n + offset))
            });
        let dst_name = numbered.unwrap_or_else(|| name.clone());
        let dst = to.join(&dst_name);
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else if name == "console.log" && dst.exists() {
            let text = std::fs::read(&src).map_err(copy_err(&src, &dst))?;
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&dst)
                .and_then(|mut f| f.write_all(&text))
                .map_err(copy_err(&src, &dst))?;
        } else if dst.exists() {
            let alt = to.join(format!("{dst_name}.{run_id}"));
            std::fs::copy(&src, &alt).map_err(copy_err(&src, &alt))?;
        } else {
            std::fs::copy(&src, &dst).map_err(copy_err(&src, &dst))?;
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), MergeError> {
    std::fs::create_dir_all(to).map_err(copy_err(from, to))?;
    for e in std::fs::read_dir(from)
        .map_err(copy_err(from, to))?
        .flatten()
    {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().map_err(copy_err(&src, &dst))?;
        if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ft.is_file() && !dst.exists() {
            std::fs::copy(&src, &dst).map_err(copy_err(&src, &dst))?;
        }
    }
    Ok(())
}

/// Loads the inputs, merges them into a new run directory under `results_root` and writes
/// its views. Returns the run directory.
pub fn merge_into(inputs: &[PathBuf], results_root: &Path) -> Result<RunDir, MergeError> {
    let mut loaded = Vec::new();
    for p in inputs {
        loaded.push(results::load_run(p)?);
    }
    let reports: Vec<RunReport> = loaded.iter().map(|(_, r)| r.clone()).collect();
    // Errors name the shard's directory, not only its run id (shards of one run share it).
    let named = |dir: &Path, id: &str| format!("{} (run {id})", dir.display());
    let merged = merge_reports(&reports).map_err(|e| match e {
        MergeError::Overlap {
            cell,
            scenario,
            first,
            second,
        } => {
            let by_id = |id: &str| {
                loaded
                    .iter()
                    .find(|(_, r)| r.run_id == id)
                    .map_or(id.to_string(), |(d, _)| named(d, id))
            };
            MergeError::Overlap {
                cell,
                scenario,
                first: by_id(&first),
                second: by_id(&second),
            }
        }
        e => e,
    })?;
    for (dir, r) in &loaded {
        for c in &r.cells {
            // Shards come from other machines: a cell's id and folder name paths here.
            let bad = |why: String| MergeError::BadCellPath {
                run: named(dir, &r.run_id),
                cell: crate::report::markup::shown(&c.id),
                why,
            };
            let plain = Path::new(&c.id).components().count() == 1
                && crate::model::confine::lexical(Path::new(&c.id)).is_ok()
                && c.id != ".";
            if !plain {
                return Err(bad("a cell id must be a plain name".into()));
            }
            if let Some(d) = r.matrix_cell(&c.id).and_then(|m| m.dir.as_ref()) {
                crate::model::confine::lexical(Path::new(d)).map_err(|e| bad(e.to_string()))?;
            }
            if r.matrix_cell(&c.id).and_then(|m| m.dir.as_ref()).is_none() && r.cells.len() > 1 {
                return Err(MergeError::NoCellDir {
                    run: named(dir, &r.run_id),
                    cell: c.id.clone(),
                    cells: r.cells.len(),
                });
            }
        }
    }
    let mut run = RunDir::create(results_root)?;
    for (dir, r) in &loaded {
        for c in &r.cells {
            let from = match r.matrix_cell(&c.id).and_then(|m| m.dir.clone()) {
                Some(d) => dir.join(d),
                None => dir.clone(),
            };
            copy_cell_dir(&from, &run.dir.join("cells").join(&c.id), &r.run_id)?;
        }
    }
    let run_id = run.report.run_id.clone();
    // Each merged cell directory gets its own run.json, as a matrix run's cells have.
    for cell in &merged.cells {
        let dir = run.dir.join("cells").join(&cell.id);
        let prefix = format!("cells/{}/", cell.id);
        let mut own = RunDir::create_at(&dir, &run_id)?;
        let mut c = cell.clone();
        for s in &mut c.scenarios {
            for a in s.paths_mut() {
                *a = a.strip_prefix(&prefix).unwrap_or(a).to_string();
            }
        }
        own.report.started_at.clone_from(&merged.started_at);
        own.report.cells.push(c);
        crate::report::views::finish(&mut own, None)?;
    }
    run.report = RunReport { run_id, ..merged };
    let finished = run.report.finished;
    crate::report::views::finish(&mut run, None)?;
    // A merge's own time is not the run's: the shards' times are under `shard_times`.
    run.report.wall_ms = None;
    run.report.finished = finished;
    run.save()?;
    let durations = run.dir.join(crate::report::durations::FILE);
    let text = crate::report::durations::Durations::of_report(&run.report).to_json();
    std::fs::write(&durations, text).map_err(|source| {
        MergeError::Results(results::ResultsError::Write {
            path: durations.clone(),
            source,
        })
    })?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::fixtures;

    /// The fixture split in two shards the way `--shard 1/2` and `2/2` would.
    fn shards() -> (RunReport, RunReport) {
        let full = fixtures::matrix_report();
        let mut a = full.clone();
        let mut b = full.clone();
        a.run_id = "20261126-200000-0a0a".into();
        b.run_id = "20261126-200001-0b0b".into();
        // a: first two cells, and counterloop of the third; b: the rest.
        a.cells.truncate(3);
        a.cells[2].scenarios.truncate(1);
        b.cells.drain(..2);
        b.cells[0].scenarios.remove(0);
        for r in [&mut a, &mut b] {
            let keep: Vec<String> = r.cells.iter().map(|c| c.id.clone()).collect();
            let m = r.matrix.as_mut().unwrap();
            m.cells.retain(|c| keep.contains(&c.id));
            m.shard = Some("x/2".into());
        }
        (a, b)
    }

    #[test]
    fn shard_times_and_a_split_that_differs_are_reported() {
        let (mut a, mut b) = shards();
        for (r, i, jobs) in [(&mut a, 1, 2), (&mut b, 2, 4)] {
            let m = r.matrix.as_mut().unwrap();
            m.shard = Some(format!("{i}/2"));
            m.split = Some(results::SplitInfo {
                method: "durations".into(),
                digest: Some("d1".into()),
                jobs,
                expected_ms: vec![100_000, 100_000],
                ..Default::default()
            });
            r.wall_ms = Some(90_000 + 20_000 * (i as u64 - 1));
        }
        let merged = merge_reports(&[a.clone(), b.clone()]).unwrap();
        let times = &merged.matrix.as_ref().unwrap().shard_times;
        assert_eq!(times.len(), 2);
        assert_eq!(times[1].expected_ms, Some(100_000));
        assert_eq!(times[1].wall_ms, Some(110_000));
        let text = balance_text(&merged, &[a, b]);
        assert!(text.contains("shard 2/2: 110 s (expected 100 s)"), "{text}");
        assert!(
            text.contains("balance: slowest shard / mean = 1.10 (expected 1.00)"),
            "{text}"
        );
        assert!(text.contains("-j 4"), "{text}");
        assert!(text.contains("not split alike"), "{text}");
    }

    #[test]
    fn shards_merge_back_into_the_whole() {
        let (a, b) = shards();
        let m = merge_reports(&[a.clone(), b.clone()]).unwrap();
        let full = fixtures::matrix_report();
        assert_eq!(m.cells.len(), full.cells.len());
        for (got, want) in m.cells.iter().zip(&full.cells) {
            assert_eq!(got.id, want.id);
            let names = |c: &CellReport| {
                c.scenarios
                    .iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(got), names(want));
        }
        assert_eq!(m.cells[2].qemu.boots, 2, "boots add up");
        let plan = m.matrix.unwrap();
        assert_eq!(plan.merged_from, [a.run_id.clone(), b.run_id.clone()]);
        assert_eq!(plan.shard, None);
        assert_eq!(plan.cells.len(), 4);
        assert_eq!(
            plan.cells[2].dir.as_deref(),
            Some("cells/kernel-sid+userland-bookworm")
        );
        let err = merge_reports(&[a.clone(), a]).unwrap_err().to_string();
        assert!(err.contains("the shards overlap"), "{err}");
    }

    #[test]
    fn merged_run_directory_holds_every_cell_file() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = shards();
        let mut inputs = Vec::new();
        for (r, boots) in [(&a, 1), (&b, 1)] {
            let dir = t.path().join(&r.run_id);
            for c in &r.cells {
                let cd = dir.join("cells").join(&c.id);
                std::fs::create_dir_all(cd.join("scenarios").join(&c.scenarios[0].name)).unwrap();
                std::fs::write(cd.join("console.log"), format!("console of {}\n", r.run_id))
                    .unwrap();
                for n in 1..=boots {
                    std::fs::write(cd.join(format!("events-{n}.jsonl")), "{}\n").unwrap();
                }
                std::fs::write(cd.join("qemu.cmdline"), "qemu\n").unwrap();
            }
            std::fs::write(dir.join("run.json"), serde_json::to_string(r).unwrap()).unwrap();
            inputs.push(dir);
        }
        let root = t.path().join("merged");
        let run = merge_into(&inputs, &root).unwrap();
        let sid = run.dir.join("cells/kernel-sid+userland-bookworm");
        let console = std::fs::read_to_string(sid.join("console.log")).unwrap();
        assert_eq!(console.lines().count(), 2, "{console}");
        assert!(sid.join("events-1.jsonl").is_file() && sid.join("events-2.jsonl").is_file());
        assert!(sid.join(format!("qemu.cmdline.{}", b.run_id)).is_file());
        assert!(
            sid.join("scenarios/counterloop").is_dir() && sid.join("scenarios/fileio1").is_dir()
        );
        let (_, back) = results::load_run(&root).unwrap();
        assert_eq!(back.cells.len(), 4);
        assert_eq!(
            back.cells[2].scenarios[0].artifacts,
            ["cells/kernel-sid+userland-bookworm/scenarios/counterloop/dump-1.log"]
        );
        assert!(run.dir.join("junit.xml").is_file());
        let (_, own) = results::load_run(&sid).unwrap();
        assert_eq!(own.cells.len(), 1);
        assert_eq!(
            own.cells[0].scenarios[0].artifacts,
            ["scenarios/counterloop/dump-1.log"]
        );
        let again = merge_into(&inputs, &t.path().join("merged2")).unwrap();
        crate::report::views::write_views(&again.dir, &again.report).unwrap();
        assert!(again.any_bad(), "the fixture has failures");
        let latest = t.path().join("merged2/latest");
        assert!(latest.join("report.html").is_file() && latest.join("summary.md").is_file());
    }

    /// A shard directory from another machine may hold symlinks: none is followed or
    /// copied into the merged run.
    #[test]
    fn symlinks_in_shards_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let (a, _) = shards();
        let dir = t.path().join("a");
        for c in &a.cells {
            std::fs::create_dir_all(dir.join("cells").join(&c.id)).unwrap();
        }
        let cd = dir.join("cells").join(&a.cells[0].id);
        std::fs::create_dir_all(cd.join("guest/scenarios/x")).unwrap();
        std::fs::write(cd.join("console.log"), "c\n").unwrap();
        std::os::unix::fs::symlink("/etc", cd.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", cd.join("guest/scenarios/x/dump.log")).unwrap();
        std::fs::write(dir.join("run.json"), serde_json::to_string(&a).unwrap()).unwrap();
        let run = merge_into(&[dir], &t.path().join("merged")).unwrap();
        let out = run.dir.join("cells").join(&a.cells[0].id);
        assert!(out.join("console.log").is_file());
        assert!(std::fs::symlink_metadata(out.join("etc")).is_err());
        assert!(std::fs::symlink_metadata(out.join("guest/scenarios/x/dump.log")).is_err());
    }

    #[test]
    fn cell_ids_that_are_paths_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let (mut a, _) = shards();
        a.cells[0].id = "../../../etc".into();
        let dir = t.path().join("a");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.json"), serde_json::to_string(&a).unwrap()).unwrap();
        let Err(e) = merge_into(&[dir], &t.path().join("merged")) else {
            panic!("merged a cell id that is a path");
        };
        let e = e.to_string();
        assert!(e.contains("a cell id must be a plain name"), "{e}");
    }

    /// Seeded mutations of a shard's run.json (every truncation, then random byte changes):
    /// each merge is a result or an error naming the file, never a panic.
    #[test]
    fn mutated_shard_reports_never_panic() {
        use crate::model::outcome::Outcome;
        let t = tempfile::tempdir().unwrap();
        let (a, b) = shards();
        let good = t.path().join("b");
        let bad = t.path().join("a");
        for (dir, r) in [(&good, &b), (&bad, &a)] {
            for c in &r.cells {
                std::fs::create_dir_all(dir.join("cells").join(&c.id)).unwrap();
            }
        }
        std::fs::write(good.join("run.json"), serde_json::to_string(&b).unwrap()).unwrap();
        let text = serde_json::to_string_pretty(&a).unwrap().into_bytes();
        let mut next = crate::results::fixtures::xorshift(0x6d65_7267);
        let alphabet = b"{}[]\",:0123456789-.aez\\\xff\n ";
        let (mut merged, mut refused) = (0, 0);
        let mut attempt = |bytes: &[u8], n: usize| {
            std::fs::write(bad.join("run.json"), bytes).unwrap();
            let root = t.path().join(format!("out-{n}"));
            match merge_into(&[bad.clone(), good.clone()], &root) {
                // A merge that went through wrote a run that reads back whole, with the
                // good shard's cells in it.
                Ok(run) => {
                    merged += 1;
                    let (_, back) = results::load_run(&run.dir)
                        .unwrap_or_else(|e| panic!("input {n}: the merged run does not load: {e}"));
                    let merged: Vec<(&str, &str, Outcome)> = back
                        .cells
                        .iter()
                        .flat_map(|c| {
                            let id = c.id.as_str();
                            c.scenarios
                                .iter()
                                .map(move |s| (id, s.name.as_str(), s.outcome))
                        })
                        .collect();
                    for c in &b.cells {
                        for sc in &c.scenarios {
                            assert!(
                                merged.contains(&(c.id.as_str(), sc.name.as_str(), sc.outcome)),
                                "input {n}: {} of the good shard's cell {} is not in the merge",
                                sc.name,
                                c.id
                            );
                        }
                    }
                }
                // A refusal names the shard's file it could not take.
                Err(e) => {
                    refused += 1;
                    let m = e.to_string();
                    assert!(
                        m.contains(&bad.display().to_string()),
                        "input {n}: the refusal does not name the bad shard: {m}"
                    );
                }
            }
            let _ = std::fs::remove_dir_all(&root);
        };
        let mut n = 0;
        for cut in (0..text.len()).step_by(7) {
            attempt(&text[..cut], n);
            n += 1;
        }
        for _ in 0..1500 {
            let mut m = text.clone();
            for _ in 0..1 + next() % 6 {
                let at = next() % m.len();
                m[at] = alphabet[next() % alphabet.len()];
            }
            attempt(&m, n);
            n += 1;
        }
        eprintln!("merge mutations: {n} inputs, {merged} merged, {refused} refused");
        // Both paths were taken: the mutations reach the parser's checks and get past them.
        assert!(refused > 0 && merged > 0);
    }
}
