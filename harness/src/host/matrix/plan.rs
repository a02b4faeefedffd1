//! The plan of a matrix: its cells (kernels x userlands x criu, a profile's parts and
//! migration pairs), how they split into shards by time, and what the split records.

use super::{MatrixError, MatrixOptions};
use crate::host::cell_choice::{self, CriuName, KernelName};
use crate::host::shard::{Method, Split};
use crate::host::vm_run::CriuChoice;
use crate::model::scenario::Scenario;
use crate::report::durations::Durations;
use crate::results::run::{self as results, SplitInfo};

/// One cell to run.
#[derive(Debug, Clone)]
pub struct PlannedCell {
    pub id: String,
    pub kernel: KernelName,
    /// The kernel as named in the report (suite, or release of a path kernel).
    pub kernel_label: String,
    pub userland: String,
    /// The userland's column in the report: the suite, `+criu-<revision>` for a tree's criu.
    pub column: String,
    pub criu: CriuChoice,
    pub scenarios: Vec<Scenario>,
    /// QEMU's CPU model of its guests (`None`: the default).
    pub cpu: Option<String>,
    /// For a migration pair: where its scenarios start and how they move; this cell is the
    /// target (`crtest migrate`).
    pub moved_from: Option<PlannedSource>,
}

/// The source of a migration pair of a matrix (a profile's `[[migrate]]`).
#[derive(Debug, Clone)]
pub struct PlannedSource {
    pub kernel: KernelName,
    pub userland: String,
    pub criu: CriuChoice,
    pub cpu: Option<String>,
    pub mode: crate::model::migration::MoveMode,
    /// The source side's name (its kernel, userland, criu and CPU), for the plan.
    pub label: String,
}

/// A criu of the matrix: its name and its label in columns (`None`: the package).
pub type PlannedCriu = (CriuName, Option<String>);

/// The cells of kernels x userlands x criu (kernels outer), each with `scenarios`. A criu
/// named by a suite pairs only with that userland.
pub fn plan(
    kernels: &[KernelName],
    userlands: &[String],
    criu: &[PlannedCriu],
    scenarios: &[Scenario],
) -> Vec<PlannedCell> {
    let mut cells = Vec::new();
    for k in kernels {
        let label = cell_choice::kernel_label(k);
        for u in userlands {
            for (name, criu_label) in criu {
                let Some(choice) = cell_choice::criu_for(name, u) else {
                    continue;
                };
                let column = column(u, criu_label.as_deref());
                if cells
                    .iter()
                    .any(|c: &PlannedCell| c.kernel_label == label && c.column == column)
                {
                    continue;
                }
                cells.push(PlannedCell {
                    id: results::cell_id(&label, &column),
                    kernel: k.clone(),
                    kernel_label: label.clone(),
                    userland: u.clone(),
                    column,
                    criu: choice,
                    scenarios: scenarios.to_vec(),
                    cpu: None,
                    moved_from: None,
                });
            }
        }
    }
    cells
}

/// Adds `more` cells to `cells`: a cell already there gets the scenarios it lacks (a
/// profile's parts may share cells).
pub fn union(cells: &mut Vec<PlannedCell>, more: Vec<PlannedCell>) {
    for m in more {
        match cells.iter_mut().find(|c| c.id == m.id) {
            Some(c) => {
                for s in m.scenarios {
                    if !c.scenarios.iter().any(|x| x.name == s.name) {
                        c.scenarios.push(s);
                    }
                }
            }
            None => cells.push(m),
        }
    }
}

/// The pairs of `cells` as the shard splitter takes them: each cell's key and scenarios.
fn pairs_of(cells: &[PlannedCell]) -> Vec<(String, Vec<String>)> {
    cells
        .iter()
        .map(|c| {
            let names = c.scenarios.iter().map(|s| s.name.clone()).collect();
            (c.id.clone(), names)
        })
        .collect()
}

