//! The commands that read and write results and images (`ckptinfo`, `compare`, `merge`,
//! `export`), build kernels (`kernel`), and run the matrix (`matrix`).

use crate::cli::args::{
    CkptinfoArgs, CompareArgs, DurationsArgs, ExportArgs, KernelArgs, KernelCommand, MatrixArgs,
    MergeArgs,
};
use crate::cli::exit::{CliError, Done};
use crate::results::run::load_run;
use std::time::Instant;

/// The image files whose framing is broken, one per line, as an error of the input.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
struct BrokenImages(Vec<String>);

/// `crtest ckptinfo DIR`: good when the directory reads cleanly; bad input (a missing
/// directory; a corrupt, truncated or foreign image) otherwise, with what could be read
/// printed first.
pub fn ckptinfo(args: &CkptinfoArgs) -> Result<Done, CliError> {
    let opts = args.options();
    match crate::ckpt::info::collect(&opts) {
        Ok(report) => {
            print!("{}", crate::ckpt::info::output(&opts, &report));
            let broken: Vec<String> = report
                .broken_files()
                .iter()
                .map(|f| {
                    let problem = f.problem.as_deref().unwrap_or_default();
                    format!("{}: {problem}", opts.dir.join(&f.name).display())
                })
                .collect();
            if broken.is_empty() {
                Ok(Done::Good)
            } else {
                Err(CliError::input(BrokenImages(broken)))
            }
        }
        Err(failure) => {
            let crate::ckpt::info::Failure { partial, error } = *failure;
            if !partial.is_empty() {
                print!("{}", crate::ckpt::info::output(&opts, &partial));
            }
            Err(CliError::input(error))
        }
    }
}

/// `crtest compare OLD NEW`: bad when something regressed.
pub fn compare(args: &CompareArgs) -> Result<Done, CliError> {
    let (_, old) = load_run(&args.old)?;
    let (_, new) = load_run(&args.new)?;
    let c = crate::report::compare::compare(&old, &new, args.threshold_pct, args.threshold_ms);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&c).expect("comparison serialises")
        );
    } else {
        print!(
            "{}",
            crate::report::compare::render(&c, args.threshold_pct, args.threshold_ms)
        );
    }
    Ok(Done::good_unless(c.has_regressions()))
}

/// `crtest merge DIR...`: bad when a merged scenario is.
pub fn merge(args: &MergeArgs) -> Result<Done, CliError> {
    let run = crate::report::merge::merge_into(&args.inputs, &args.results)?;
    let inputs: Vec<_> = args
        .inputs
        .iter()
        .filter_map(|p| load_run(p).ok().map(|(_, r)| r))
        .collect();
    eprint!(
        "{}",
        crate::report::merge::balance_text(&run.report, &inputs)
    );
    if let Err(e) = crate::report::views::write_views(&run.dir, &run.report) {
        eprintln!("crtest: writing report.html, summary.md, history: {e}");
    }
    eprint!("{}", crate::report::views::terminal_summary(&run.report));
    eprintln!("merged into {}", run.dir.display());
    Ok(Done::good_unless(run.any_bad()))
}

/// `crtest durations PATH... [--out FILE]`.
pub fn durations(args: &DurationsArgs) -> Result<Done, CliError> {
    use crate::report::durations::Durations;
    let mut d = Durations::default();
    for p in &args.inputs {
        d.absorb(Durations::load(p)?);
    }
    d.format = crate::report::durations::FORMAT.into();
    match &args.out {
        None => print!("{}", d.to_json()),
        Some(path) => {
            std::fs::write(path, d.to_json()).map_err(|source| {
                crate::results::run::ResultsError::Write {
                    path: path.clone(),
                    source,
                }
            })?;
            eprintln!(
                "crtest: {} pairs of {} cells written to {}",
                d.pairs(),
                d.cells.len(),
                path.display()
            );
        }
    }
    Ok(Done::Good)
}

