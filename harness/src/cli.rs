//! The `crtest` command line: a thin layer over the library.
//!
//! Exit codes: 0 all good, 1 a scenario failed, 2 bad usage or bad input, 3 infrastructure
//! could not run.

use crate::host::catalog::{catalog, CatalogArgs};
use crate::host::vm_run::{self, CellOptions};
use crate::model::scenario::{self, Scenario};
use crate::report::progress::TerminalReporter;
use crate::results::run::RunDir;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "crtest",
    version,
    about = "Checkpoint/restart test and compatibility harness"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios on a cell (a kernel and a guest userland in QEMU), or on the host.
    Run(RunArgs),
    /// List the scenarios with their tags.
    List(CatalogArgs),
    /// Read a CRIU image directory: the task tree, versions, statistics, errors in its logs.
    Ckptinfo(crate::ckpt::info::CkptinfoArgs),
    /// Do this kernel and these C/R tools work together? Versions, kernel options,
    /// `criu check`, known incompatibilities, and a verdict (exit 0 compatible, 1 not).
    Doctor(DoctorArgs),
    /// Rerun one scenario keeping everything (criu -v4 logs, images, full console) and
    /// print its failure report and where everything is.
    Repro(ReproArgs),
    /// Measure boot, per-scenario overhead, a large checkpoint, and one boot for all
    /// scenarios against one boot each, over several repetitions.
    Bench(BenchArgs),
    /// Run the scenarios on every kernel x userland cell, several guests at once; writes
    /// run.json, junit.xml, report.html and summary.md.
    Matrix(crate::host::matrix::MatrixArgs),
    /// What changed between two runs: regressions (exit 1), fixes, new skips, timing.
    Compare(crate::report::compare::CompareArgs),
    /// Runs in other formats: `--kcidb DIR` writes a KernelCI KCIDB document.
    Export(crate::report::kcidb::ExportArgs),
    /// Join shard runs (`matrix --shard i/n`) into one run directory.
    Merge(crate::report::merge::MergeArgs),
    /// Kernels for the guest: `kernel build --source DIR` builds one with the required options.
    Kernel(crate::host::kernel_build::KernelArgs),
    /// Install the host packages the main job (or, with --tests, the test suite) needs; as
    /// non-root, print the apt-get command instead (exit 3).
    Setup(SetupArgs),
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The packages of every test of the workspace, not only the main job's.
    #[arg(long)]
    pub tests: bool,
    /// Only print the packages, one a line; install nothing.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub cell: CellFlags,
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 3)]
    pub reps: u32,
    /// The scenarios to time (default: the three of the end-to-end issue).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "counterloop,fileio1,ptree1"
    )]
    pub scenario: Vec<String>,
    /// A large-memory scenario whose checkpoint and restore are timed (skipped if absent).
    #[arg(long, default_value = "bigmem")]
    pub big: String,
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub cell: CellFlags,
    /// Check this machine's kernel and criu instead of a VM (root only).
    #[arg(long, conflicts_with_all = ["kernel", "userland", "criu"])]
    pub host: bool,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the doctor's run directory goes (console log, probe outputs).
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReproArgs {
    /// The scenario to rerun.
    pub scenario: String,
    #[command(flatten)]
    pub cell: CellFlags,
    /// Add the scenario files of this directory to the catalog (repeatable).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenario_dirs: Vec<PathBuf>,
    /// Add the zdtm tests of this CRIU source tree (see `run --zdtm`).
    #[arg(long, value_name = "DIR")]
    pub zdtm: Option<PathBuf>,
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
}

/// Which cell: the kernel and the guest userland.
#[derive(Debug, Args)]
pub struct CellFlags {
    #[command(flatten)]
    pub cell: crate::host::cell_choice::CellArgs,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// A guest of its own for every scenario, each resumed from the saved ready state (or
    /// booted, with --boot-each).
    #[arg(long)]
    pub pristine: bool,
    /// Boot every guest; do not save the ready guest nor resume from a saved state.
    #[arg(long)]
    pub boot_each: bool,
}

impl CellFlags {
    /// How the cell's guests start, as these flags say.
    pub fn guests(&self, cell: vm_run::Cell) -> vm_run::Cell {
        vm_run::Cell {
            pristine: self.pristine,
            saved_vms: (!self.boot_each).then(Default::default),
            ..cell
        }
    }

