//! The one way a command runs guests: prepare the cell (images, cached), make a run
//! directory, run, and finish the run directory (run.json, junit.xml, `latest`) whatever
//! the run came to. `run`, `doctor`, `repro` and `bench` go through it.

use crate::cli::args::CellFlags;
use crate::cli::exit::CliError;
use crate::host::cell_choice::KernelName;
use crate::host::vm_run::{self, Cell};
use crate::model::scenario::Scenario;
use crate::report::progress::Reporter;
use crate::results::run::RunDir;
use std::path::{Path, PathBuf};

/// Prepares the cell the flags name (with the zdtm tests of `zdtm`, built for its
/// userland), its guests started as the flags say.
pub fn prepare(
    flags: &CellFlags,
    zdtm: Option<PathBuf>,
    reporter: &mut dyn Reporter,
) -> Result<Cell, CliError> {
    prepare_for(flags, zdtm, &[], reporter)
}

/// [`prepare`] for a run of `scenarios`: the userland variants they need are built with
/// the rest.
pub fn prepare_for(
    flags: &CellFlags,
    zdtm: Option<PathBuf>,
    scenarios: &[Scenario],
    reporter: &mut dyn Reporter,
) -> Result<Cell, CliError> {
    let opts = vm_run::CellOptions {
        variants: crate::model::variant::needed(scenarios),
        ..flags.options(zdtm)?
    };
    let kernels = match &opts.kernel {
        vm_run::KernelChoice::Suite(s) => vec![KernelName::Suite(s.clone())],
        _ => Vec::new(),
    };
    let userlands: Vec<String> = opts.suite.iter().cloned().collect();
    crate::host::cell_choice::check_suites(&kernels, &userlands, ("--kernel", "--userland"))?;
    let cell = vm_run::prepare(&opts, reporter)?;
    Ok(flags.guests(cell))
}

/// Runs `body` in a new run directory under `results` and finishes that directory, also
/// when `body` failed (what it collected is kept): the directory and `body`'s result, or
/// the error of making or finishing the directory.
pub fn in_run_dir<T>(
    results: &Path,
    body: impl FnOnce(&mut RunDir) -> Result<T, CliError>,
) -> Result<(RunDir, Result<T, CliError>), CliError> {
    let mut run = RunDir::create(results)?;
    let res = body(&mut run);
    crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by())?;
    Ok((run, res))
}

/// The usual run: `scenarios` (and `probes`) on `cell`, one guest at a time, in a new run
/// directory under `results`.
pub fn run_cell(
    cell: &Cell,
    scenarios: &[Scenario],
    probes: &[Vec<String>],
    results: &Path,
    reporter: &mut dyn Reporter,
) -> Result<RunDir, CliError> {
    let (run, res) = in_run_dir(results, |run| {
        Ok(vm_run::run_cell(cell, scenarios, probes, run, reporter)?)
    })?;
    res.map(|()| run)
}
