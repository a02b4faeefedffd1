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
use crate::host::shard::{Method, Shard, Split};
use crate::host::vm_run::{self, CellOptions, CriuChoice, KernelChoice};
use crate::model::scenario::Scenario;
use crate::report::durations::Durations;
use crate::report::progress::{Progress, Reporter};
use crate::results::run::{self as results, CellReport, MatrixCell, MatrixInfo, RunDir, SplitInfo};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What `crtest matrix` was asked for (the scenarios are chosen beforehand).
#[derive(Debug, Clone, Default)]
pub struct MatrixOptions {
    /// Kernels: Debian suites or paths of bzImages / `crtest kernel build` directories.
    pub kernels: Vec<String>,
    /// Guest userlands (Debian suites).
    pub userlands: Vec<String>,
    /// The criu of the cells: `package`, suite names, or CRIU source trees (empty: the
    /// packages).
    pub criu: Vec<String>,
    /// A CRIU tree whose zdtm tests each cell builds for its userland.
    pub zdtm: Option<PathBuf>,
    /// Guests run at once (default: the number of cores).
    pub jobs: Option<usize>,
    /// Run only this share of the (cell, scenario) pairs.
    pub shard: Option<Shard>,
    /// The durations shards are split by (durations files, runs, results roots, the later
    /// winning where they measured the same pair); none: the history of `results`.
    pub durations: Vec<PathBuf>,
    /// Where run directories go.
    pub results: PathBuf,
    /// Guest memory in MiB.
    pub memory: u32,
    /// vCPUs per guest (default: 2 with one guest at a time, else 1).
    pub cpus: Option<u32>,
    /// Keep the criu images of passing scenarios too.
    pub keep_images: bool,
    /// Show every step.
    pub verbose: bool,
}

