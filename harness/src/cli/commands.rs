//! The commands that run guests (`run`, `doctor`, `repro`, `bench`) through
//! [`pipeline`](crate::cli::pipeline), and `list` and `setup`.

use crate::cli::args::{BenchArgs, CatalogArgs, DoctorArgs, ReproArgs, RunArgs, SetupArgs};
use crate::cli::exit::{CliError, Done};
use crate::cli::pipeline;
use crate::host::catalog::{catalog, CatalogOptions};
use crate::host::vm_run;
use crate::model::scenario::{self, Scenario};
use crate::report::progress::{Tally, TerminalReporter};
use crate::results::run::RunDir;

/// `crtest setup`: the host packages of the main job (or the tests), installed or listed.
pub fn setup(args: &SetupArgs) -> Result<Done, CliError> {
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
        return Ok(Done::Good);
    }
    hostdeps::ensure(&tools)?;
    eprintln!(
        "crtest: the host has every package it needs: {}",
        hostdeps::packages(&tools).join(" ")
    );
    Ok(Done::Good)
}

/// `crtest list`: every scenario (`noauto` ones too, marked by their tag), by tag only.
pub fn list(args: &CatalogArgs) -> Result<Done, CliError> {
    let mut all = catalog(&args.scenario_dirs)?;
    all.extend(args.options().zdtm_for(None)?);
    if !args.modes.is_empty() {
        all = scenario::in_modes(&all, &args.modes);
    }
    let chosen = all
        .iter()
        .filter(|s| args.tag.is_empty() || s.tags.iter().any(|t| args.tag.contains(t)));
    for s in chosen {
        println!("{}", list_line(s));
    }
    Ok(Done::Good)
}

