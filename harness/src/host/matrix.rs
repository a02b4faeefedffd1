//! `crtest matrix`: the chosen scenarios on every kernel x userland cell, several guests at
//! once, into one run directory:
//!
//! ```text
//! results/<run-id>/
//!   run.json        every cell (cells[].scenarios[].artifacts relative to this directory),
//!                   and `matrix`: the kernels, userlands, scenarios, shard, each cell's dir
//!   junit.xml       one suite per cell
//!   report.html     the kernels x userlands table (see html_report)
//!   summary.md      the same for CI logs
//!   cells/<cell-id>/  what a single-cell run directory holds: run.json, console.log,
//!                   events-N.jsonl, qemu-N.log, scenarios/<name>/...
//! ```
//!
//! Each worker takes the next cell, prepares its images (cached: a kernel or userland is
//! fetched or built once, and a second cell needing it waits on the cache lock) and runs it.

use crate::host::cell_choice::{self, CriuName, KernelName};
use crate::host::shard::Shard;
use crate::host::vm_run::{self, CellOptions, CriuChoice, KernelChoice};
use crate::model::scenario::Scenario;
use crate::report::progress::{Progress, Reporter};
use crate::results::run::{self as results, CellReport, MatrixCell, MatrixInfo, RunDir};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub catalog: crate::host::catalog::CatalogArgs,
    /// Only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Kernels (comma-separated): Debian suites (bookworm, bookworm-backports, trixie, sid)
    /// or paths of bzImages / `crtest kernel build` directories.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME|PATH,...",
        default_value = "bookworm,trixie,sid"
    )]
    pub kernels: Vec<String>,
    /// Guest userlands (comma-separated Debian suites).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME,...",
        default_value = "bookworm,trixie,sid"
    )]
    pub userlands: Vec<String>,
    /// The criu of the cells (comma-separated): `package` (the default: each userland's
    /// own), a suite name (that userland's package; pairs only with that userland), or paths
    /// of CRIU source trees, each built for every userland (a column per userland and tree).
    #[arg(long, value_delimiter = ',', value_name = "SOURCE,...")]
    pub criu: Vec<String>,
    /// Guests run at once (default: the number of cores).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Run only this share of the (cell, scenario) pairs, e.g. 2/4 (see `crtest merge`).
    #[arg(long, value_name = "i/n")]
    pub shard: Option<Shard>,
    /// Where run directories go; `latest` links to the newest.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u32,
    /// vCPUs per guest (default: 2 with -j 1, else 1: TCG guests on a shared machine).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Keep the criu images of passing scenarios too.
    #[arg(long)]
    pub keep_images: bool,
    /// Show every step.
    #[arg(short, long)]
    pub verbose: bool,
}

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
}

/// A criu of the matrix: its name and its label in columns (`None`: the package).
pub type PlannedCriu = (CriuName, Option<String>);

/// The cells of kernels x userlands x criu (kernels outer), each with `scenarios`, cut to
/// `shard`. A criu named by a suite pairs only with that userland.
pub fn plan(
    kernels: &[KernelName],
    userlands: &[String],
    criu: &[PlannedCriu],
    scenarios: &[Scenario],
    shard: Option<Shard>,
) -> Vec<PlannedCell> {
    let mut cells = Vec::new();
    for k in kernels {
        let label = cell_choice::kernel_label(k);
        for u in userlands {
            for (name, criu_label) in criu {
                let Some(choice) = cell_choice::criu_for(name, u) else {
                    continue;
                };
                let column = match criu_label {
                    Some(l) => format!("{u}+criu-{l}"),
                    None => u.clone(),
                };
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
                });
            }
        }
    }
    let Some(shard) = shard else { return cells };
    let pairs: Vec<(usize, Vec<String>)> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.scenarios.iter().map(|s| s.name.clone()).collect()))
        .collect();
    shard
        .split(&pairs)
        .into_iter()
        .map(|(i, names)| {
            let mut c = cells[i].clone();
            c.scenarios.retain(|s| names.contains(&s.name));
            c
        })
        .collect()
}

/// Progress lines of one cell, prefixed with its id (several cells print at once).
struct CellReporter {
    prefix: String,
    start: Instant,
    verbose: bool,
}

impl CellReporter {
    fn say(&self, text: &str) {
        eprintln!(
            "[{:7.1}s] {}: {text}",
            self.start.elapsed().as_secs_f64(),
            self.prefix
        );
    }
}