/// Why a matrix could not run.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error(transparent)]
    Choice(#[from] cell_choice::CellChoiceError),
    #[error("--criu")]
    CriuTree(#[source] crtest_vm::criu_tree::TreeError),
    #[error(
        "--criu `{0}`: the packaged criu of a suite pairs only with that userland, and `{0}` is \
         not among --userlands"
    )]
    CriuWithoutItsUserland(String),
    #[error("guest binaries")]
    GuestBinaries(#[source] crate::host::guest_build::GuestBuildError),
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Results(#[from] results::ResultsError),
    #[error(transparent)]
    Durations(#[from] crate::report::durations::DurationsError),
}

impl MatrixError {
    /// Whether the command line is at fault, not the host.
    pub fn is_bad_input(&self) -> bool {
        match self {
            MatrixError::Choice(_)
            | MatrixError::CriuWithoutItsUserland(_)
            | MatrixError::Durations(_) => true,
            MatrixError::CriuTree(e) => e.is_bad_input(),
            _ => false,
        }
    }
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
            Durations::of_history(&opts.results),
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
            Ok((d, names.join(", ")))
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
            oci: Default::default(),
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
    let mut run = match RunDir::create_at(cell_dir, run_id) {
        Ok(r) => r,
        Err(e) => return unprepared(planned, &e.to_string()),
    };
    let target = Side {
        kernel: &planned.kernel,
        userland: &planned.userland,
        criu: &planned.criu,
        cpu: &planned.cpu,
    };
    let report = match (
        &planned.moved_from,
        target.prepare(planned, settings, reporter),
    ) {
        (_, Err(why)) => {
            run.report.cells.push(unprepared(planned, &why));
            Ok(())
        }
        (None, Ok(cell)) => vm_run::run_cell(&cell, &planned.scenarios, &[], &mut run, reporter),
        (Some(from), Ok(target)) => {
            let source = Side {
                kernel: &from.kernel,
                userland: &from.userland,
                criu: &from.criu,
                cpu: &from.cpu,
            };
            match source.prepare(planned, settings, reporter) {
                Err(why) => {
                    run.report
                        .cells
                        .push(unprepared(planned, &format!("source: {why}")));
                    Ok(())
                }
                Ok(source) => {
                    let pair = crate::host::migrate::Pair {
                        source: &source,
                        target: &target,
                        mode: from.mode,
                        fault: None,
                        dir: String::new(),
                    };
                    let res = crate::host::migrate::run_pair(
                        &pair,
                        &planned.scenarios,
                        &mut run,
                        reporter,
                    );
                    // The plan's id, which stays the same across kernel releases.
                    if let Some(c) = run.report.cells.last_mut() {
                        c.id.clone_from(&planned.id);
                    }
                    res
                }
            }
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

/// One guest's cell of a planned cell: the target, or a migration's source.
struct Side<'a> {
    kernel: &'a KernelName,
    userland: &'a String,
    criu: &'a CriuChoice,
    cpu: &'a Option<String>,
}

impl Side<'_> {
    /// Its images, prepared (cached); the reason when they cannot be.
    fn prepare(
        &self,
        planned: &PlannedCell,
        settings: &CellSettings,
        reporter: &mut dyn Reporter,
    ) -> Result<vm_run::Cell, String> {
        let kernel =
            cell_choice::kernel_choice(self.kernel, None, None).map_err(|e| e.to_string())?;
        let opts = CellOptions {
            kernel,
            suite: Some(self.userland.clone()),
            criu: self.criu.clone(),
            zdtm: settings.zdtm.clone(),
            memory_mib: settings.memory_mib,
            cpus: settings.cpus,
            cpu: self.cpu.clone(),
            variants: crate::model::variant::needed(&planned.scenarios),
        };
        let cell = vm_run::prepare(&opts, reporter).map_err(|e| e.to_string())?;
        let id = match planned.moved_from {
            None => planned.id.clone(),
            Some(_) => cell.id.clone(),
        };
        Ok(vm_run::Cell {
            id,
            keep_images: settings.keep_images,
            ..cell
        })
    }
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
fn freeze_guest_binaries(dir: &Path) -> Result<(), MatrixError> {
    if std::env::var_os("CRTEST_GUEST_BIN").is_some() {
        return Ok(());
    }
    let bins = crate::host::guest_build::build().map_err(MatrixError::GuestBinaries)?;
    std::fs::create_dir_all(dir).map_err(|source| MatrixError::Io {
        op: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    for src in std::iter::once(bins.agent()).chain(bins.workloads()) {
        let dst = dir.join(src.file_name().unwrap_or_default());
        std::fs::hard_link(&src, &dst)
            .or_else(|_| std::fs::copy(&src, &dst).map(|_| ()))
            .map_err(|source| MatrixError::Io {
                op: "link a guest binary to",
                path: dst.clone(),
                source,
            })?;
    }
    // Set before any worker thread starts: nothing reads the environment concurrently.
    std::env::set_var("CRTEST_GUEST_BIN", dir);
    Ok(())
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

/// Guests at once: `-j`, else one per core.
pub fn jobs(opts: &MatrixOptions) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    opts.jobs.unwrap_or(cores).max(1)
}

/// `crtest matrix`: `cells` (all of the plan: the shard of `opts` is cut here) into a new
/// run directory of `opts.results` (finished: run.json, junit.xml; the views are the
/// caller's). `chosen` are the scenarios asked for, for the record.
pub fn run(
    opts: &MatrixOptions,
    all: Vec<PlannedCell>,
    chosen: &[Scenario],
) -> Result<RunDir, MatrixError> {
    let jobs = jobs(opts);
    let (durations, source) = durations(opts)?;
    let (cells, split) = match opts.shard {
        None => (all, None),
        Some(shard) => {
            let split = split(&all, shard.count, jobs, &durations);
            let cells = cut(&all, &split.shards[shard.index - 1]);
            let info = split_info(&split, &durations, source, jobs);
            (cells, Some(info))
        }
    };
    let frozen = tempfile::Builder::new()
        .prefix("crtest-guest-bin-")
        .tempdir()
        .map_err(|source| MatrixError::Io {
            op: "create a temporary directory in",
            path: std::env::temp_dir(),
            source,
        })?;
    let t = Instant::now();
    freeze_guest_binaries(&frozen.path().join("bin"))?;
    eprintln!(
        "matrix: guest binaries ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut top = RunDir::create(&opts.results)?;
    let mut info = matrix_info(&cells, chosen, opts.shard);
    info.split = split;
    if let (Some(s), Some(shard)) = (&info.split, opts.shard) {
        if let Some(ms) = s.expected_ms.get(shard.index - 1) {
            eprintln!(
                "matrix: shard {shard} split by {} ({} of {} pairs measured): expected {:.0} s",
                s.method,
                s.measured,
                s.measured + s.from_other_cells + s.typical,
                *ms as f64 / 1000.0
            );
        }
    }
    top.report.matrix = Some(info);
    top.save()?;
    let jobs = jobs.clamp(1, cells.len().max(1));
    let settings = CellSettings {
        zdtm: opts.zdtm.clone(),
        memory_mib: opts.memory,
        cpus: opts.cpus.unwrap_or(if jobs > 1 { 1 } else { 2 }),
        keep_images: opts.keep_images,
        verbose: opts.verbose,
    };
    let pairs: usize = cells.iter().map(|c| c.scenarios.len()).sum();
    eprintln!(
        "matrix: {} cells, {pairs} pairs{}, {jobs} at once, {} vCPU(s) each; results: {}",
        cells.len(),
        opts.shard
            .map_or(String::new(), |s| format!(" (shard {s})")),
        settings.cpus,
        top.dir.display()
    );
    let order = longest_first(&cells, &durations);
    let mut top = run_cells(&cells, &order, &settings, jobs, top, Instant::now());
    top.tag_results(chosen);
    crate::report::views::finish(&mut top, crate::host::interrupt::stopped_by())?;
    Ok(top)
}

/// The order workers take the cells in: longest expected first (plan order for ties, and
/// when nothing was measured).
fn longest_first(cells: &[PlannedCell], durations: &Durations) -> Vec<usize> {
    let cost = |c: &PlannedCell| -> u64 {
        let scenarios: u64 = c
            .scenarios
            .iter()
            .filter_map(|s| durations.estimate(&c.id, &s.name).map(|(ms, _)| ms))
            .sum();
        scenarios + durations.overhead(&c.id)
    };
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost(&cells[i])));
    order
}

/// Whether no cell of a matrix could even be prepared (the host is at fault, not C/R).
pub fn all_unprepared(report: &results::RunReport) -> bool {
    !report.cells.is_empty()
        && report.cells.iter().all(|c| {
            c.scenarios
                .iter()
                .all(|s| s.failure.as_ref().is_some_and(|f| f.step == "prepare"))
        })
}

/// Runs the planned cells, `jobs` at once, each into its folder of `top`, which is saved as
/// each cell ends.
fn run_cells(
    cells: &[PlannedCell],
    order: &[usize],
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
                let Some(&i) = order.get(next.fetch_add(1, Ordering::SeqCst)) else {
                    break;
                };
                let planned = &cells[i];
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

/// A cell's row and column in the report's table: its kernel and userland; a migration
/// pair's source and target (`crtest migrate --matrix`'s table).
fn table_place(c: &PlannedCell) -> (String, String) {
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

/// One side of a migration pair: `kernel-K+userland-U[+criu-X][+cpu-M]`.
pub fn side_label(kernel: &str, column: &str, cpu: Option<&str>) -> String {
    let base = results::cell_id(kernel, column);
    match cpu {
        Some(m) => format!("{base}+cpu-{m}"),
        None => base,
    }
}

/// The matrix's axes and cells as run.json keeps them.
fn matrix_info(cells: &[PlannedCell], chosen: &[Scenario], shard: Option<Shard>) -> MatrixInfo {
    let (mut kernels, mut columns): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for c in cells {
        let (row, column) = table_place(c);
        if !kernels.contains(&row) {
            kernels.push(row);
        }
        if !columns.contains(&column) {
            columns.push(column);
        }
    }
    MatrixInfo {
        kernels,
        userlands: columns,
        scenarios: chosen.iter().map(|s| s.name.clone()).collect(),
        shard: shard.map(|s| s.to_string()),
        merged_from: vec![],
        split: None,
        shard_times: vec![],
        cells: cells
            .iter()
            .map(|c| MatrixCell {
                id: c.id.clone(),
                kernel: table_place(c).0,
                userland: table_place(c).1,
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