/// One line of `crtest list`: name, what runs, tags, requirements, expectation.
pub fn list_line(s: &Scenario) -> String {
    let r = &s.requires;
    let mut needs: Vec<String> = Vec::new();
    needs.extend(r.kernel_config.iter().cloned());
    needs.extend(r.criu_features.iter().map(|f| format!("criu:{f}")));
    needs.extend(r.criu_options.iter().map(|o| format!("criu:{o}")));
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
            " expect fail({}{})",
            s.expect.class.as_deref().unwrap_or("any"),
            s.expect
                .criu
                .as_deref()
                .map(|c| format!(", criu {c}"))
                .unwrap_or_default()
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

/// The run's outcome: stopped by a signal, or bad when a scenario is.
fn done(run: &RunDir) -> Done {
    if let Some(sig) = crate::host::interrupt::requested() {
        eprintln!("crtest: stopped by {}", crate::host::interrupt::name(sig));
        return Done::Stopped(sig);
    }
    Done::good_unless(run.any_bad())
}

/// `crtest run`: the chosen scenarios on a cell (or on the host), in one or several guests,
/// once or `--repeat` times.
pub fn run(args: &RunArgs) -> Result<Done, CliError> {
    let choice = args.cell.cell.spec().choice();
    let suite = choice.as_ref().ok().map(|c| c.userland.clone());
    let chosen = args
        .catalog
        .options()
        .select_for(&args.scenario, suite.as_deref())?;
    let mut reporter = TerminalReporter::new(args.verbose);
    if args.host && !nix::unistd::geteuid().is_root() {
        return Err(crate::host::host_run::HostError::NotRoot.into());
    }
    // Before minutes of preparing images: can the results be written at all?
    crate::results::run::check_writable(&args.results)?;
    let cell = match args.host {
        true => None,
        false => Some(vm_run::Cell {
            keep_images: args.keep_images,
            ..pipeline::prepare_for(
                &args.cell,
                args.catalog.zdtm.clone(),
                &chosen,
                &mut reporter,
            )?
        }),
    };
    if let Some(secs) = args.timeout_s {
        crate::host::interrupt::after(std::time::Duration::from_secs(secs));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Guests are dealt scenarios by their last durations on this cell (the results' history).
    let durations = crate::report::durations::Durations::over_reference(
        crate::report::durations::Durations::of_history(&args.results),
    );
    let cell_key = match &choice {
        Ok(c) if !args.host => crate::results::run::cell_id(&c.kernel_label, &c.userland),
        _ => String::new(),
    };
    let once = |run: &mut RunDir| -> Result<(), CliError> {
        match &cell {
            None => crate::host::host_run::run_host(&chosen, args.keep_images, run, &mut reporter)?,
            Some(cell) if jobs > 1 && chosen.len() > 1 => {
                let costs = crate::host::parallel::Costs {
                    durations: &durations,
                    cell: &cell_key,
                };
                crate::host::parallel::run_cell(cell, &chosen, jobs, &costs, run, args.verbose)?
            }
            Some(cell) => {
                let mut reporter =
                    TerminalReporter::new(args.verbose).counting(Tally::new(chosen.len()));
                vm_run::run_cell(cell, &chosen, &[], run, &mut reporter)?
            }
        }
        Ok(())
    };
    let (kernel, userland) = match (&cell, choice) {
        (Some(_), Ok(c)) => (c.kernel_label, c.userland),
        _ => ("host".to_string(), "host".to_string()),
    };
    let (mut run, res) = pipeline::in_run_dir(&args.results, |run| {
        eprintln!("results: {}", run.dir.display());
        let res = if args.repeat > 1 {
            crate::host::repeat::run_rounds(run, args.repeat, once)
        } else {
            let mut once = once;
            once(run)
        };
        run.tag_results(&chosen);
        res
    })?;
    crate::report::views::record_single_run(&mut run, &kernel, &userland);
    res?;
    for c in &run.report.cells {
        eprint!("\n{}", crate::report::text::cell_summary(c));
    }
    eprintln!("results: {}", run.dir.display());
    Ok(done(&run))
}

/// `crtest doctor`: the compatibility verdict of a cell (or of the host).
pub fn doctor(args: &DoctorArgs) -> Result<Done, CliError> {
    let mut reporter = TerminalReporter::new(false);
    let evidence = if args.host {
        crate::host::host_run::doctor_evidence()?
    } else {
        let cell = pipeline::prepare(&args.cell, None, &mut reporter)?;
        let probes = crate::diagnose::doctor::probes();
        let mut run = pipeline::run_cell(&cell, &[], &probes, &args.results, &mut reporter)?;
        let report = run.report.cells.remove(0);
        if report.probes.is_empty() {
            return Err(CliError::infra(format!(
                "the guest ran no probe; see {}",
                run.dir.join("console.log").display()
            )));
        }
        let oci = match args.oci {
            true => Some(vm_run::oci_evidence(&cell)?),
            false => None,
        };
        crate::diagnose::doctor::Evidence {
            oci,
            ..vm_run::doctor_evidence(&cell, report)
        }
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
    Ok(Done::good_unless(!report.verdict.compatible))
}

/// `crtest repro NAME`: one scenario again, everything kept, and where everything is.
pub fn repro(args: &ReproArgs) -> Result<Done, CliError> {
    let catalog = CatalogOptions {
        scenario_dirs: args.scenario_dirs.clone(),
        zdtm: args.zdtm.clone(),
        ..CatalogOptions::default()
    };
    let suite = args.cell.cell.spec().choice().ok().map(|c| c.userland);
    let chosen = catalog.select_for(std::slice::from_ref(&args.scenario), suite.as_deref())?;
    let mut reporter = TerminalReporter::new(true);
    let cell = vm_run::Cell {
        keep_images: true,
        ..pipeline::prepare(&args.cell, args.zdtm.clone(), &mut reporter)?
    };
    let run = pipeline::run_cell(&cell, &chosen, &[], &args.results, &mut reporter)?;
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
    Ok(Done::good_unless(run.any_bad()))
}

/// `crtest bench`: the timings of the end-to-end issue, over several repetitions.
pub fn bench(args: &BenchArgs) -> Result<Done, CliError> {
    let all = catalog(&[])?;
    let chosen = scenario::select(&all, &args.scenario, &[])?;
    let big: Vec<Scenario> = match all.iter().find(|s| s.name == args.big) {
        None => Vec::new(),
        Some(b) => args
            .big_modes
            .iter()
            .filter_map(|m| b.in_mode(*m))
            .map(|mut s| {
                // criu read from the disk once before the timings, as a mode's feature
                // probe would read it, so that no mode pays for the first load alone.
                s.before.push(
                    ["sh", "-c", "criu check >/dev/null 2>&1; true"]
                        .map(String::from)
                        .to_vec(),
                );
                s
            })
            .collect(),
    };
    let mut reporter = TerminalReporter::new(false);
    let opts = args.cell.options(None)?;
    let cell = vm_run::prepare(&opts, &mut reporter)?;
    let dir = args
        .results
        .join(format!("bench-{}", crate::results::run::new_run_id()));
    std::fs::create_dir_all(&dir).map_err(|source| {
        CliError::infra(crate::results::run::ResultsError::Write {
            path: dir.clone(),
            source,
        })
    })?;
    let r = crate::host::bench::run(&cell, &chosen, &big, args.reps, &dir, &mut reporter)?;
    print!("{}", crate::host::bench::render(&r));
    eprintln!("bench: {}", dir.join("bench.json").display());
    Ok(Done::Good)
}
