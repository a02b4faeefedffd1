//! The `crtest` command line, the only room that knows clap and exit codes: `args` (every
//! option and the library options it becomes), `commands` (what runs guests: run, list,
//! doctor, repro, bench, setup), `tools` (what reads and writes results: ckptinfo, compare,
//! merge, export, matrix, kernel), `migrate` (one pair of cells), `bisect` (a tree to its commit), `pipeline` (prepare -> run directory -> run -> finish),
//! `exit` (the one mapping to exit codes).
//!
//! Exit codes: 0 all good, 1 a scenario failed, 2 bad usage or bad input, 3 infrastructure
//! could not run, 128+N stopped by signal N.

pub mod args;
pub mod bisect;
pub mod commands;
pub mod exit;
pub mod migrate;
pub mod pipeline;
pub mod tools;

pub use args::Cli;
pub use commands::list_line;

use args::Command;
use clap::Parser;

/// Parses the arguments and runs; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    crate::host::interrupt::install();
    let result = match cli.command {
        Command::List(args) => commands::list(&args),
        Command::Run(args) => commands::run(&args),
        Command::Doctor(args) => commands::doctor(&args),
        Command::Repro(args) => commands::repro(&args),
        Command::Bench(args) => commands::bench(&args),
        Command::Setup(args) => commands::setup(&args),
        Command::Ckptinfo(args) => tools::ckptinfo(&args),
        Command::Matrix(args) => tools::matrix(&args),
        Command::Migrate(args) => migrate::migrate(&args),
        Command::Compare(args) => tools::compare(&args),
        Command::Merge(args) => tools::merge(&args),
        Command::Durations(args) => tools::durations(&args),
        Command::Export(args) => tools::export(&args),
        Command::Kernel(args) => tools::kernel(&args),
        Command::Bisect(args) => bisect::bisect(&args),
    };
    if let Err(e) = &result {
        eprintln!("crtest: {e}");
    }
    exit::code(&result)
}
