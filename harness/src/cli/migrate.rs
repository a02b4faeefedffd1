//! `crtest migrate`: scenarios moved from a source cell to a target cell (one pair), or
//! between every pair of a set of cells (`--matrix`).

use crate::cli::args::{CellArgs, CellFlags, MigrateArgs};
use crate::cli::exit::{CliError, Done};
use crate::cli::pipeline;
use crate::host::catalog::CatalogOptions;
use crate::host::migrate::{matrix, run_pair, Pair};
use crate::host::vm_run;
use crate::model::scenario::Scenario;
use crate::report::progress::{Tally, TerminalReporter};
use crate::results::run::RunDir;

pub use crate::host::migrate::MIGRATE_TAG;

/// `crtest migrate`: the cells prepared, the scenarios moved, the results in a run directory.
pub fn migrate(args: &MigrateArgs) -> Result<Done, CliError> {
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
    let flags = match args.matrix {
        true => matrix_cells(args),
        false => vec![args.cell_flags(), args.target()],
    };
    let all_pairs = match args.matrix {
        true => matrix::pairs(flags.len()),
        false => vec![(0, 1)],
    };
    // A shard's pairs (of the same list on every machine). Every cell is prepared (cached
    // after the first machine's), so that every shard names the cells alike.
    let pairs: Vec<(usize, (usize, usize))> = all_pairs
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| args.shard.is_none_or(|s| s.takes(*i, all_pairs.len())))
        .collect();
    let mut cells = Vec::new();
    for f in &flags {
        cells.push(vm_run::Cell {
            keep_images: args.keep_images,
            ..pipeline::prepare(f, None, &mut reporter)?
        });
    }
    eprintln!(
        "migrate: {} pair(s) of {} cell(s) ({}), {} scenario(s) each",
        pairs.len(),
        cells.len(),
        args.mode,
        chosen.len()
    );
    let (run, res) = pipeline::in_run_dir(&args.results, |run| {
        eprintln!("results: {}", run.dir.display());
        if args.matrix {
            // The plan, as `crtest matrix` writes it: rows the sources, columns the targets,
            // each pair's folder (so that `crtest merge` joins shards).
            let ids: Vec<String> = cells.iter().map(|c| c.id.clone()).collect();
            run.report.matrix = Some(crate::results::run::MatrixInfo {
                kernels: ids.clone(),
                userlands: ids,
                scenarios: chosen.iter().map(|s| s.name.clone()).collect(),
                shard: args.shard.map(|s| s.to_string()),
                ..Default::default()
            });
        }
        move_pairs(args, &cells, &pairs, &chosen, run)
    })?;
    res?;
    for c in &run.report.cells {
        eprint!("\n{}", crate::report::text::cell_summary(c));
    }
    if args.matrix && args.shard.is_none() {
        let labels: Vec<String> = cells.iter().map(|c| c.id.clone()).collect();
        eprint!("\n{}", matrix::table(&labels, &run.report.cells));
    }
    eprintln!("results: {}", run.dir.display());
    if let Some(sig) = crate::host::interrupt::requested() {
        return Ok(Done::Stopped(sig));
    }
    Ok(Done::good_unless(run.any_bad()))
}

/// Moves `chosen` for each pair (its place in the whole list, and its cells' places), one
/// pair after the other; a matrix's pairs each in a folder of their own (`pairs/<place>`).
fn move_pairs(
    args: &MigrateArgs,
    cells: &[vm_run::Cell],
    pairs: &[(usize, (usize, usize))],
    chosen: &[Scenario],
    run: &mut RunDir,
) -> Result<(), CliError> {
    let total = pairs.len() * chosen.len();
    let mut reporter = TerminalReporter::new(args.verbose).counting(Tally::new(total));
    for (place, (s, t)) in pairs {
        if crate::host::interrupt::requested().is_some() {
            break;
        }
        let (source, target) = (&cells[*s], &cells[*t]);
        let pair = Pair {
            source,
            target,
            mode: args.mode,
            fault: args.fault,
            dir: match args.matrix {
                true => format!("pairs/{place}"),
                false => String::new(),
            },
        };
        let started = std::time::Instant::now();
        run_pair(&pair, chosen, run, &mut reporter)?;
        let id = run
            .report
            .cells
            .last()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        if let Some(m) = run.report.matrix.as_mut() {
            m.cells.push(crate::results::run::MatrixCell {
                id,
                kernel: source.id.clone(),
                userland: target.id.clone(),
                dir: Some(pair.dir.clone()),
                wall_ms: Some(started.elapsed().as_millis() as u64),
            });
        }
        run.save()?;
    }
    Ok(())
}
/// The cells of `--matrix`: --kernels x --criu x --cpu (comma-separated lists) on
/// --userland.
fn matrix_cells(args: &MigrateArgs) -> Vec<CellFlags> {
    let list = |v: &Option<String>| -> Vec<Option<String>> {
        match v {
            None => vec![None],
            Some(s) => s
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| Some(x.to_string()))
                .collect(),
        }
    };
    let kernels = match args.kernels.is_empty() {
        true => vec![args.cell.cell.kernel.clone()],
        false => args.kernels.iter().map(|k| Some(k.clone())).collect(),
    };
    let mut flags = Vec::new();
    for kernel in &kernels {
        for criu in list(&args.cell.cell.criu) {
            for cpu in list(&args.cell.cpu) {
                flags.push(CellFlags {
                    cell: CellArgs {
                        kernel: kernel.clone(),
                        modules: None,
                        config: None,
                        userland: args.cell.cell.userland.clone(),
                        criu: criu.clone(),
                    },
                    cpu,
                    ..args.cell_flags()
                });
            }
        }
    }
    flags
}
