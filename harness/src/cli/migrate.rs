//! `crtest migrate`: scenarios moved from a source cell to a target cell, one pair.

use crate::cli::args::MigrateArgs;
use crate::cli::exit::{CliError, Done};
use crate::cli::pipeline;
use crate::host::catalog::CatalogOptions;
use crate::host::migrate::{run_pair, Pair};
use crate::host::vm_run;
use crate::report::progress::{Tally, TerminalReporter};

/// The tag of the scenarios a migration moves by default.
pub const MIGRATE_TAG: &str = "migrate";

/// `crtest migrate`: both cells prepared, the scenarios moved, the results in a run directory.
pub fn migrate(args: &MigrateArgs) -> Result<Done, CliError> {
    let target_flags = args.target();
    let suite = args.cell.cell.spec().choice().ok().map(|c| c.userland);
    let catalog = CatalogOptions {
        scenario_dirs: args.scenario_dirs.clone(),
        tag: match args.scenario.is_empty() {
            true => vec![MIGRATE_TAG.into()],
            false => Vec::new(),
        },
        ..CatalogOptions::default()
    };
    let mut chosen = catalog.select_for(&args.scenario, suite.as_deref())?;
    if args.scenario.is_empty() {
        // The set's own scenarios, not their variants of a move in place.
        chosen.retain(|s| s.mode == crate::model::scenario::Mode::default());
    }
    crate::results::run::check_writable(&args.results)?;
    let mut reporter = TerminalReporter::new(args.verbose);
    let keep = |cell: vm_run::Cell| vm_run::Cell {
        keep_images: args.keep_images,
        ..cell
    };
    let source = keep(pipeline::prepare(&args.cell, None, &mut reporter)?);
    let target = keep(pipeline::prepare(&target_flags, None, &mut reporter)?);
    let pair = Pair {
        source: &source,
        target: &target,
        mode: args.mode,
        fault: args.fault,
    };
    eprintln!(
        "migrate: {} -> {} ({}), {} scenario(s)",
        source.id,
        target.id,
        args.mode,
        chosen.len()
    );
    let (run, res) = pipeline::in_run_dir(&args.results, |run| {
        eprintln!("results: {}", run.dir.display());
        let mut reporter = TerminalReporter::new(args.verbose).counting(Tally::new(chosen.len()));
        Ok(run_pair(&pair, &chosen, run, &mut reporter)?)
    })?;
    res?;
    for c in &run.report.cells {
        eprint!("\n{}", crate::report::text::cell_summary(c));
    }
    eprintln!("results: {}", run.dir.display());
    if let Some(sig) = crate::host::interrupt::requested() {
        return Ok(Done::Stopped(sig));
    }
    Ok(Done::good_unless(run.any_bad()))
}
