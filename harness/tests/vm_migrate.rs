//! Migrations in real guests: two guests of the default cell at once, joined by their private
//! link, each scenario dumped in one and restored and verified in the other, in every way a
//! process moves (images through the host, a page server, pre-dumps, lazy pages), and with
//! faults in the way (the images cut short, the link cut): a clear verdict, and the source's
//! tree alive and verified after a move that failed.
//!
//! When the guest cannot be had the trials are reported ignored with the reason, never
//! passed; with `CRTEST_REQUIRE_VM=1` (CI) that is a failure.

mod common {
    pub mod cell;
}

use crtest::host::migrate::{run_pair, Pair};
use crtest::host::vm_run;
use crtest::model::migration::{Fault, MoveMode};
use crtest::model::outcome::{Outcome, ScenarioResult};
use crtest::report::progress::TerminalReporter;
use crtest::results::run::RunDir;
use libtest_mimic::{Arguments, Failed, Trial};
use std::sync::{Arc, Mutex};

/// One trial: the scenarios, the mode, the fault, the target's QEMU CPU model (`None`: the
/// source's), and what each result must show.
struct Case {
    name: &'static str,
    scenarios: &'static [&'static str],
    mode: &'static str,
    fault: Option<Fault>,
    to_cpu: Option<&'static str>,
    check: fn(&ScenarioResult) -> Result<(), String>,
}

const CASES: &[Case] = &[
    Case {
        name: "images",
        scenarios: &["counterloop", "ptree1"],
        mode: "images",
        fault: None,
        to_cpu: None,
        check: moved_through_the_host,
    },
    Case {
        name: "page_server",
        scenarios: &["fileio1"],
        mode: "page-server",
        fault: None,
        to_cpu: None,
        check: pages_over_the_link,
    },
    Case {
        name: "pre_dump",
        scenarios: &["counterloop"],
        mode: "pre-dump=2",
        fault: None,
        to_cpu: None,
        check: two_pre_dumps_then_the_dump,
    },
    Case {
        name: "lazy",
        scenarios: &["bigmem-small"],
        mode: "lazy",
        fault: None,
        to_cpu: None,
        check: pages_served_lazily,
    },
    Case {
        name: "fault_corrupt_images",
        scenarios: &["counterloop"],
        mode: "images",
        fault: Some(Fault::CorruptImages),
        to_cpu: None,
        check: refused_by_the_target,
    },
    Case {
        name: "fault_link_cut",
        scenarios: &["ptree1"],
        mode: "page-server",
        fault: Some(Fault::LinkCut),
        to_cpu: None,
        check: dump_cannot_reach_the_page_server,
    },
    Case {
        name: "fault_page_server_killed",
        scenarios: &["bigmem-small"],
        mode: "page-server",
        fault: Some(Fault::PageServerKilled),
        to_cpu: None,
        check: page_server_gone,
    },
    // TCG's `max` has AVX2; SandyBridge has AVX, not AVX2: criu's CPU check lets the images
    // through, and the restored process dies of SIGILL in an AVX2 routine its libc chose
    // at its start.
    Case {
        name: "cpu_without_avx2",
        scenarios: &["fpu"],
        mode: "images",
        fault: None,
        to_cpu: Some("SandyBridge"),
        check: named_the_missing_cpu_features,
    },
];

