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

mod cell;
mod plan;

pub use cell::{relocate, run_one, unprepared};
use plan::table_place;
pub use plan::{
    column, cut, durations, move_id, plan, plan_axes, plan_text, side_label, split, split_info,
    union, PlannedCell, PlannedCriu, PlannedSource,
};

use crate::host::cell_choice::{self, KernelName};
use crate::host::shard::Shard;
use crate::host::vm_run::KernelChoice;
use crate::model::scenario::Scenario;
use crate::report::durations::Durations;
use crate::report::progress::{Progress, Reporter};
use crate::results::run::{self as results, CellReport, MatrixCell, MatrixInfo, RunDir};
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