impl Reporter for CellReporter {
    fn on(&mut self, p: &Progress) {
        match p {
            Progress::Prepared { what, ms } => self.say(&format!("prepared {what} ({ms} ms)")),
            p @ Progress::AgentReady { .. } => self.say(&p.ready_line()),
            Progress::Booting { boot, resume, .. } => self.say(&format!(
                "{} {boot}",
                if *resume { "resume" } else { "boot" }
            )),
            Progress::ScenarioFinished { result } => {
                self.say(&crate::report::text::scenario_line(result));
                if self.verbose {
                    if let (true, Some(f)) = (result.outcome.is_bad(), &result.failure) {
                        eprint!("{}", crate::report::text::failure_block(f));
                    }
                }
            }
            Progress::GuestLost { reason } => self.say(&format!("guest lost: {reason}")),
            Progress::Step {
                scenario,
                step,
                iteration,
                ms,
                ok,
            } if self.verbose => self.say(&crate::report::text::step_line(
                scenario, step, *iteration, *ms, *ok,
            )),
            Progress::GuestNote { note } if self.verbose => self.say(&format!("note: {note}")),
            _ => {}
        }
    }
}

/// Settings shared by the cells of a matrix.
#[derive(Debug, Clone)]
pub struct CellSettings {
    /// A CRIU tree whose zdtm tests each cell builds for its userland.
    pub zdtm: Option<PathBuf>,
    pub memory_mib: u32,
    pub cpus: u32,
    pub keep_images: bool,
    pub verbose: bool,
}