/// Every shard's part of `cells` when split `count` ways for machines running `jobs`
/// guests at once.
pub fn split(cells: &[PlannedCell], count: usize, jobs: usize, durations: &Durations) -> Split {
    crate::host::shard::split(&pairs_of(cells), count, jobs, durations)
}

/// `shard`'s part of `cells` (each cell keeping its scenarios of that shard, in plan order).
pub fn cut(cells: &[PlannedCell], part: &crate::host::shard::Part) -> Vec<PlannedCell> {
    part.cells
        .iter()
        .map(|(i, names)| {
            let mut c = cells[*i].clone();
            c.scenarios.retain(|s| names.contains(&s.name));
            c
        })
        .collect()
}

/// The durations a split goes by: `--durations PATH...`, else the results root's history;
/// with where they came from.
pub fn durations(opts: &MatrixOptions) -> Result<(Durations, String), MatrixError> {
    match opts.durations.as_slice() {
        [] => Ok((
            Durations::over_reference(Durations::of_history(&opts.results)),
            opts.results
                .join(crate::report::history::FILE)
                .display()
                .to_string(),
        )),
        paths => {
            let mut d = Durations::default();
            for p in paths {
                d.absorb(Durations::load(p)?);
            }
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            Ok((Durations::over_reference(d), names.join(", ")))
        }
    }
}

/// `matrix --plan N`: each shard's cells, pairs and expected time, and the balance.
pub fn plan_text(cells: &[PlannedCell], split: &Split, source: &str, jobs: usize) -> String {
    use std::fmt::Write;
    let secs = |ms: u64| ms as f64 / 1000.0;
    let pairs: usize = cells.iter().map(|c| c.scenarios.len()).sum();
    let mut out = format!(
        "{} cells, {pairs} pairs, split {} ways by {} ({jobs} guest(s) at once per shard)\n",
        cells.len(),
        split.shards.len(),
        match split.method {
            Method::Durations => format!("the durations of {source}"),
            Method::Counts => format!("counts (nothing measured in {source})"),
        }
    );
    if split.method == Method::Durations {
        let _ = writeln!(
            out,
            "pairs: {} measured, {} from other cells, {} unknown (counted as typical)",
            split.measured, split.from_other_cells, split.typical
        );
    }
    for (i, part) in split.shards.iter().enumerate() {
        let n: usize = part.cells.iter().map(|(_, s)| s.len()).sum();
        let _ = write!(
            out,
            "shard {}/{}: {} cell(s), {n} pairs",
            i + 1,
            split.shards.len(),
            part.cells.len()
        );
        if let Some(ms) = part.expected_ms {
            let workers: Vec<String> = part
                .workers_ms
                .iter()
                .map(|w| format!("{:.0}", secs(*w)))
                .collect();
            let _ = write!(
                out,
                ", expected {:.0} s (guests {} s)",
                secs(ms),
                workers.join(", ")
            );
        }
        out.push('\n');
        for (c, names) in &part.cells {
            let _ = writeln!(out, "  {} ({} pairs)", cells[*c].id, names.len());
        }
    }
    if let Some(b) = split.balance() {
        let times: Vec<u64> = split.shards.iter().filter_map(|p| p.expected_ms).collect();
        let total: u64 = split.shards.iter().flat_map(|p| p.workers_ms.iter()).sum();
        let _ = writeln!(
            out,
            "balance: slowest {:.0} s / mean {:.0} s = {b:.3}; all shards' guests together {:.0} s",
            secs(*times.iter().max().unwrap_or(&0)),
            secs(times.iter().sum::<u64>()) / times.len() as f64,
            secs(total)
        );
    }
    out
}

/// What the split of a shard's run records.
pub fn split_info(split: &Split, durations: &Durations, source: String, jobs: usize) -> SplitInfo {
    let by_time = split.method == Method::Durations;
    SplitInfo {
        method: match split.method {
            Method::Durations => "durations",
            Method::Counts => "counts",
        }
        .into(),
        durations: by_time.then_some(source),
        digest: by_time.then(|| durations.digest()),
        jobs,
        expected_ms: split.shards.iter().filter_map(|p| p.expected_ms).collect(),
        measured: split.measured,
        from_other_cells: split.from_other_cells,
        typical: split.typical,
    }
}

