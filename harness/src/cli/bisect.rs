//! `crtest bisect`: the command line of [`crate::host::bisect`].

use crate::cli::args::BisectArgs;
use crate::cli::exit::{CliError, Done};
use crate::host::bisect::driver::{self, BisectOptions, Subject};
use crate::report::progress::TerminalReporter;
use std::path::PathBuf;

/// `crtest bisect`: the tree, the cell, the scenarios; the culprit on stdout.
pub fn bisect(args: &BisectArgs) -> Result<Done, CliError> {
    let flags = &args.cell.cell;
    let (subject, tree) = match (&args.kernel_tree, flags.criu.as_deref()) {
        (Some(t), _) => (
            Subject::Kernel {
                base_config: args.base_config.clone(),
                jobs: args.jobs,
            },
            t.clone(),
        ),
        (None, Some(c)) if c.contains('/') || PathBuf::from(c).is_dir() => {
            (Subject::Criu, PathBuf::from(c))
        }
        (None, _) => {
            return Err(CliError::input(
                "bisect needs the tree to bisect: --criu TREE (a CRIU git checkout) or \
                 --kernel-tree TREE (a kernel git checkout)",
            ))
        }
    };
    if !tree.join(".git").exists() {
        return Err(CliError::input(format!(
            "{}: not a git checkout (bisect needs the tree's history)",
            tree.display()
        )));
    }
    let choice = flags.spec().choice()?;
    let chosen = args
        .catalog
        .options()
        .select_for(&args.scenario, Some(&choice.userland))?;
    crate::results::run::check_writable(&args.results)?;
    let cell = args.cell.options(args.catalog.zdtm.clone())?;
    let mut label = format!(
        "kernel {}, userland {}",
        match &subject {
            Subject::Kernel { .. } => "(bisected)".to_string(),
            Subject::Criu => flags
                .kernel
                .clone()
                .unwrap_or_else(|| "the host's suite".into()),
        },
        choice.userland
    );
    if let Subject::Kernel { .. } = subject {
        label.push_str(&format!(
            ", criu {}",
            flags.criu.as_deref().unwrap_or("package")
        ));
    }
    if let Some(cpu) = &args.cell.cpu {
        label.push_str(&format!(", cpu {cpu}"));
    }
    let opts = BisectOptions {
        subject,
        tree,
        good: args.good.clone(),
        bad: args.bad.clone(),
        scenarios: chosen,
        cell,
        cell_label: label,
        hunted: args.hunted.clone(),
        runs: args.runs,
        confirm: args.confirm,
        results: args.results.clone(),
    };
    let mut reporter = TerminalReporter::new(args.verbose);
    let ended = driver::bisect(&opts, &mut reporter)?;
    println!("{}", ended.record.verdict);
    eprintln!(
        "crtest bisect: {} steps in {:.0} s; {} and {}",
        ended.record.steps.len(),
        ended.record.seconds,
        ended.dir.join("bisect.json").display(),
        ended.dir.join("summary.md").display()
    );
    if let Some(sig) = crate::host::interrupt::requested() {
        return Ok(Done::Stopped(sig));
    }
    Ok(Done::good_unless(!ended.found))
}