/// A cell report for a cell whose images could not be prepared: every scenario `error`
/// with the reason, so the report says why the cell has no results.
pub fn unprepared(planned: &PlannedCell, why: &str) -> CellReport {
    CellReport {
        id: planned.id.clone(),
        kernel: results::KernelInfo {
            release: "?".into(),
            source: planned.kernel_label.clone(),
            missing_options: vec![],
        },
        userland: results::UserlandInfo {
            suite: planned.userland.clone(),
            criu: None,
            criu_source: match &planned.criu {
                CriuChoice::Tree(p) => Some(format!("tree at {}", p.display())),
                CriuChoice::Package => None,
            },
            lxc: None,
        },
        notes: vec![format!("could not prepare the cell: {why}")],
        scenarios: planned
            .scenarios
            .iter()
            .map(|s| {
                crate::model::outcome::ScenarioResult::without_steps(
                    &s.name,
                    crate::model::outcome::Outcome::Error,
                    crate::model::outcome::Failure {
                        step: "prepare".into(),
                        message: format!("could not prepare the cell: {why}"),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        ..CellReport::default()
    }
}

/// Prepares and runs one cell in `cell_dir`; returns its report (artifacts relative to the
/// cell's directory).
pub fn run_one(
    planned: &PlannedCell,
    settings: &CellSettings,
    cell_dir: &Path,
    run_id: &str,
    reporter: &mut dyn Reporter,
) -> CellReport {
    let kernel = match cell_choice::kernel_choice(&planned.kernel, None, None) {
        Ok(k) => k,
        Err(e) => return unprepared(planned, &e.to_string()),
    };
    let opts = CellOptions {
        kernel,
        suite: Some(planned.userland.clone()),
        criu: planned.criu.clone(),
        zdtm: settings.zdtm.clone(),
        memory_mib: settings.memory_mib,
        cpus: settings.cpus,
    };
    let mut run = match RunDir::create_at(cell_dir, run_id) {
        Ok(r) => r,
        Err(e) => return unprepared(planned, &e.to_string()),
    };
    let report = match vm_run::prepare(&opts, reporter) {
        Err(e) => {
            let r = unprepared(planned, &e.to_string());
            run.report.cells.push(r);
            Ok(())
        }
        Ok(cell) => {
            let cell = vm_run::Cell {
                id: planned.id.clone(),
                keep_images: settings.keep_images,
                ..cell
            };
            vm_run::run_cell(&cell, &planned.scenarios, &[], &mut run, reporter)
        }
    };
    if let Err(e) = report {
        let mut r = run
            .report
            .cells
            .pop()
            .unwrap_or_else(|| unprepared(planned, &e.to_string()));
        r.notes.push(format!("results: {e}"));
        run.report.cells.push(r);
    }
    let _ = crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by());
    run.report
        .cells
        .pop()
        .unwrap_or_else(|| unprepared(planned, "the cell wrote no report"))
}

/// Prefixes a cell's artifact paths with its directory, so they are relative to the run.
pub fn relocate(mut cell: CellReport, dir: &str) -> CellReport {
    for s in &mut cell.scenarios {
        for a in s.paths_mut() {
            *a = format!("{dir}/{a}");
        }
    }
    cell
}

/// Builds the guest binaries once and freezes them (hard links, or copies) in `dir`, so
/// every cell of the matrix boots the same agent and workloads even when the workspace is
/// rebuilt meanwhile; `CRTEST_GUEST_BIN` then points every cell's preparation at them.
fn freeze_guest_binaries(dir: &Path) -> Result<(), String> {
    if std::env::var_os("CRTEST_GUEST_BIN").is_some() {
        return Ok(());
    }
    let bins = crate::host::guest_build::build().map_err(|e| format!("guest binaries: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for src in std::iter::once(bins.agent()).chain(bins.workloads()) {
        let dst = dir.join(src.file_name().unwrap_or_default());
        std::fs::hard_link(&src, &dst)
            .or_else(|_| std::fs::copy(&src, &dst).map(|_| ()))
            .map_err(|e| format!("{} -> {}: {e}", src.display(), dst.display()))?;
    }
    // Set before any worker thread starts: nothing reads the environment concurrently.
    std::env::set_var("CRTEST_GUEST_BIN", dir);
    Ok(())
}

/// `crtest matrix`.
pub fn run(args: &MatrixArgs) -> i32 {
    let fail = |code: i32, e: &dyn std::fmt::Display| {
        eprintln!("crtest: {e}");
        code
    };
    // zdtm's tests are listed as built for the first userland; a cell whose build lacks
    // one skips it, saying so.
    let first = args.userlands.first().map(|u| u.trim().to_string());
    let chosen = match args.catalog.select_for(&args.scenario, first.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let kernels = match cell_choice::parse_kernel_list(&args.kernels) {
        Ok(k) => k,
        Err(e) => return fail(2, &e),
    };
    for k in &kernels {
        if let Err(e) = cell_choice::kernel_choice(k, None, None) {
            return fail(2, &e);
        }
    }
    let userlands = match cell_choice::parse_userland_list(&args.userlands) {
        Ok(u) => u,
        Err(e) => return fail(2, &e),
    };
    let criu_names = match cell_choice::parse_criu_list(&args.criu) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let criu = match criu_axis(criu_names, &userlands) {
        Ok(c) => c,
        Err((code, e)) => return fail(code, &e),
    };
    let cells = plan(&kernels, &userlands, &criu, &chosen, args.shard);
    let frozen = match tempfile::Builder::new()
        .prefix("crtest-guest-bin-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => return fail(3, &e),
    };
    let t = Instant::now();
    if let Err(e) = freeze_guest_binaries(&frozen.path().join("bin")) {
        return fail(3, &e);
    }
    eprintln!(
        "matrix: guest binaries ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut top = match RunDir::create(&args.results) {
        Ok(r) => r,
        Err(e) => return fail(3, &e),
    };
    top.report.matrix = Some(matrix_info(&kernels, &cells, &chosen, args.shard));
    if let Err(e) = top.save() {
        return fail(3, &e);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores).clamp(1, cells.len().max(1));
    let settings = CellSettings {
        zdtm: args.catalog.zdtm.clone(),
        memory_mib: args.memory,
        cpus: args.cpus.unwrap_or(if jobs > 1 { 1 } else { 2 }),
        keep_images: args.keep_images,
        verbose: args.verbose,
    };
    eprintln!(
        "matrix: {} cells x {} scenarios{}, {jobs} at once, {} vCPU(s) each; results: {}",
        cells.len(),
        chosen.len(),
        args.shard
            .map_or(String::new(), |s| format!(" (shard {s})")),
        settings.cpus,
        top.dir.display()
    );
    let start = Instant::now();
    let top = run_cells(&cells, &settings, jobs, top, start);
    let mut top = top;
    top.tag_results(&chosen);
    if let Err(e) = crate::report::views::finish(&mut top, crate::host::interrupt::stopped_by()) {
        return fail(3, &e);
    }
    if let Err(e) = crate::report::views::write_views(&top.dir, &top.report) {
        eprintln!("crtest: writing report.html, summary.md, history: {e}");
    }
    eprint!("\n{}", crate::report::views::terminal_summary(&top.report));
    eprintln!(
        "matrix done in {:.1} s; report: {}",
        start.elapsed().as_secs_f64(),
        top.dir.join("report.html").display()
    );
    if let Some(sig) = crate::host::interrupt::requested() {
        eprintln!("crtest: stopped by {}", crate::host::interrupt::name(sig));
        return 128 + sig;
    }
    let all_unprepared = top.report.cells.iter().all(|c| {
        c.scenarios
            .iter()
            .all(|s| s.failure.as_ref().is_some_and(|f| f.step == "prepare"))
    });
    if !top.report.cells.is_empty() && all_unprepared {
        return 3;
    }
    i32::from(top.any_bad())
}

/// Runs the planned cells, `jobs` at once, each into its folder of `top`, which is saved as
/// each cell ends.
fn run_cells(
    cells: &[PlannedCell],
    settings: &CellSettings,
    jobs: usize,
    top: RunDir,
    start: Instant,
) -> RunDir {
    let next = AtomicUsize::new(0);
    let top = Mutex::new(top);
    let done: Mutex<Vec<(usize, CellReport, u64)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                if crate::host::interrupt::requested().is_some() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(planned) = cells.get(i) else { break };
                let (run_id, dir) = {
                    let t = top.lock().unwrap_or_else(|e| e.into_inner());
                    (
                        t.report.run_id.clone(),
                        t.dir.join("cells").join(&planned.id),
                    )
                };
                let mut reporter = CellReporter {
                    prefix: planned.id.clone(),
                    start,
                    verbose: settings.verbose,
                };
                reporter.say(&format!("start: {} scenario(s)", planned.scenarios.len()));
                let t = Instant::now();
                let report = run_one(planned, settings, &dir, &run_id, &mut reporter);
                let wall = t.elapsed().as_millis() as u64;
                reporter.say(&format!(
                    "done in {:.1} s: {}",
                    wall as f64 / 1000.0,
                    crate::report::verdict::counts_text(&report.scenarios)
                ));
                let report = relocate(report, &format!("cells/{}", planned.id));
                let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
                d.push((i, report, wall));
                d.sort_by_key(|(i, _, _)| *i);
                let mut t = top.lock().unwrap_or_else(|e| e.into_inner());
                t.report.cells = d.iter().map(|(_, r, _)| r.clone()).collect();
                if let Some(m) = t.report.matrix.as_mut() {
                    if let Some(mc) = m.cells.get_mut(i) {
                        mc.wall_ms = Some(wall);
                    }
                }
                if let Err(e) = t.save() {
                    eprintln!("crtest: {e}");
                }
            });
        }
    });
    top.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The matrix's axes and cells as run.json keeps them.
fn matrix_info(
    kernels: &[KernelName],
    cells: &[PlannedCell],
    chosen: &[Scenario],
    shard: Option<Shard>,
) -> MatrixInfo {
    let mut columns: Vec<String> = Vec::new();
    for c in cells {
        if !columns.contains(&c.column) {
            columns.push(c.column.clone());
        }
    }
    MatrixInfo {
        kernels: kernels.iter().map(cell_choice::kernel_label).collect(),
        userlands: columns,
        scenarios: chosen.iter().map(|s| s.name.clone()).collect(),
        shard: shard.map(|s| s.to_string()),
        merged_from: vec![],
        cells: cells
            .iter()
            .map(|c| MatrixCell {
                id: c.id.clone(),
                kernel: c.kernel_label.clone(),
                userland: c.column.clone(),
                dir: Some(format!("cells/{}", c.id)),
                wall_ms: None,
            })
            .collect(),
    }
}

/// One criu of the matrix's axis and its label.
type CriuAxis = (CriuName, Option<String>);

/// The criu axis, each with its label: a tree that is not one is bad input (2, or 3 when it
/// cannot be read), said before any cell starts; a suite's packaged criu pairs only with
/// that suite's userland.
fn criu_axis(names: Vec<CriuName>, userlands: &[String]) -> Result<Vec<CriuAxis>, (i32, String)> {
    let mut criu = Vec::new();
    for name in names {
        match &name {
            CriuName::Tree(p) => {
                if let Err(e) = crtest_vm::criu_tree::inspect(p) {
                    return Err((if e.is_bad_input() { 2 } else { 3 }, e.to_string()));
                }
            }
            CriuName::Package(Some(s)) if !userlands.contains(s) => {
                return Err((
                    2,
                    format!(
                        "--criu `{s}`: the packaged criu of a suite pairs only with that \
                         userland, and `{s}` is not among --userlands"
                    ),
                ))
            }
            CriuName::Package(_) => {}
        }
        let label = cell_choice::criu_label(&name);
        criu.push((name, label));
    }
    Ok(criu)
}

/// The kernel choice of a cell as `crtest run` names it.
pub fn label_of(choice: &KernelChoice, host_suite: &str) -> String {
    match choice {
        KernelChoice::Debian => host_suite.to_string(),
        KernelChoice::Suite(s) => s.clone(),
        KernelChoice::Local { bzimage, .. } => {
            cell_choice::kernel_label(&KernelName::Path(bzimage.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let all = plan(&k, &u, &pkg, &s, None);
        assert_eq!(
            all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [
                "kernel-bookworm+userland-bookworm",
                "kernel-bookworm+userland-trixie",
                "kernel-sid+userland-bookworm",
                "kernel-sid+userland-trixie"
            ]
        );
        let one = plan(&k, &u, &pkg, &s, Some("2/3".parse().unwrap()));
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
        let cells = plan(&k, &u, &criu, &[sc("a")], None);
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
        let p = plan(&k, &["sid".into()], &pkg, &[sc("a")], None).remove(0);
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