/// The cells of the axes of `opts` with `chosen`: kernels, userlands and criu checked
/// first (a name that is not one is bad input, said before anything is built).
pub fn plan_axes(
    opts: &MatrixOptions,
    chosen: &[Scenario],
) -> Result<Vec<PlannedCell>, MatrixError> {
    let kernels = cell_choice::parse_kernel_list(&opts.kernels)?;
    for k in &kernels {
        cell_choice::kernel_choice(k, None, None)?;
    }
    let userlands = cell_choice::parse_userland_list(&opts.userlands)?;
    let criu = criu_axis(cell_choice::parse_criu_list(&opts.criu)?, &userlands)?;
    cell_choice::check_suites(&kernels, &userlands, ("--kernels", "--userlands"))?;
    Ok(plan(&kernels, &userlands, &criu, chosen))
}

/// A cell's row and column in the report's table: its kernel and userland; a migration
/// pair's source and target (`crtest migrate --matrix`'s table).
pub(super) fn table_place(c: &PlannedCell) -> (String, String) {
    match &c.moved_from {
        None => (c.kernel_label.clone(), c.column.clone()),
        Some(from) => (
            format!("{} from {}", from.mode, from.label),
            format!(
                "to {}",
                side_label(&c.kernel_label, &c.column, c.cpu.as_deref())
            ),
        ),
    }
}

/// A migration pair's cell id: `move-<mode>-<source>--<target>`, a plain name.
pub fn move_id(mode: &str, from: &str, to: &str) -> String {
    format!("move-{mode}-{from}--{to}")
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._+-".contains(c) {
            true => c,
            false => '_',
        })
        .collect()
}

/// A userland's column in the report: the suite, `+criu-<label>` for a criu of its own.
pub fn column(userland: &str, criu_label: Option<&str>) -> String {
    match criu_label {
        Some(l) => format!("{userland}+criu-{l}"),
        None => userland.to_string(),
    }
}

/// One side of a migration pair: `kernel-K+userland-U[+criu-X][+cpu-M]`.
pub fn side_label(kernel: &str, column: &str, cpu: Option<&str>) -> String {
    let base = results::cell_id(kernel, column);
    match cpu {
        Some(m) => format!("{base}+cpu-{m}"),
        None => base,
    }
}

/// One criu of the matrix's axis and its label.
type CriuAxis = (CriuName, Option<String>);

