//! One trial per scenario, each checked in a real guest: a real kernel in QEMU, the real
//! criu of the Debian userland. All selected scenarios share one boot (run on the first trial
//! that needs it); each trial then reports its own scenario's outcome and failure report.
//!
//! When the images cannot be had (no QEMU, no network for the first build), the trials are
//! reported ignored and the reason is printed, never passed. With `CRTEST_REQUIRE_VM=1` (CI)
//! that becomes a failure instead.

use crtest::outcome::ScenarioResult;
use crtest::progress::TerminalReporter;
use crtest::results::RunDir;
use crtest::scenario::Scenario;
use crtest::vm_run::{self, CellOptions, KernelChoice};
use libtest_mimic::{Arguments, Failed, Trial};
use std::sync::{Arc, Mutex, OnceLock};

type Shared = Arc<OnceLock<Result<Vec<ScenarioResult>, String>>>;

fn main() {
    let args = Arguments::from_args();
    let scenarios = crtest::cli::catalog(&[]).expect("the shipped scenarios load");
    let name = |s: &Scenario| format!("vm::{}", s.name);
    let selected: Vec<Scenario> = scenarios
        .iter()
        .filter(|s| matches_filter(&args, &name(s)))
        .cloned()
        .collect();

    let mut unavailable = None;
    let cell = if args.list || selected.is_empty() {
        None
    } else {
        let opts = CellOptions {
            kernel: KernelChoice::Debian,
            suite: None,
            memory_mib: 2048,
            cpus: 2,
        };
        match vm_run::prepare(&opts, &mut TerminalReporter::new(false)) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("vm trials: the guest cannot be had: {e}");
                unavailable = Some(e.to_string());
                None
            }
        }
    };
    let require = std::env::var("CRTEST_REQUIRE_VM").is_ok_and(|v| v == "1");
    let cell = Arc::new(Mutex::new(cell));
    let shared: Shared = Arc::new(OnceLock::new());
    let selected = Arc::new(selected);

    let trials = scenarios
        .iter()
        .map(|s| {
            let (cell, shared, selected) = (cell.clone(), shared.clone(), selected.clone());
            let sc_name = s.name.clone();
            let why = unavailable.clone();
            let trial = Trial::test(name(s), move || {
                if let Some(why) = why {
                    return Err(Failed::from(format!("no guest: {why}")));
                }
                let results = shared.get_or_init(|| run_all(&cell, &selected));
                let results = results.as_ref().map_err(|e| Failed::from(e.clone()))?;
                let r = results
                    .iter()
                    .find(|r| r.name == sc_name)
                    .ok_or_else(|| Failed::from(format!("{sc_name}: no result came back")))?;
                if r.outcome.is_bad() {
                    let mut msg = crtest::report::scenario_line(r);
                    if let Some(f) = &r.failure {
                        msg.push('\n');
                        msg.push_str(&crtest::report::failure_block(f));
                    }
                    return Err(msg.into());
                }
                Ok(())
            });
            trial.with_ignored_flag(unavailable.is_some() && !require)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn matches_filter(args: &Arguments, name: &str) -> bool {
    let hit = |f: &str| if args.exact { name == f } else { name.contains(f) };
    let included = args.filter.as_deref().is_none_or(hit);
    let skipped = args.skip.iter().any(|s| hit(s));
    included && !skipped && !args.ignored
}

fn run_all(
    cell: &Mutex<Option<vm_run::Cell>>,
    scenarios: &[Scenario],
) -> Result<Vec<ScenarioResult>, String> {
    let guard = cell.lock().map_err(|_| "cell lock poisoned".to_string())?;
    let cell = guard.as_ref().ok_or("no cell")?;
    let root = crtest::guest_build::workspace_root().join("target/vm-test-results");
    let mut run = RunDir::create(&root).map_err(|e| e.to_string())?;
    eprintln!("vm trials: results in {}", run.dir.display());
    vm_run::run_cell(cell, scenarios, &mut run, &mut TerminalReporter::new(false))
        .map_err(|e| e.to_string())?;
    run.finish().map_err(|e| e.to_string())?;
    Ok(run.report.cells.remove(0).scenarios)
}