/// `crtest export --kcidb DIR RUN...`.
pub fn export(args: &ExportArgs) -> Result<Done, CliError> {
    crate::report::kcidb::check_origin(&args.origin)?;
    let runs = args
        .runs
        .iter()
        .map(|p| load_run(p).map(|(_, r)| r))
        .collect::<Result<Vec<_>, _>>()?;
    let doc = crate::report::kcidb::render(&runs, &args.origin);
    let path = args.kcidb.join(crate::report::kcidb::KCIDB_FILE);
    let text = serde_json::to_string_pretty(&doc).expect("a JSON value serialises");
    std::fs::create_dir_all(&args.kcidb)
        .and_then(|()| std::fs::write(&path, text + "\n"))
        .map_err(|source| crate::results::run::ResultsError::Write {
            path: path.clone(),
            source,
        })?;
    let n = doc["tests"].as_array().map_or(0, Vec::len);
    eprintln!("crtest: {n} tests written to {}", path.display());
    Ok(Done::Good)
}

/// `crtest kernel build ...`: prints the built kernel's directory.
pub fn kernel(args: &KernelArgs) -> Result<Done, CliError> {
    match &args.command {
        KernelCommand::Build(b) => {
            let path = crate::host::kernel_build::build(&b.options())?;
            println!("{}", path.display());
            if !b.config_only {
                eprintln!("use it with: crtest run --kernel {}", path.display());
            }
            Ok(Done::Good)
        }
    }
}

/// `crtest matrix`: bad when a scenario is; an infrastructure error when no cell could
/// even be prepared. `--plan N` prints the split and runs nothing.
pub fn matrix(args: &MatrixArgs) -> Result<Done, CliError> {
    let mut opts = args.options();
    opts.shard = args.shard.map(|s| s.resolve_from_env()).transpose()?;
    let (cells, chosen) = match &args.profile {
        Some(name) => {
            let path = crate::host::profile::locate(name)?;
            let profile = crate::host::profile::load(&path)?;
            crate::host::profile::cells(&profile, &path, &opts, &args.catalog.options())?
        }
        None => {
            // zdtm's tests are listed as built for the first userland; a cell whose build
            // lacks one skips it, saying so.
            let first = args.userlands.first().map(|u| u.trim().to_string());
            let chosen = args
                .catalog
                .options()
                .select_for(&args.scenario, first.as_deref())?;
            (crate::host::matrix::plan_axes(&opts, &chosen)?, chosen)
        }
    };
    if let Some(n) = args.plan {
        let (durations, source) = crate::host::matrix::durations(&opts)?;
        let jobs = crate::host::matrix::jobs(&opts);
        let split = crate::host::matrix::split(&cells, usize::from(n), jobs, &durations);
        print!(
            "{}",
            crate::host::matrix::plan_text(&cells, &split, &source, jobs)
        );
        return Ok(Done::Good);
    }
    let start = Instant::now();
    let top = crate::host::matrix::run(&opts, cells, &chosen)?;
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
        return Ok(Done::Stopped(sig));
    }
    if crate::host::matrix::all_unprepared(&top.report) {
        return Err(CliError::infra(format!(
            "no cell could be prepared; see {}",
            top.dir.join("summary.md").display()
        )));
    }
    Ok(Done::good_unless(top.any_bad()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit::code;
    use crate::model::outcome::Outcome;
    use crate::results::fixtures;
    use crate::results::run::RunReport;
    use std::path::PathBuf;

    #[test]
    fn compare_reads_dirs_and_exits_by_regressions() {
        let t = tempfile::tempdir().unwrap();
        let write = |name: &str, r: &RunReport| {
            let d = t.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("run.json"), serde_json::to_string(r).unwrap()).unwrap();
            d
        };
        let old = fixtures::matrix_report();
        let mut new = old.clone();
        new.cells[0].scenarios[0].outcome = Outcome::Panic;
        let (a, b) = (write("a", &old), write("b", &new));
        let args = |o: PathBuf, n: PathBuf| CompareArgs {
            old: o,
            new: n,
            threshold_pct: 25.0,
            threshold_ms: 50,
            json: true,
        };
        assert_eq!(code(&compare(&args(a.clone(), a.clone()))), 0);
        assert_eq!(code(&compare(&args(a.clone(), b.join("run.json")))), 1);
        let missing = compare(&args(a, t.path().join("missing")));
        assert_eq!(code(&missing), 2);
        assert!(
            missing.unwrap_err().to_string().contains("missing"),
            "the error names the path"
        );
    }

    #[test]
    fn export_refuses_a_bad_origin_as_input() {
        let t = tempfile::tempdir().unwrap();
        let r = export(&ExportArgs {
            kcidb: t.path().join("out"),
            origin: "Bad Origin".into(),
            runs: vec![t.path().into()],
        });
        assert_eq!(code(&r), 2);
        assert!(!t.path().join("out").exists());
    }
}