/// The criu axis, each with its label: a tree that is not one is bad input (2, or 3 when it
/// cannot be read), said before any cell starts; a suite's packaged criu pairs only with
/// that suite's userland.
fn criu_axis(names: Vec<CriuName>, userlands: &[String]) -> Result<Vec<CriuAxis>, MatrixError> {
    let mut criu = Vec::new();
    for name in names {
        match &name {
            CriuName::Tree(p) => {
                crtest_vm::criu_tree::inspect(p).map_err(MatrixError::CriuTree)?;
            }
            CriuName::Package(Some(s)) if !userlands.contains(s) => {
                return Err(MatrixError::CriuWithoutItsUserland(s.clone()))
            }
            CriuName::Package(_) => {}
        }
        let label = cell_choice::criu_label(&name);
        criu.push((name, label));
    }
    Ok(criu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::matrix::*;

    fn sc(name: &str) -> Scenario {
        let text = "description = \"d\"\nworkload = \"counterloop\"\n";
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        crate::model::scenario::load_dir(t.path())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn plan_is_kernels_by_userlands_and_shards_split_it() {
        let k = cell_choice::parse_kernel_list(&["bookworm".into(), "sid".into()]).unwrap();
        let u = vec!["bookworm".to_string(), "trixie".to_string()];
        let s = vec![sc("a"), sc("b")];
        let pkg = [(CriuName::Package(None), None)];
        let all = plan(&k, &u, &pkg, &s);
        assert_eq!(
            all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [
                "kernel-bookworm+userland-bookworm",
                "kernel-bookworm+userland-trixie",
                "kernel-sid+userland-bookworm",
                "kernel-sid+userland-trixie"
            ]
        );
        let split = split(&all, 3, 2, &Durations::default());
        let one = cut(&all, &split.shards[1]);
        let pairs: Vec<(String, String)> = one
            .iter()
            .flat_map(|c| c.scenarios.iter().map(|s| (c.id.clone(), s.name.clone())))
            .collect();
        assert_eq!(pairs.len(), 3, "{pairs:?}");
        assert_eq!(pairs[0].0, "kernel-bookworm+userland-trixie");
    }

    #[test]
    fn a_criu_axis_adds_columns_and_a_suite_pairs_with_its_userland() {
        let k = cell_choice::parse_kernel_list(&["sid".into()]).unwrap();
        let u = vec!["bookworm".to_string(), "trixie".to_string()];
        let criu = [
            (CriuName::Package(Some("bookworm".into())), None),
            (
                CriuName::Tree("/src/criu-3.19".into()),
                Some("v3.19".into()),
            ),
        ];
        let cells = plan(&k, &u, &criu, &[sc("a")]);
        let got: Vec<(&str, &str, &CriuChoice)> = cells
            .iter()
            .map(|c| (c.id.as_str(), c.column.as_str(), &c.criu))
            .collect();
        let tree = CriuChoice::Tree("/src/criu-3.19".into());
        assert_eq!(
            got,
            [
                (
                    "kernel-sid+userland-bookworm",
                    "bookworm",
                    &CriuChoice::Package
                ),
                (
                    "kernel-sid+userland-bookworm+criu-v3.19",
                    "bookworm+criu-v3.19",
                    &tree
                ),
                (
                    "kernel-sid+userland-trixie+criu-v3.19",
                    "trixie+criu-v3.19",
                    &tree
                ),
            ]
        );
    }

    #[test]
    fn unprepared_cells_say_why() {
        let k = cell_choice::parse_kernel_list(&["sid".into()]).unwrap();
        let pkg = [(CriuName::Package(None), None)];
        let p = plan(&k, &["sid".into()], &pkg, &[sc("a")]).remove(0);
        let r = unprepared(&p, "cannot bootstrap Debian suite `sid`");
        assert_eq!(
            r.scenarios[0].outcome,
            crate::model::outcome::Outcome::Error
        );
        let d = crate::report::verdict::diagnoses(&r);
        assert!(d[0].title.contains("cannot bootstrap"), "{d:?}");
        let moved = relocate(
            {
                let mut r = r.clone();
                r.scenarios[0].artifacts = vec!["scenarios/a/x.log".into()];
                r
            },
            "cells/c",
        );
        assert_eq!(moved.scenarios[0].artifacts, ["cells/c/scenarios/a/x.log"]);
    }

    #[test]
    fn views_are_written_with_history() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("20261126-200000-abcd");
        std::fs::create_dir(&dir).unwrap();
        // From a run.json on disk, as `crtest merge` and CI read it: no VM involved.
        std::fs::write(
            dir.join("run.json"),
            serde_json::to_string_pretty(&crate::results::fixtures::matrix_report()).unwrap(),
        )
        .unwrap();
        let (_, report) = results::load_run(&dir).unwrap();
        crate::report::views::write_views(&dir, &report).unwrap();
        crate::report::views::write_views(&dir, &report).unwrap();
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        assert!(html.contains("<table class=\"matrix\">"));
        assert!(std::fs::read_to_string(dir.join("summary.md"))
            .unwrap()
            .contains("version-mismatch"));
        assert_eq!(
            crate::report::history::load(&t.path().join("history.jsonl")).len(),
            2
        );
    }
}