fn main() {
    let args = Arguments::from_args();
    let wanted = CASES.iter().any(|c| {
        let name = format!("vm_migrate::{}", c.name);
        args.filter.as_deref().is_none_or(|f| name.contains(f)) && !args.list
    });
    let mut unavailable = None;
    let cell = match wanted {
        false => None,
        true => match common::cell::default_cell() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("vm_migrate: the guest cannot be had: {e}");
                unavailable = Some(e);
                None
            }
        },
    };
    let require = std::env::var("CRTEST_REQUIRE_VM").is_ok_and(|v| v == "1");
    // One migration at a time: each runs two guests.
    let cell = Arc::new(Mutex::new(cell));
    let trials = CASES
        .iter()
        .map(|case| {
            let cell = cell.clone();
            let why = unavailable.clone();
            Trial::test(format!("vm_migrate::{}", case.name), move || {
                if let Some(why) = why {
                    return Err(Failed::from(format!("no guest: {why}")));
                }
                let guard = cell.lock().map_err(|_| "cell lock poisoned")?;
                let cell = guard.as_ref().ok_or("no cell")?;
                run_case(cell, case).map_err(Failed::from)
            })
            .with_ignored_flag(unavailable.is_some() && !require)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Moves the case's scenarios from one guest of `cell` to another and checks each result.
fn run_case(cell: &vm_run::Cell, case: &Case) -> Result<(), String> {
    let all = crtest::host::catalog::catalog(&[]).map_err(|e| e.to_string())?;
    let names: Vec<String> = case.scenarios.iter().map(|s| s.to_string()).collect();
    let chosen = crtest::model::scenario::select(&all, &names, &[]).map_err(|e| e.to_string())?;
    let results = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut run = RunDir::create(results.path()).map_err(|e| e.to_string())?;
    let other;
    let target = match case.to_cpu {
        None => cell,
        Some(model) => {
            other = vm_run::Cell {
                cpu: Some(model.into()),
                id: format!("{}+cpu-{model}", cell.id),
                ..cell.clone()
            };
            &other
        }
    };
    let pair = Pair {
        source: cell,
        target,
        mode: case.mode.parse::<MoveMode>().map_err(|e| e.to_string())?,
        fault: case.fault,
        dir: String::new(),
    };
    run_pair(&pair, &chosen, &mut run, &mut TerminalReporter::new(false))
        .map_err(|e| e.to_string())?;
    let report = &run.report.cells[0];
    if report.migration.as_ref().map(|m| m.mode.as_str()) != Some(&pair.mode.to_string()) {
        return Err(format!(
            "the pair's cell does not name its mode: {:?}",
            report.migration
        ));
    }
    let mut errors = Vec::new();
    for name in case.scenarios {
        match report.scenarios.iter().find(|r| r.name == *name) {
            None => errors.push(format!("{name}: no result")),
            Some(r) => {
                if let Err(e) = (case.check)(r) {
                    let failure = r
                        .failure
                        .as_ref()
                        .map(|f| format!("{}: {} ({:?})", f.step, f.message, f.first_error_line))
                        .unwrap_or_default();
                    errors.push(format!(
                        "{name}: {e}\n  outcome {:?}, {failure}\n  detail {:?}\n  move {:?}\n  run {}",
                        r.outcome,
                        r.detail,
                        r.migration,
                        run.dir.display()
                    ));
                }
            }
        }
    }
    if !errors.is_empty() {
        // Keep the run for the reader.
        let _ = results.keep();
        return Err(errors.join("\n"));
    }
    Ok(())
}

fn passed(r: &ScenarioResult) -> Result<&crtest::model::outcome::MoveMeasure, String> {
    if r.outcome != Outcome::Pass {
        return Err("did not pass".into());
    }
    let m = r.migration.as_ref().ok_or("no migration measure")?;
    if m.source != "gone" {
        return Err(format!("the source's tree is {}, not gone", m.source));
    }
    let freeze = m.freeze_ms.ok_or("no freeze time")?;
    let total = m.total_ms.ok_or("no total time")?;
    if freeze == 0 || total == 0 {
        return Err(format!("freeze {freeze} ms, total {total} ms"));
    }
    let restored_there = r.steps.iter().any(|s| s.step == "target:restore" && s.ok);
    let verified_there = r.steps.iter().any(|s| s.step == "target:verify" && s.ok);
    if !restored_there || !verified_there {
        return Err("not restored and verified on the target".into());
    }
    if r.visible_state
        .as_ref()
        .is_none_or(|v| v.compared.is_empty())
    {
        return Err("no visible state compared on the target".into());
    }
    Ok(m)
}

fn moved_through_the_host(r: &ScenarioResult) -> Result<(), String> {
    let m = passed(r)?;
    match (m.host_bytes, m.link_bytes) {
        (h, 0) if h > 0 => Ok(()),
        other => Err(format!("bytes (host, link) {other:?}")),
    }
}

fn pages_over_the_link(r: &ScenarioResult) -> Result<(), String> {
    let m = passed(r)?;
    (m.link_bytes > 0)
        .then_some(())
        .ok_or_else(|| "no page crossed the link".into())
}

fn two_pre_dumps_then_the_dump(r: &ScenarioResult) -> Result<(), String> {
    pages_over_the_link(r)?;
    let actions: Vec<&str> = r.criu_runs.iter().map(|c| c.action.as_str()).collect();
    match actions[..] {
        ["pre-dump", "pre-dump", "dump", "restore"] => Ok(()),
        _ => Err(format!("criu ran {actions:?}")),
    }
}

fn pages_served_lazily(r: &ScenarioResult) -> Result<(), String> {
    pages_over_the_link(r)?;
    let restore = r.criu_runs.iter().find(|c| c.action == "restore");
    match restore.and_then(|c| c.lazy_done_ms) {
        Some(_) => Ok(()),
        None => Err("no last lazy page on the target".into()),
    }
}

/// A move that failed: `step` on `side`, and the source's tree alive and verified.
fn failed_at(r: &ScenarioResult, side: &str, step: &str, says: &str) -> Result<(), String> {
    let f = r.failure.as_ref().ok_or("no failure")?;
    if r.outcome != Outcome::Fail
        || f.step != step
        || !f.message.starts_with(&format!("on the {side}:"))
    {
        return Err(format!("not a failure of the {side}'s {step}"));
    }
    let line = f.first_error_line.as_deref().unwrap_or_default();
    if !line.contains(says) {
        return Err(format!("its first error line does not say `{says}`"));
    }
    let m = r.migration.as_ref().ok_or("no migration measure")?;
    let verified = r.steps.iter().any(|s| s.step == "source:verify" && s.ok);
    match (m.source.as_str(), verified) {
        ("running", true) => Ok(()),
        other => Err(format!(
            "the source's tree after the failed move: {other:?}"
        )),
    }
}

fn refused_by_the_target(r: &ScenarioResult) -> Result<(), String> {
    let class = r.failure.as_ref().and_then(|f| f.class.as_deref());
    if class != Some("damaged-images") {
        return Err(format!("class {class:?}, not damaged-images"));
    }
    failed_at(r, "target", "restore", "inventory.img")
}

fn dump_cannot_reach_the_page_server(r: &ScenarioResult) -> Result<(), String> {
    failed_at(r, "source", "checkpoint", "Can't connect to server")
}

/// Killed before the dump connects, or while it sends: either way the source's dump fails
/// naming the page server, and the source's tree goes on.
fn page_server_gone(r: &ScenarioResult) -> Result<(), String> {
    let f = r.failure.as_ref().ok_or("no failure")?;
    if f.class.as_deref() != Some("peer-unreachable") {
        return Err(format!("class {:?}, not peer-unreachable", f.class));
    }
    failed_at(r, "source", "checkpoint", "server")
}

fn named_the_missing_cpu_features(r: &ScenarioResult) -> Result<(), String> {
    let f = r.failure.as_ref().ok_or("no failure")?;
    if r.outcome != Outcome::Fail || f.class.as_deref() != Some("cpu-mismatch") {
        return Err("not a cpu-mismatch failure".into());
    }
    if !f
        .message
        .contains("the target's CPU lacks what the source's had:")
        || !f.message.contains("avx2")
    {
        return Err("the message does not name avx2 among the missing features".into());
    }
    match r.migration.as_ref().map(|m| m.source.as_str()) {
        Some("running") => Ok(()),
        other => Err(format!(
            "the source's tree after the failed move: {other:?}"
        )),
    }
}