    /// The cell options; an error (bad usage) names the option that is wrong.
    pub fn options(&self) -> Result<CellOptions, String> {
        let choice = self.cell.choice()?;
        Ok(CellOptions {
            kernel: choice.kernel,
            suite: Some(choice.userland),
            criu: choice.criu,
            zdtm: None,
            memory_mib: self.memory,
            cpus: self.cpus,
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// Only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Where run directories go; `latest` links to the newest.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    #[command(flatten)]
    pub cell: CellFlags,
    /// Run on this machine's kernel with its criu instead of a VM (root only).
    #[arg(long, conflicts_with_all = ["kernel", "userland", "criu"])]
    pub host: bool,
    /// Stop the whole run after this many seconds; unfinished scenarios are marked.
    #[arg(long, value_name = "SECONDS")]
    pub timeout_s: Option<u64>,
    /// Guests at once: the scenarios are dealt into this many shards, each in its own VM
    /// with one vCPU (default: the number of cores; 1 = one guest with --cpus vCPUs).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Keep the criu images of passing scenarios too (always kept on failure).
    #[arg(long)]
    pub keep_images: bool,
    /// Run the selection this many times, each round in fresh guests (`rounds/<i>/`); a
    /// scenario that passed on some rounds only is `flaky`, every attempt kept.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Show every step and the QEMU command line.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Parses the arguments and runs; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    crate::host::interrupt::install();
    match cli.command {
        Command::List(args) => list(&args),
        Command::Run(args) => run(&args),
        Command::Ckptinfo(args) => crate::ckpt::info::run(&args),
        Command::Doctor(args) => doctor(&args),
        Command::Repro(args) => repro(&args),
        Command::Bench(args) => bench(&args),
        Command::Matrix(args) => crate::host::matrix::run(&args),
        Command::Compare(args) => crate::report::compare::run(&args),
        Command::Merge(args) => crate::report::merge::run(&args),
        Command::Export(args) => crate::report::kcidb::run(&args),
        Command::Kernel(args) => crate::host::kernel_build::run(&args),
        Command::Setup(args) => setup(&args),
    }
}

fn setup(args: &SetupArgs) -> i32 {
    use crtest_vm::hostdeps;
    let tools = if args.tests {
        hostdeps::test_tools()
    } else {
        hostdeps::DEFAULT_TOOLS.to_vec()
    };
    if args.list {
        for p in hostdeps::packages(&tools) {
            println!("{p}");
        }
        return 0;
    }
    match hostdeps::ensure(&tools) {
        Ok(()) => {
            eprintln!(
                "crtest: the host has every package it needs: {}",
                hostdeps::packages(&tools).join(" ")
            );
            0
        }
        Err(e) => fail(3, &e),
    }
}

fn list(args: &CatalogArgs) -> i32 {
    let mut all = match catalog(&args.scenario_dirs) {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    if let Some(tree) = &args.zdtm {
        match crate::host::catalog::zdtm_scenarios(tree, None, args.zdtm_runner == "zdtm.py") {
            Ok(z) => all.extend(z),
            Err((code, e)) => return fail(code, &format!("--zdtm: {e}")),
        }
    }
    // Everything, `noauto` ones too (marked by their tag), filtered by --tag only.
    let chosen: Vec<&Scenario> = all
        .iter()
        .filter(|s| args.tag.is_empty() || s.tags.iter().any(|t| args.tag.contains(t)))
        .collect();
    for s in chosen {
        println!("{}", list_line(s));
    }
    0
}

/// One line of `crtest list`: name, what runs, tags, requirements, expectation.
pub fn list_line(s: &Scenario) -> String {
    let r = &s.requires;
    let mut needs: Vec<String> = Vec::new();
    needs.extend(r.kernel_config.iter().cloned());
    needs.extend(r.criu_features.iter().map(|f| format!("criu:{f}")));
    needs.extend(r.modules.iter().map(|m| format!("module:{m}")));
    for (what, v) in [
        ("kernel", &r.min_kernel),
        ("criu", &r.min_criu),
        ("lxc", &r.min_lxc),
    ] {
        if let Some(v) = v {
            needs.push(format!("{what}>={v}"));
        }
    }
    let mut line = format!("{:<28} {:<14} [{}]", s.name, s.what(), s.tags.join(","));
    if !needs.is_empty() {
        line.push_str(&format!(" requires {}", needs.join(",")));
    }
    if s.expect.outcome == scenario::ExpectedOutcome::Fail {
        line.push_str(&format!(
            " expect fail({})",
            s.expect.class.as_deref().unwrap_or("any")
        ));
    }
    line.push_str(&format!("  {}", s.description));
    if let scenario::Target::Zdtm(scenario::ZdtmTest {
        unsupported: Some(why),
        ..
    }) = &s.target
    {
        line.push_str(&format!(" (skipped: {why})"));
    }
    line
}

fn run(args: &RunArgs) -> i32 {
    let suite = args.cell.cell.choice().ok().map(|c| c.userland);
    let chosen = match args.catalog.select_for(&args.scenario, suite.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut reporter = TerminalReporter::new(args.verbose);
    if args.host && !nix::unistd::geteuid().is_root() {
        let e = crate::host::host_run::HostError::NotRoot;
        return fail(e.exit_code(), &e);
    }
    // Before minutes of preparing images: can the results be written at all?
    if let Err(e) = crate::results::run::check_writable(&args.results) {
        return fail(3, &e);
    }
    let cell = if args.host {
        None
    } else {
        match vm_run::prepare(
            &match args.cell.options() {
                Ok(o) => CellOptions {
                    zdtm: args.catalog.zdtm.clone(),
                    ..o
                },
                Err(e) => return fail(2, &e),
            },
            &mut reporter,
        ) {
            Ok(c) => Some(vm_run::Cell {
                keep_images: args.keep_images,
                ..args.cell.guests(c)
            }),
            Err(e) => return fail(e.exit_code(), &e),
        }
    };
    let mut run = match RunDir::create(&args.results) {
        Ok(r) => r,
        Err(e) => return fail(3, &e),
    };
    eprintln!("results: {}", run.dir.display());
    if let Some(secs) = args.timeout_s {
        crate::host::interrupt::after(std::time::Duration::from_secs(secs));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut once = |run: &mut RunDir| match &cell {
        None => crate::host::host_run::run_host(&chosen, args.keep_images, run, &mut reporter)
            .map_err(|e| (e.exit_code(), e.to_string())),
        Some(cell) if jobs > 1 && chosen.len() > 1 => {
            crate::host::parallel::run_cell(cell, &chosen, jobs, run, args.verbose)
                .map_err(|e| (3, e.to_string()))
        }
        Some(cell) => {
            let mut reporter = TerminalReporter::new(args.verbose)
                .counting(crate::report::progress::Tally::new(chosen.len()));
            vm_run::run_cell(cell, &chosen, &[], run, &mut reporter).map_err(|e| (3, e.to_string()))
        }
    };
    let res = if args.repeat > 1 {
        crate::host::repeat::run_rounds(&mut run, args.repeat, once)
    } else {
        once(&mut run)
    };
    run.tag_results(&chosen);
    if let Err(e) = crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by()) {
        return fail(3, &e);
    }
    let (kernel, userland) = match (&cell, args.cell.cell.choice()) {
        (Some(_), Ok(c)) => (c.kernel_label, c.userland),
        _ => ("host".to_string(), "host".to_string()),
    };
    crate::report::views::record_single_run(&mut run, &kernel, &userland);
    if let Err((code, message)) = res {
        return fail(code, &message);
    }
    for c in &run.report.cells {
        eprint!("\n{}", crate::report::text::cell_summary(c));
    }
    eprintln!("results: {}", run.dir.display());
    if let Some(sig) = crate::host::interrupt::requested() {
        eprintln!("crtest: stopped by {}", crate::host::interrupt::name(sig));
        return 128 + sig;
    }
    if run.any_bad() {
        1
    } else {
        0
    }
}

fn doctor(args: &DoctorArgs) -> i32 {
    let mut reporter = TerminalReporter::new(false);
    let evidence = if args.host {
        match crate::host::host_run::doctor_evidence() {
            Ok(e) => e,
            Err(e) => return fail(e.exit_code(), &e),
        }
    } else {
        let cell = match vm_run::prepare(
            &match args.cell.options() {
                Ok(o) => o,
                Err(e) => return fail(2, &e),
            },
            &mut reporter,
        ) {
            Ok(c) => args.cell.guests(c),
            Err(e) => return fail(e.exit_code(), &e),
        };
        let mut run = match RunDir::create(&args.results) {
            Ok(r) => r,
            Err(e) => return fail(3, &e),
        };
        let res = vm_run::run_cell(
            &cell,
            &[],
            &crate::diagnose::doctor::probes(),
            &mut run,
            &mut reporter,
        );
        let _ = crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by());
        if let Err(e) = res {
            return fail(3, &e);
        }
        let report = run.report.cells.remove(0);
        if report.probes.is_empty() {
            return fail(
                3,
                &format!(
                    "the guest ran no probe; see {}",
                    run.dir.join("console.log").display()
                ),
            );
        }
        vm_run::doctor_evidence(&cell, report)
    };
    let report = crate::diagnose::doctor::analyze(&evidence);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print!("{}", crate::diagnose::doctor::render(&report));
    }
    if report.verdict.compatible {
        0
    } else {
        1
    }
}

fn repro(args: &ReproArgs) -> i32 {
    let catalog = CatalogArgs {
        scenario_dirs: args.scenario_dirs.clone(),
        tag: vec![],
        zdtm: args.zdtm.clone(),
        zdtm_runner: "native".into(),
    };
    let suite = args.cell.cell.choice().ok().map(|c| c.userland);
    let chosen = match catalog.select_for(std::slice::from_ref(&args.scenario), suite.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut reporter = TerminalReporter::new(true);
    let cell = match vm_run::prepare(
        &match args.cell.options() {
            Ok(o) => CellOptions {
                zdtm: args.zdtm.clone(),
                ..o
            },
            Err(e) => return fail(2, &e),
        },
        &mut reporter,
    ) {
        Ok(c) => vm_run::Cell {
            keep_images: true,
            ..args.cell.guests(c)
        },
        Err(e) => return fail(e.exit_code(), &e),
    };
    let mut run = match RunDir::create(&args.results) {
        Ok(r) => r,
        Err(e) => return fail(3, &e),
    };
    let res = vm_run::run_cell(&cell, &chosen, &[], &mut run, &mut reporter);
    let _ = crate::report::views::finish(&mut run, crate::host::interrupt::stopped_by());
    if let Err(e) = res {
        return fail(3, &e);
    }
    let cell_report = &run.report.cells[0];
    eprint!("\n{}", crate::report::text::cell_summary(cell_report));
    eprintln!("\nkept:");
    eprintln!("  run            {}", run.dir.display());
    eprintln!("  run.json       {}", run.dir.join("run.json").display());
    eprintln!("  console        {}", run.dir.join("console.log").display());
    for s in &cell_report.scenarios {
        for a in &s.artifacts {
            eprintln!("  {:<14} {}", s.name, run.dir.join(a).display());
        }
        for a in s.artifacts.iter().filter(|a| a.contains("/images-")) {
            eprintln!(
                "  read it with: crtest ckptinfo -e -v {}",
                run.dir.join(a).display()
            );
        }
    }
    if run.any_bad() {
        1
    } else {
        0
    }
}

fn bench(args: &BenchArgs) -> i32 {
    let all = match catalog(&[]) {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    let chosen = match scenario::select(&all, &args.scenario, &[]) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let big = all.iter().find(|s| s.name == args.big);
    let mut reporter = TerminalReporter::new(false);
    let opts = match args.cell.options() {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let cell = match vm_run::prepare(&opts, &mut reporter) {
        Ok(c) => c,
        Err(e) => return fail(e.exit_code(), &e),
    };
    let dir = args
        .results
        .join(format!("bench-{}", crate::results::run::new_run_id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(3, &format!("cannot create {}: {e}", dir.display()));
    }
    match crate::host::bench::run(&cell, &chosen, big, args.reps, &dir, &mut reporter) {
        Ok(r) => {
            print!("{}", crate::host::bench::render(&r));
            eprintln!("bench: {}", dir.join("bench.json").display());
            0
        }
        Err(e) => fail(3, &e),
    }
}

fn fail(code: i32, e: &dyn std::fmt::Display) -> i32 {
    eprintln!("crtest: {e}");
    code
}
