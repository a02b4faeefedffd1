//! The `crtest` command line: a thin layer over the library.
//!
//! Exit codes: 0 all good, 1 a scenario failed, 2 bad usage or bad input, 3 infrastructure
//! could not run.

use crate::progress::TerminalReporter;
use crate::results::RunDir;
use crate::scenario::{self, Scenario};
use crate::vm_run::{self, CellOptions, KernelChoice};
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
    Ckptinfo(crate::ckptinfo::CkptinfoArgs),
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Add the scenario files of this directory to the catalog (repeatable).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenario_dirs: Vec<PathBuf>,
    /// Only scenarios with one of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tag: Vec<String>,
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
    /// A bzImage to boot instead of the Debian kernel of the host's suite.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// The kernel's modules (`lib/modules/<release>`), with --kernel.
    #[arg(long, value_name = "DIR", requires = "kernel")]
    pub modules: Option<PathBuf>,
    /// The kernel's .config, with --kernel.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub config: Option<PathBuf>,
    /// Debian suite of the guest userland (default: the host's).
    #[arg(long, value_name = "SUITE")]
    pub suite: Option<String>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Run on this machine's kernel with its criu instead of a VM (root only).
    #[arg(long, conflicts_with_all = ["kernel", "suite"])]
    pub host: bool,
    /// Keep the criu images of passing scenarios too (always kept on failure).
    #[arg(long)]
    pub keep_images: bool,
    /// Show every step and the QEMU command line.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Parses the arguments and runs; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::List(args) => list(&args),
        Command::Run(args) => run(&args),
        Command::Ckptinfo(args) => crate::ckptinfo::run(&args),
    }
}

/// The catalog: the workspace's `scenarios/` plus the user's directories.
pub fn catalog(dirs: &[PathBuf]) -> Result<Vec<Scenario>, scenario::ScenarioError> {
    let mut all = scenario::load_dir(&crate::guest_build::workspace_root().join("scenarios"))?;
    for dir in dirs {
        for s in scenario::load_dir(dir)? {
            if let Some(prev) = all.iter().find(|p| p.name == s.name) {
                return Err(scenario::ScenarioError::Duplicate {
                    name: s.name.clone(),
                    first: prev.source.clone(),
                    second: s.source,
                });
            }
            all.push(s);
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

fn list(args: &CatalogArgs) -> i32 {
    let all = match catalog(&args.scenario_dirs) {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    let chosen = match scenario::select(&all, &[], &args.tag) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    for s in &chosen {
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
    line
}

fn run(args: &RunArgs) -> i32 {
    let all = match catalog(&args.catalog.scenario_dirs) {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    let chosen = match scenario::select(&all, &args.scenario, &args.catalog.tag) {
        Ok(c) if c.is_empty() => {
            return fail(2, &"no scenario matches the selection (see `crtest list`)")
        }
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let mut reporter = TerminalReporter::new(args.verbose);
    let cell = if args.host {
        None
    } else {
        let opts = CellOptions {
            kernel: match &args.kernel {
                None => KernelChoice::Debian,
                Some(k) => KernelChoice::Local {
                    bzimage: k.clone(),
                    modules: args.modules.clone(),
                    config: args.config.clone(),
                },
            },
            suite: args.suite.clone(),
            memory_mib: args.memory,
            cpus: args.cpus,
        };
        match vm_run::prepare(&opts, &mut reporter) {
            Ok(c) => Some(vm_run::Cell {
                keep_images: args.keep_images,
                ..c
            }),
            Err(e) => return fail(e.exit_code(), &e),
        }
    };
    let mut run = match RunDir::create(&args.results) {
        Ok(r) => r,
        Err(e) => return fail(3, &e),
    };
    eprintln!("results: {}", run.dir.display());
    let res = match &cell {
        None => crate::host_run::run_host(&chosen, args.keep_images, &mut run, &mut reporter)
            .map_err(|e| (e.exit_code(), e.to_string())),
        Some(cell) => {
            vm_run::run_cell(cell, &chosen, &mut run, &mut reporter).map_err(|e| (3, e.to_string()))
        }
    };
    if let Err(e) = run.finish() {
        return fail(3, &e);
    }
    if let Err((code, message)) = res {
        return fail(code, &message);
    }
    for c in &run.report.cells {
        eprint!("\n{}", crate::report::cell_summary(c));
    }
    eprintln!("results: {}", run.dir.display());
    if run.any_bad() {
        1
    } else {
        0
    }
}

fn fail(code: i32, e: &dyn std::fmt::Display) -> i32 {
    eprintln!("crtest: {e}");
    code
}
