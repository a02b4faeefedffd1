//! One trial per scenario, each checked in a real guest: a real kernel in QEMU, the real
//! criu of the Debian userland. All selected scenarios share one boot (run on the first trial
//! that needs it); each trial then reports its own scenario's outcome and failure report.
//! A few failed scenarios are run once more, and their two attempts combined as `crtest run
//! --repeat` combines them: one that passes then is `flaky` (its failed attempt's report
//! printed, not hidden), and the trial passes.
//!
//! When the images cannot be had (no QEMU, no network for the first build), the trials are
//! reported ignored and the reason is printed, never passed. With `CRTEST_REQUIRE_VM=1` (CI)
//! that becomes a failure instead.

mod common {
    pub mod cell;
    pub mod kcidb;
    pub mod tap;
}

use crtest::host::vm_run;
use crtest::model::outcome::{Outcome, ScenarioResult};
use crtest::model::scenario::Scenario;
use crtest::report::progress::TerminalReporter;
use crtest::results::run::RunDir;
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

type Shared = Arc<OnceLock<Result<AllRuns, String>>>;

/// What the scenario trials share: each scenario's result, and what the format check found
/// of each run (its own trial, so that one disagreement does not fail every scenario).
struct AllRuns {
    got: Vec<Got>,
    formats: Vec<String>,
}

/// A scenario's result in the VM trials, with the run directory holding its files.
struct Got {
    /// Where the result's files are (the first run's: a retry's result shows its failed
    /// first attempt).
    run_dir: PathBuf,
    result: ScenarioResult,
}

/// Catalog scenarios in criu's modes: pre-dumps and snapshots onto a page server, lazy
/// restores fed locally and over the loopback, the tree left stopped, the options through a
/// config file, iterations, a restore as criu's sibling, and the RPC (`criu swrk`), with an
/// expected failure coming back as the RPC's errno.
const MODE_TRIALS: &[&str] = &[
    "counterloop@pre=2+page-server+dedup",
    "counterloop@snaps=2",
    "fileio1@lazy",
    "bigmem-small@remote-lazy",
    "ptree1@stop",
    "fileio1@iters=2+criu-config",
    "ptree1@sibling+mntns-compat",
    "ptree1@rpc",
    "tcpconn@rpc+pre=2+page-server",
    "bigmem-small@rpc+lazy",
    "repro-pid-collision@rpc",
];

/// At most this many failed scenarios are retried (more means a broken guest, not noise).
const MAX_RETRIED: usize = 5;

fn main() {
    let args = Arguments::from_args();
    // The shipped catalog and the worked examples of users' own programs.
    let examples: Vec<std::path::PathBuf> =
        std::fs::read_dir(crtest::host::guest_build::workspace_root().join("scenarios/examples"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
    let mut scenarios =
        crtest::host::catalog::catalog(&examples).expect("the shipped scenarios load");
    // criu's other ways of being driven, a few scenarios each (the whole catalog in these
    // modes is a benchmark, not a test).
    let modes: Vec<String> = MODE_TRIALS.iter().map(|s| s.to_string()).collect();
    scenarios.extend(
        crtest::model::scenario::select(&scenarios, &modes, &[]).expect("the mode trials exist"),
    );
    let name = |s: &Scenario| format!("vm::{}", s.name);
    let selected: Vec<Scenario> = scenarios
        .iter()
        .filter(|s| matches_filter(&args, &name(s)))
        .cloned()
        .collect();

    let mut unavailable = None;
    let faults_selected = FAULTS
        .iter()
        .any(|(n, _)| matches_filter(&args, &format!("vm_faults::{n}")));
    let cell = if args.list || (selected.is_empty() && !faults_selected) {
        None
    } else {
        match common::cell::default_cell() {
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

    let mut trials: Vec<Trial> = scenarios
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
                let got = results
                    .got
                    .iter()
                    .find(|g| g.result.name == sc_name)
                    .ok_or_else(|| Failed::from(format!("{sc_name}: no result came back")))?;
                let (r, run_dir) = (&got.result, &got.run_dir);
                if r.outcome.is_bad() {
                    return Err(report(r).into());
                }
                if r.outcome == Outcome::Flaky {
                    eprintln!("{}", report(r));
                }
                // A desktop's screenshots are where run.json says, and are images.
                let screens = r.screens.clone().unwrap_or_default();
                for p in [screens.before, screens.restored, screens.typed]
                    .into_iter()
                    .flatten()
                {
                    crtest::vnc::frame::Frame::read_png(&run_dir.join(&p))
                        .map_err(|e| Failed::from(format!("{sc_name}: screenshot {p}: {e}")))?;
                }
                Ok(())
            });
            trial.with_ignored_flag(unavailable.is_some() && !require)
        })
        .collect();
    {
        let (cell, shared, selected) = (cell.clone(), shared.clone(), selected.clone());
        let why = unavailable.clone();
        let none = selected.is_empty();
        let trial = Trial::test("vm::formats_agree", move || {
            if let Some(why) = why {
                return Err(Failed::from(format!("no guest: {why}")));
            }
            let results = shared.get_or_init(|| run_all(&cell, &selected));
            let results = results.as_ref().map_err(|e| Failed::from(e.clone()))?;
            match results.formats.is_empty() {
                true => Ok(()),
                false => Err(results.formats.join("\n").into()),
            }
        });
        // With no scenario selected there is no run to read.
        trials.push(trial.with_ignored_flag(none || (unavailable.is_some() && !require)));
    }
    for (name, fault) in FAULTS {
        let cell = cell.clone();
        let why = unavailable.clone();
        let trial = Trial::test(format!("vm_faults::{name}"), move || {
            if let Some(why) = why {
                return Err(Failed::from(format!("no guest: {why}")));
            }
            let cell = cell.lock().map_err(|_| "cell lock poisoned")?.clone();
            fault(cell.ok_or("no cell")?).map_err(Failed::from)
        });
        trials.push(trial.with_ignored_flag(unavailable.is_some() && !require));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    flaky_summary(&shared);
    conclusion.exit();
}

/// libtest has no `flaky` verdict: the trial of a scenario that passed only when retried
/// passes, and the scenarios are named again here, after the summary, with where their
/// failed attempt is (and in `flaky.txt` beside the runs, for CI to keep).
fn flaky_summary(shared: &Shared) {
    let Some(Ok(runs)) = shared.get() else {
        return;
    };
    let flaky: Vec<String> = runs
        .got
        .iter()
        .filter(|g| g.result.outcome == Outcome::Flaky)
        .map(|g| {
            let first = g.result.attempts.first();
            let why = first
                .and_then(|a| a.failure.as_ref())
                .map_or(String::new(), |f| format!(": {}: {}", f.step, f.message));
            format!(
                "{} (first attempt in {}{why})",
                g.result.name,
                g.run_dir.display()
            )
        })
        .collect();
    if flaky.is_empty() {
        return;
    }
    let text = format!(
        "FLAKY: {} scenario(s) passed only when retried:\n  {}\n",
        flaky.len(),
        flaky.join("\n  ")
    );
    eprint!("\n{text}");
    let root = crtest::host::guest_build::workspace_root().join("target/vm-test-results");
    let _ = std::fs::write(root.join("flaky.txt"), text);
}

type Fault = fn(vm_run::Cell) -> Result<(), String>;

/// Faults injected into a real boot, and what the harness must make of them.
const FAULTS: &[(&str, Fault)] = &[
    ("panic_at_boot", panic_at_boot),
    ("hang_at_boot", hang_at_boot),
    ("sigint_mid_run", sigint_mid_run),
    ("sigterm_mid_run", sigterm_mid_run),
    ("sighup_mid_run", sighup_mid_run),
    ("results_disk_full", results_disk_full),
    ("sigkill_mid_run", sigkill_mid_run),
    ("kernel_without_cr", kernel_without_cr),
    ("doctor_oci", doctor_oci),
    ("taint_leftovers_fresh_kernel", taint_leftovers_fresh_kernel),
    ("hostile_guest", hostile_guest),
    ("repeat_rounds", repeat_rounds),
    ("criu_from_tree", criu_from_tree),
    ("criu_tree_broken", criu_tree_broken),
    ("criu_bisect", criu_bisect),
    ("zdtm_fixture", zdtm_fixture),
    ("zdtm_ci_profile", zdtm_ci_profile),
    ("saved_vm", saved_vm),
];

/// Guests resumed from the saved ready state: with --pristine every scenario gets its own,
/// each resumed (not booted), with the host's clock; a state QEMU cannot read makes the run
/// boot instead, say why once, drop the state, and the next run saves a new one. The cell
/// is sized apart (1536 MiB) so its state is this trial's own.
fn saved_vm(cell: vm_run::Cell) -> Result<(), String> {
    let cell = vm_run::Cell {
        memory_mib: 1536,
        pristine: true,
        ..cell
    };
    let all = crtest::host::catalog::catalog(&[]).map_err(|e| e.to_string())?;
    let two: Vec<Scenario> = all
        .into_iter()
        .filter(|s| s.name == "counterloop" || s.name == "fileio1")
        .collect();
    let root = crtest::host::guest_build::workspace_root().join("target/vm-saved-vm");
    let once = |cell: &vm_run::Cell| -> Result<crtest::results::run::CellReport, String> {
        let cell = vm_run::Cell {
            saved_vms: Some(Default::default()),
            ..cell.clone()
        };
        let mut run = RunDir::create(&root).map_err(|e| e.to_string())?;
        let probes = [vec!["date".to_string(), "+%s".to_string()]];
        vm_run::run_cell(
            &cell,
            &two,
            &probes,
            &mut run,
            &mut TerminalReporter::new(false),
        )
        .map_err(|e| e.to_string())?;
        let c = run.report.cells.remove(0);
        for r in &c.scenarios {
            if r.outcome != Outcome::Pass {
                return Err(format!("{}: want pass: {}", r.name, report(r)));
            }
        }
        Ok(c)
    };
    let c = once(&cell)?;
    if c.qemu.boots != 2 || c.qemu.resumes != 2 || c.resume_ms.is_none() {
        return Err(format!(
            "want 2 guests, both resumed: {:?}, resume_ms {:?}, notes {:?}",
            c.qemu, c.resume_ms, c.notes
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs() as i64;
    let guest: i64 = c
        .probes
        .first()
        .and_then(|p| p.output.trim().parse().ok())
        .ok_or(format!("no guest time: {:?}", c.probes))?;
    if (guest - now).abs() > 120 {
        return Err(format!(
            "the resumed guest's clock says {guest}, the host's {now}"
        ));
    }
    // Corrupt the state (same size, so the cache still takes it): QEMU refuses it.
    let states = crtest_vm::Cache::from_env()
        .map_err(|e| e.to_string())?
        .root()
        .join(crtest::host::resume::KIND);
    let state = std::fs::read_dir(&states)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path().join(crtest_vm::saved_vm::STATE_FILE))
        .filter(|p| {
            std::fs::read_to_string(p.with_file_name("slot")).is_ok_and(|s| s.contains("1536 MiB"))
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .ok_or("no saved state of the 1536 MiB guest")?;
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&state)
            .map_err(|e| e.to_string())?;
        f.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| e.to_string())?;
        f.write_all(b"XXXX").map_err(|e| e.to_string())?;
    }
    let c = once(&cell)?;
    let said: Vec<&String> = c
        .notes
        .iter()
        .filter(|n| n.contains("guests boot instead of resuming"))
        .collect();
    if said.len() != 1 || c.qemu.resumes != 0 || c.boot_ms.is_none() {
        return Err(format!(
            "want booted guests and one note why: {:?}, notes {:?}",
            c.qemu, c.notes
        ));
    }
    if state.exists() {
        return Err(format!("{} was not dropped", state.display()));
    }
    let c = once(&cell)?;
    if c.qemu.resumes != 2 || !c.notes.iter().any(|n| n.contains("saved the ready guest")) {
        return Err(format!(
            "want a new state saved and used: {:?}, notes {:?}",
            c.qemu, c.notes
        ));
    }
    Ok(())
}

/// `crtest run --zdtm TREE --tag zdtm` on the fixture tree's zdtm-shaped tests: built for the
/// userland, started by their Makefile rule, judged by their `.out`; every `.desc` key and
/// script becomes what zdtm.py makes of it, and what the harness does not run is a skip that
/// names why.
fn zdtm_fixture(_cell: vm_run::Cell) -> Result<(), String> {
    let tree = fixture_tree(|_| Ok(()))?;
    let results = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = tree.path().to_str().ok_or("path")?;
    let (code, stderr) = crtest_in(
        &["run", "-j", "1", "--zdtm", path, "--tag", "zdtm"],
        results.path(),
    )?;
    let r = read_run(results.path()).ok_or_else(|| format!("no run.json:\n{stderr}"))?;
    let c = &r.cells[0];
    let get = |n: &str| c.scenarios.iter().find(|s| s.name == format!("zdtm/{n}"));
    let mut wrong = Vec::new();
    let mut want = |n: &str, o: Outcome, text: &str| match get(n) {
        None => wrong.push(format!("{n}: no result")),
        Some(s) => {
            let said = format!(
                "{} {}",
                s.detail.clone().unwrap_or_default(),
                s.failure.as_ref().map_or(String::new(), |f| format!(
                    "{} {}",
                    f.message,
                    f.first_error_line.clone().unwrap_or_default()
                ))
            );
            if s.outcome != o || !said.contains(text) {
                wrong.push(format!(
                    "{n}: want {o:?} with `{text}`, got {:?}: {said}",
                    s.outcome
                ));
            }
        }
    };
    want("static/pass00", Outcome::Pass, "PASS");
    want("static/suid00", Outcome::Pass, "PASS");
    want("static/file00", Outcome::Pass, "PASS");
    want("transition/trans00", Outcome::Pass, "PASS");
    want("static/hook00", Outcome::Pass, "PASS");
    want("static/fail00", Outcome::Fail, "FAIL: fail00 always fails");
    want("static/crfail00", Outcome::Xfail, "");
    want("static/feature00", Outcome::Skip, "no_such_feature");
    // zdtm's ns and uns flavors: in a root and namespaces of the test's own, uids mapped.
    for flavor in ["ns", "uns"] {
        for t in ["nsonly00", "nsroot00", "pass00", "file00"] {
            want(&format!("static/{t}@{flavor}"), Outcome::Pass, "PASS");
        }
        want(
            &format!("static/fail00@{flavor}"),
            Outcome::Fail,
            "FAIL: fail00 always fails",
        );
    }
    want("static/arch00", Outcome::Skip, "arch `s390x`");
    want("static/future00", Outcome::Skip, "key `future-key`");
    want(
        "static/skip00",
        Outcome::Skip,
        "the fixture's checkskip says no",
    );
    want("static/broken00", Outcome::Skip, "did not build for");
    for absent in ["static/noauto00", "static/excluded00", "static/nsonly00"] {
        if get(absent).is_some() {
            wrong.push(format!("{absent} should not have run"));
        }
    }
    if code != Some(1) {
        wrong.push(format!("exit {code:?}, want 1 (fail00 fails)"));
    }
    let fail00 = get("static/fail00");
    let out_kept = fail00.is_some_and(|s| {
        s.artifacts
            .iter()
            .any(|a| a.ends_with("fail00.out") && results.path().join("latest").join(a).is_file())
    });
    if !out_kept {
        wrong.push(format!(
            "fail00.out is not kept: {:?}",
            fail00.map(|s| &s.artifacts)
        ));
    }
    let hook_log = get("static/hook00")
        .and_then(|s| s.artifacts.iter().find(|a| a.ends_with("hook.log")))
        .and_then(|a| std::fs::read_to_string(results.path().join("latest").join(a)).ok())
        .unwrap_or_default();
    for stage in ["--pre-dump", "--pre-restore", "--post-restore", "--clean"] {
        if !hook_log.contains(&format!("hook00 at {stage}")) {
            wrong.push(format!(
                "hook00's hook was not called at {stage}: {hook_log}"
            ));
        }
    }
    if !c
        .notes
        .iter()
        .any(|n| n.contains("zdtm tests of criu 9.8.7") && n.contains("tree:"))
        || !c.notes.iter().any(|n| n.contains("runs against criu 3.17"))
    {
        wrong.push(format!(
            "the notes should name the tree and the version mismatch: {:?}",
            c.notes
        ));
    }
    // Named, a noauto test runs; `list` shows it with its tag and the skips with their reason.
    let (code, stderr) = crtest_in(
        &[
            "run",
            "-j",
            "1",
            "--zdtm",
            path,
            "--scenario",
            "zdtm/static/noauto00",
        ],
        results.path(),
    )?;
    if code != Some(0) {
        wrong.push(format!("the named noauto test: exit {code:?}\n{stderr}"));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(["list", "--zdtm", path, "--tag", "zdtm"])
        .output()
        .map_err(|e| e.to_string())?;
    let listing = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "zdtm/static/noauto00",
        "noauto",
        "zdtm/static/nsroot00@uns",
        "zdtm-uns",
        "zdtm/static/pass00@ns",
    ] {
        if !listing.contains(needle) {
            wrong.push(format!("`list --zdtm` lacks `{needle}`:\n{listing}"));
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args([
            "list",
            "--zdtm",
            path,
            "--zdtm-flavors",
            "h",
            "--tag",
            "zdtm",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let h_only = "(skipped: `.desc` flavor `ns uns`, and the run chose h)";
    if !listing.contains(h_only) || listing.contains("pass00@ns") {
        wrong.push(format!(
            "`list --zdtm-flavors h` should list the h runs and `{h_only}`:\n{listing}"
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}

/// `--zdtm-profile ci` on the fixture tree's CI script: each `zdtm.py run` call's tests in
/// its flavors and mode, the call behind a feature check skipped for the feature, the call
/// the harness has no mode for named and left out.
fn zdtm_ci_profile(_cell: vm_run::Cell) -> Result<(), String> {
    let tree = fixture_tree(|_| Ok(()))?;
    let results = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = tree.path().to_str().ok_or("path")?;
    let (code, stderr) = crtest_in(
        &[
            "run",
            "--zdtm",
            path,
            "--zdtm-profile",
            "ci",
            "--tag",
            "zdtm-ci",
        ],
        results.path(),
    )?;
    let r = read_run(results.path()).ok_or_else(|| format!("no run.json:\n{stderr}"))?;
    let got: Vec<(String, Outcome)> = r.cells[0]
        .scenarios
        .iter()
        .map(|s| (s.name.clone(), s.outcome))
        .collect();
    let mut want: Vec<(String, Outcome)> = [
        "pass00@rpc",
        "pass00@ns@rpc",
        "pass00@uns@rpc",
        "file00@rpc",
        "file00@ns@rpc",
        "file00@uns@rpc",
        "pass00@lazy",
        "pass00@ns@lazy",
        "pass00@pre=2+page-server+dedup",
        "pass00@ns@pre=2+page-server+dedup",
        "pass00@uns@pre=2+page-server+dedup",
        "nsroot00@uns@remote-lazy",
    ]
    .iter()
    .map(|n| (format!("zdtm/static/{n}"), Outcome::Pass))
    .collect();
    for f in ["", "@ns", "@uns"] {
        want.push((format!("zdtm/static/pass00{f}@stop"), Outcome::Skip));
    }
    let (mut got, mut want) = (got, want);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    if got != want {
        return Err(format!("got {got:?}\nwant {want:?}\n{stderr}"));
    }
    if !stderr.contains("left out: line 17") || !stderr.contains("`--stream`") {
        return Err(format!(
            "the --stream call is not named as left out:\n{stderr}"
        ));
    }
    let rpc = r.cells[0]
        .scenarios
        .iter()
        .find(|s| s.name == "zdtm/static/pass00@rpc")
        .ok_or("no pass00@rpc")?;
    if !rpc.criu_runs.iter().all(|c| c.via == "rpc") || rpc.criu_runs.len() != 2 {
        return Err(format!(
            "pass00@rpc did not go through the RPC: {:?}",
            rpc.criu_runs
        ));
    }
    match code {
        Some(0) => Ok(()),
        other => Err(format!("exit {other:?}, want 0:\n{stderr}")),
    }
}

/// A copy of the fixture CRIU tree (`tests/fixtures/criu-tree`), changed by `vary`.
fn fixture_tree(
    vary: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/criu-tree");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", from.display()))
        .arg(dir.path())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cp -r {}: {status}", from.display()));
    }
    vary(dir.path()).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// `crtest ARGS --results RESULTS`: its exit code and stderr.
fn crtest_in(args: &[&str], results: &std::path::Path) -> Result<(Option<i32>, String), String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(args)
        .arg("--results")
        .arg(results)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Held by the trials that build criu from trees: `criu_from_tree` tells a cache hit by the
/// cache's builds not changing, which another trial building at the same time would break.
static CRIU_BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn criu_builds_lock() -> std::sync::MutexGuard<'static, ()> {
    CRIU_BUILDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The builds in the cache, each with its modification time (a cache hit changes none).
fn criu_builds() -> Vec<(std::path::PathBuf, Option<std::time::SystemTime>)> {
    let Ok(cache) = crtest_vm::Cache::from_env() else {
        return vec![];
    };
    let mut v: Vec<_> = std::fs::read_dir(cache.root().join("criu-build"))
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.path(), e.metadata().and_then(|m| m.modified()).ok()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `crtest run --criu TREE`: the fixture tree is built for the userland's suite and put in
/// place of the package's criu, plain scenarios and an lxc one run with it, run.json names
/// its version and source, the guest's `criu --version` is the tree's, and a second run is a
/// cache hit.
fn criu_from_tree(_cell: vm_run::Cell) -> Result<(), String> {
    let _builds = criu_builds_lock();
    let tree = fixture_tree(|_| Ok(()))?;
    let results = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = tree.path().to_str().ok_or("path")?;
    let args = [
        "run",
        "-j",
        "1",
        "--criu",
        path,
        "--scenario",
        "counterloop,lxc-ptree1",
    ];
    let (code, stderr) = crtest_in(&args, results.path())?;
    if code != Some(0) {
        return Err(format!("crtest run --criu: {code:?}\n{stderr}"));
    }
    let r = read_run(results.path()).ok_or("no run.json")?;
    let c = &r.cells[0];
    let suffix = c.id.rsplit_once("+criu-").map(|(_, s)| s).unwrap_or("");
    if suffix.len() != 12 || !suffix.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return Err(format!("the cell id should name the tree's hash: {}", c.id));
    }
    if c.userland.criu.as_deref() != Some("9.8.7")
        || !c
            .userland
            .criu_source
            .as_deref()
            .is_some_and(|s| s.starts_with(&format!("tree:{suffix}")))
    {
        return Err(format!(
            "userland should name the tree's criu: {:?}",
            c.userland
        ));
    }
    let version = c
        .probes
        .iter()
        .find(|p| p.command == ["criu", "--version"])
        .ok_or_else(|| format!("no `criu --version` probe: {:?}", c.probes))?;
    if version.status != 0 || !version.output.contains("Version: 9.8.7") {
        return Err(format!("the guest's criu is not the tree's: {version:?}"));
    }
    if c.scenarios.len() != 2 || c.scenarios.iter().any(|s| s.outcome != Outcome::Pass) {
        return Err(format!("want both passed: {:?}", c.scenarios));
    }
    if !stderr.contains("criu 9.8.7 (tree:") {
        return Err(format!(
            "the progress should name the built criu:\n{stderr}"
        ));
    }
    let before = criu_builds();
    let (code, stderr) = crtest_in(&args, results.path())?;
    if code != Some(0) {
        return Err(format!("second crtest run --criu: {code:?}\n{stderr}"));
    }
    if criu_builds() != before {
        return Err("the second run built criu again instead of taking the cache's".into());
    }
    Ok(())
}

/// A tree whose build fails is exit 3 with the compiler's first error and the log's path; a
/// built criu that does not start makes every scenario `error` with its output.
fn criu_tree_broken(_cell: vm_run::Cell) -> Result<(), String> {
    let _builds = criu_builds_lock();
    let results = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bad = fixture_tree(|d| {
        let c = d.join("criu/crtools.c");
        let text = std::fs::read_to_string(&c)?;
        std::fs::write(&c, text + "\nthis is not C\n")
    })?;
    let (code, stderr) = crtest_in(
        &["run", "--criu", bad.path().to_str().ok_or("path")?],
        results.path(),
    )?;
    let log = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("the whole log: "))
        .map(std::path::PathBuf::from);
    if code != Some(3)
        || !stderr.contains("crtools.c")
        || !stderr.contains("error:")
        || !log.as_ref().is_some_and(|l| l.is_file())
    {
        return Err(format!(
            "want exit 3 with the first compiler error and an existing log: {code:?}\n{stderr}"
        ));
    }
    let nostart = fixture_tree(|d| std::fs::write(d.join("criu/nostart"), ""))?;
    let (code, stderr) = crtest_in(
        &[
            "run",
            "-j",
            "1",
            "--criu",
            nostart.path().to_str().ok_or("path")?,
            "--scenario",
            "counterloop",
        ],
        results.path(),
    )?;
    let r = read_run(results.path()).ok_or("no run.json")?;
    let s = &r.cells[0].scenarios[0];
    let f = s.failure.as_ref().ok_or("no failure")?;
    if code != Some(1)
        || s.outcome != Outcome::Error
        || f.class.as_deref() != Some("criu-does-not-start")
        || !f.message.contains("libcrtest-fixture.so.1")
    {
        return Err(format!(
            "want error naming the criu that does not start: {code:?} {s:?}\n{stderr}"
        ));
    }
    Ok(())
}

/// `git -C dir ARGS` for the bisect trial's history.
fn git_in(dir: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=crtest",
            "-c",
            "user.email=crtest@example.org",
        ])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `crtest bisect --criu TREE`: a history of the fixture tree in which one commit breaks
/// the build (mended by the next) and a later one every restore: the endpoints say
/// regression, the broken build is skipped, the culprit is named on stdout and confirmed,
/// bisect.json holds every step and the failure at the culprit, the tree is left as it was.
fn criu_bisect(_cell: vm_run::Cell) -> Result<(), String> {
    let _builds = criu_builds_lock();
    let tree = fixture_tree(|_| Ok(()))?;
    let t = tree.path();
    git_in(t, &["init", "-q"])?;
    let mut shas = Vec::new();
    let mut commit = |msg: &str| -> Result<(), String> {
        git_in(t, &["add", "-A"])?;
        git_in(t, &["commit", "-q", "-m", msg])?;
        shas.push(git_in(t, &["rev-parse", "HEAD"])?);
        Ok(())
    };
    commit("fixture: version 9.8.7")?;
    let note = |text: &str| std::fs::write(t.join("NOTES"), text).map_err(|e| e.to_string());
    note("a note\n")?;
    commit("docs: a note")?;
    note("two notes\n")?;
    commit("docs: another note")?;
    // git bisect's first pick in this history of 7: the build that fails.
    let c = t.join("criu/crtools.c");
    let good_c = std::fs::read_to_string(&c).map_err(|e| e.to_string())?;
    std::fs::write(&c, format!("{good_c}\nthis is not C\n")).map_err(|e| e.to_string())?;
    commit("criu: a syntax error")?;
    std::fs::write(&c, &good_c).map_err(|e| e.to_string())?;
    commit("criu: the syntax error mended")?;
    std::fs::write(t.join("criu/norestore"), "").map_err(|e| e.to_string())?;
    commit("criu: restore refused")?;
    note("three notes\n")?;
    commit("docs: a third note")?;
    let results = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(["bisect", "--criu", t.to_str().ok_or("path")?])
        .args(["--good", &shas[0], "--bad", &shas[6]])
        .args(["--scenario", "counterloop", "--confirm", "1", "--results"])
        .arg(results.path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let want = format!("first bad commit: {} criu: restore refused", shas[5]);
    if out.status.code() != Some(0) || stdout.trim() != want {
        return Err(format!(
            "want exit 0 and `{want}`: {:?}\n{stdout}\n{stderr}",
            out.status.code()
        ));
    }
    let dir = std::fs::read_dir(results.path())
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("bisect.json").is_file())
        .ok_or("no bisect.json")?;
    let text = std::fs::read_to_string(dir.join("bisect.json")).map_err(|e| e.to_string())?;
    let r: crtest::host::bisect::record::BisectRecord =
        serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let skipped = r
        .steps
        .iter()
        .find(|s| s.commit == shas[3])
        .map(|s| (s.build.ok, s.mark.clone()));
    if r.direction != Some(crtest::host::bisect::judge::Direction::Regression)
        || r.commits != 6
        || skipped != Some((false, Some("skip".to_string())))
        || !r.confirmation.as_ref().is_some_and(|c| c.confirmed)
        || r.steps.iter().any(|s| {
            s.runs
                .iter()
                .any(|run| !dir.join(&run.dir).join("run.json").is_file())
        })
    {
        return Err(format!("bisect.json is not as the history says:\n{text}"));
    }
    let f = r.failure.as_ref().ok_or("no failure in bisect.json")?;
    if f.commit != shas[5] || f.scenario != "counterloop" || f.failure.step != "restore" {
        return Err(format!(
            "the failure should be the culprit's restore: {f:?}"
        ));
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).map_err(|e| e.to_string())?;
    if !summary.contains(&want) || !summary.contains("git bisect start") {
        return Err(format!(
            "summary.md lacks the verdict or the git log:\n{summary}"
        ));
    }
    if git_in(t, &["rev-parse", "HEAD"])? != shas[6]
        || !git_in(t, &["status", "--porcelain"])?.is_empty()
    {
        return Err("the user's tree was changed".into());
    }
    Ok(())
}

/// `crtest run --repeat 2`: two rounds in fresh guests under `rounds/<i>/`, each scenario
/// once in the run's cell with both attempts and its files under its round.
fn repeat_rounds(_cell: vm_run::Cell) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args([
            "run",
            "-j",
            "1",
            "--repeat",
            "2",
            "--scenario",
            "counterloop",
            "--results",
        ])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("crtest run --repeat 2: {}\n{stderr}", out.status));
    }
    let r = read_run(dir.path()).ok_or("no run.json")?;
    let s = r
        .cells
        .first()
        .and_then(|c| c.scenarios.first())
        .ok_or("no result")?;
    let attempts: Vec<Outcome> = s.attempts.iter().map(|a| a.outcome).collect();
    if s.outcome != Outcome::Pass || attempts != [Outcome::Pass, Outcome::Pass] {
        return Err(format!("want pass over two passing attempts: {s:?}"));
    }
    let run_dir = dir.path().join("latest");
    for i in 1..=2 {
        let round = run_dir.join(format!("rounds/{i}"));
        if !round.join("run.json").is_file() || !round.join("results.ktap").is_file() {
            return Err(format!(
                "{} lacks its run.json or results.ktap",
                round.display()
            ));
        }
    }
    if !s
        .artifacts
        .iter()
        .all(|a| a.starts_with("rounds/1/guest/scenarios/counterloop/"))
        || !run_dir.join(&s.artifacts[0]).is_file()
    {
        return Err(format!(
            "the kept files should be the first round's: {:?}",
            s.artifacts
        ));
    }
    if r.cells[0].qemu.boots != 2 || !stderr.contains("round 2 of 2") {
        return Err(format!(
            "want a boot per round: {:?}\n{stderr}",
            r.cells[0].qemu
        ));
    }
    Ok(())
}

/// A guest that turns on the host: a scenario's program writes symlinks into the share
/// (to a host file, to `/`), a 4.3 MB line, invalid UTF-8 and truncated JSON to the events
/// port, and a result for a scenario it was not given. The host drops the junk, ignores the
/// foreign result, removes the links after the boot (naming them in the cell's notes),
/// touches no file outside the run directory, and the scenario itself is judged as usual.
fn hostile_guest(cell: vm_run::Cell) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).map_err(|e| e.to_string())
    };
    let foreign = crtest::model::event::Event::ScenarioFinished {
        result: Box::new(ScenarioResult::without_steps(
            "not-given",
            Outcome::Pass,
            Default::default(),
        )),
    };
    write("fake.jsonl", &foreign.to_line())?;
    write(
        "hostile.sh",
        concat!(
            "set -e\n",
            "share=/run/crtest/results\n",
            "mkdir -p $share/scenarios/h1-hostile\n",
            "ln -s /etc/hostname $share/scenarios/h1-hostile/stolen.log\n",
            "ln -s / $share/rootlink\n",
            "head -c 4300000 /dev/zero | tr '\\0' x > /dev/ttyS1\n",
            "echo > /dev/ttyS1\n",
            "printf '\\377\\376 not utf-8\\n{\"event\":\"scenario-fin\\n' > /dev/ttyS1\n",
            "cat fake.jsonl > /dev/ttyS1\n",
            "touch started\n",
            "exec sleep 1000\n",
        ),
    )?;
    write(
        "h1-hostile.toml",
        concat!(
            "description = \"a hostile guest\"\n",
            "[program]\n",
            "command = [\"sh\", \"./hostile.sh\"]\n",
            "files = [\"hostile.sh\", \"fake.jsonl\"]\n",
            "ready = \"file:started\"\n",
            "check = [\"true\"]\n",
        ),
    )?;
    let hostname = std::fs::read("/etc/hostname").unwrap_or_default();
    let run = run_scenario_dir(&cell, dir.path())?;
    let c = &run.report.cells[0];
    let names: Vec<&str> = c.scenarios.iter().map(|s| s.name.as_str()).collect();
    if names != ["h1-hostile"] || c.scenarios[0].outcome != Outcome::Pass {
        return Err(format!(
            "want h1-hostile passed and nothing else: {:?}",
            c.scenarios
        ));
    }
    for needle in [
        "guest/rootlink",
        "stolen.log",
        "`not-given`, which it was not given",
    ] {
        if !c.notes.iter().any(|n| n.contains(needle)) {
            return Err(format!("no note naming {needle}: {:?}", c.notes));
        }
    }
    let share = run.dir.join("guest");
    for p in [
        share.join("rootlink"),
        share.join("scenarios/h1-hostile/stolen.log"),
    ] {
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(format!("{} is still there", p.display()));
        }
    }
    if std::fs::read("/etc/hostname").unwrap_or_default() != hostname {
        return Err("/etc/hostname changed".into());
    }
    Ok(())
}

/// Runs the scenario files of `dir` on `cell` into a run directory under `dir/results`.
fn run_scenario_dir(cell: &vm_run::Cell, dir: &std::path::Path) -> Result<RunDir, String> {
    let scenarios: Vec<Scenario> =
        crtest::model::scenario::load_dir(dir).map_err(|e| e.to_string())?;
    let mut run = RunDir::create(&dir.join("results")).map_err(|e| e.to_string())?;
    vm_run::run_cell(
        cell,
        &scenarios,
        &[],
        &mut run,
        &mut TerminalReporter::new(false),
    )
    .map_err(|e| e.to_string())?;
    Ok(run)
}

/// After each scenario the agent checks the taint flag and for leftover processes. A scenario
/// that leaves a process behind gets it named (and killed); one that taints the kernel fails
/// and the next runs in a new guest; a `fresh-kernel` scenario gets a guest of its own.
fn taint_leftovers_fresh_kernel(cell: vm_run::Cell) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).map_err(|e| e.to_string())
    };
    write(
        "t1-leftover.toml",
        "description = \"leaves a process behind\"\n[program]\n\
         command = [\"sh\", \"-c\", \"setsid sleep 1000 & touch started; exec sleep 1000\"]\n\
         ready = \"file:started\"\ncheck = [\"true\"]\n",
    )?;
    write(
        "t2-taint.toml",
        "description = \"taints the kernel (W)\"\nworkload = \"counterloop\"\n\
         before = [[\"sh\", \"-c\", \"echo 512 > /proc/sys/kernel/tainted\"]]\n",
    )?;
    write(
        "t3-after.toml",
        "description = \"after the taint\"\nworkload = \"counterloop\"\n",
    )?;
    write(
        "t4-fresh.toml",
        "description = \"wants its own guest\"\nworkload = \"counterloop\"\nfresh-kernel = true\n",
    )?;
    let run = run_scenario_dir(&cell, dir.path())?;
    let c = &run.report.cells[0];
    let by = |n: &str| {
        c.scenarios
            .iter()
            .find(|s| s.name == n)
            .ok_or(format!("no result for {n}"))
    };
    let t1 = by("t1-leftover")?;
    if t1.outcome != Outcome::Pass || !t1.leftovers.iter().any(|l| l.starts_with("sleep(")) {
        return Err(format!("t1: want pass with a leftover sleep named: {t1:?}"));
    }
    let t2 = by("t2-taint")?;
    let tainted = t2
        .failure
        .as_ref()
        .is_some_and(|f| f.message.contains("tainted (W)"));
    if t2.outcome != Outcome::Fail || !tainted {
        return Err(format!("t2: want fail naming the taint: {t2:?}"));
    }
    for n in ["t3-after", "t4-fresh"] {
        if by(n)?.outcome != Outcome::Pass {
            return Err(format!("{n}: want pass: {:?}", by(n)?));
        }
    }
    if c.qemu.boots != 3 || !c.notes.iter().any(|n| n.contains("guest rebooted")) {
        return Err(format!(
            "want 3 boots (taint, fresh kernel): {} boots, notes {:?}",
            c.qemu.boots, c.notes
        ));
    }
    Ok(())
}

/// Starts `crtest run` on three scenarios and waits until the guest has finished one; its
/// stderr goes to `stderr` when given.
fn start_run(results: &std::path::Path) -> Result<std::process::Child, String> {
    start_run_logged(results, None)
}

fn start_run_logged(
    results: &std::path::Path,
    stderr: Option<&std::path::Path>,
) -> Result<std::process::Child, String> {
    let err = match stderr {
        Some(p) => std::process::Stdio::from(std::fs::File::create(p).map_err(|e| e.to_string())?),
        None => std::process::Stdio::null(),
    };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        // One guest: its run.json is rewritten after every scenario (with -j N each shard's
        // is, under shards/, and the run's own is joined at the end).
        .args([
            "run",
            "-j",
            "1",
            "--scenario",
            "counterloop,fileio1,ptree1",
            "--results",
        ])
        .arg(results)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| e.to_string())?;
    let end = std::time::Instant::now() + Duration::from_secs(300);
    while std::time::Instant::now() < end {
        if let Some(r) = read_run(results) {
            if r.cells.first().is_some_and(|c| !c.scenarios.is_empty()) {
                return Ok(child);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err("the run did not finish a scenario in 300 s".into())
}

fn read_run(results: &std::path::Path) -> Option<crtest::results::run::RunReport> {
    let text = std::fs::read_to_string(results.join("latest/run.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn wait_exit(
    child: &mut std::process::Child,
    secs: u64,
) -> Result<std::process::ExitStatus, String> {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(s);
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            return Err(format!("crtest did not exit within {secs} s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGINT mid-run: QEMU is killed, run.json says interrupted, the finished scenario is kept
/// and the others are marked, and crtest exits 130.
fn sigint_mid_run(_cell: vm_run::Cell) -> Result<(), String> {
    signal_mid_run(nix::sys::signal::Signal::SIGINT)
}

/// SIGTERM (what CI systems send at a time limit) does the same, exit 143.
fn sigterm_mid_run(_cell: vm_run::Cell) -> Result<(), String> {
    signal_mid_run(nix::sys::signal::Signal::SIGTERM)
}

/// SIGHUP (a closed terminal) does the same, exit 129.
fn sighup_mid_run(_cell: vm_run::Cell) -> Result<(), String> {
    signal_mid_run(nix::sys::signal::Signal::SIGHUP)
}

fn signal_mid_run(sig: nix::sys::signal::Signal) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut child = start_run(dir.path())?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig)
        .map_err(|e| e.to_string())?;
    let status = wait_exit(&mut child, 60)?;
    if status.code() != Some(128 + sig as i32) {
        return Err(format!(
            "{sig}: want exit {}, got {status}",
            128 + sig as i32
        ));
    }
    let r = read_run(dir.path()).ok_or(format!("no valid run.json after {sig}"))?;
    if r.finished
        || !r
            .interrupted
            .as_deref()
            .is_some_and(|i| i.contains(sig.as_str()))
    {
        return Err(format!(
            "run.json should say interrupted by {sig}: {:?}",
            r.interrupted
        ));
    }
    let scenarios = &r.cells[0].scenarios;
    if scenarios.len() != 3 || !scenarios.iter().any(|s| s.outcome == Outcome::Pass) {
        return Err(format!("want 3 results, one passed: {scenarios:?}"));
    }
    let marked = scenarios
        .iter()
        .filter(|s| s.failure.as_ref().is_some_and(|f| f.step == "interrupted"));
    if marked.count() == 0 {
        return Err(format!("no scenario marked interrupted: {scenarios:?}"));
    }
    let left = qemu_processes_under(dir.path());
    if !left.is_empty() {
        return Err(format!("QEMU left running after {sig}: {left:?}"));
    }
    Ok(())
}

/// The results disk fills up mid-run (a 48 MiB tmpfs under `--results`, filled once a
/// scenario is done): crtest stops with exit 3 naming the path and errno, the run.json it
/// wrote last is valid and keeps the finished scenario, and no QEMU is left.
fn results_disk_full(_cell: vm_run::Cell) -> Result<(), String> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let small = dir.path().join("small");
    std::fs::create_dir(&small).map_err(|e| e.to_string())?;
    mount(
        Some("tmpfs"),
        &small,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=48m"),
    )
    .map_err(|e| format!("mounting a tmpfs (needs root): {e}"))?;
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = umount2(self.0, MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(&small);
    let log = dir.path().join("stderr.log");
    let mut child = start_run_logged(&small, Some(&log))?;
    // Fill it: what the run writes next finds no room.
    let mut filler = std::fs::File::create(small.join("filler")).map_err(|e| e.to_string())?;
    let block = vec![0u8; 1 << 20];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    let status = wait_exit(&mut child, 400)?;
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    if status.code() != Some(3) {
        return Err(format!(
            "want exit 3 on a full results disk, got {status}:\n{stderr}"
        ));
    }
    if !stderr.contains("No space left on device") || !stderr.contains(&small.display().to_string())
    {
        return Err(format!(
            "the error should name the path and ENOSPC:\n{stderr}"
        ));
    }
    let r = read_run(&small).ok_or("no valid run.json on the full disk")?;
    if r.cells.first().is_none_or(|c| c.scenarios.is_empty()) {
        return Err("the finished scenario was lost".into());
    }
    let left = qemu_processes_under(&small);
    if !left.is_empty() {
        return Err(format!("QEMU left running on a full disk: {left:?}"));
    }
    Ok(())
}

/// SIGKILL mid-run: nothing can be caught, but QEMU dies with its parent (parent-death
/// signal) and the last run.json written is complete JSON.
fn sigkill_mid_run(_cell: vm_run::Cell) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut child = start_run(dir.path())?;
    child.kill().map_err(|e| e.to_string())?;
    let _ = child.wait();
    std::thread::sleep(Duration::from_secs(2));
    let left = qemu_processes_under(dir.path());
    if !left.is_empty() {
        return Err(format!("QEMU left running after SIGKILL: {left:?}"));
    }
    let r = read_run(dir.path()).ok_or("run.json is not valid after SIGKILL")?;
    if r.finished || r.cells[0].scenarios.is_empty() {
        return Err("run.json should be unfinished with the finished scenario kept".into());
    }
    Ok(())
}

/// A kernel whose config lacks CONFIG_CHECKPOINT_RESTORE: `crtest doctor` names the rule
/// and the missing option, and exits 1.
fn kernel_without_cr(cell: vm_run::Cell) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = cell
        .kernel
        .config
        .clone()
        .ok_or("the cell's kernel has no config")?;
    let text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    let broken = dir.path().join("config");
    std::fs::write(
        &broken,
        text.replace(
            "CONFIG_CHECKPOINT_RESTORE=y",
            "# CONFIG_CHECKPOINT_RESTORE is not set",
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut args: Vec<std::ffi::OsString> = vec!["doctor".into(), "--kernel".into()];
    args.push(cell.kernel.bzimage.clone().into());
    if let Some(m) = &cell.kernel.modules_dir {
        args.push("--modules".into());
        args.push(m.clone().into());
    }
    args.extend(["--config".into(), broken.into(), "--results".into()]);
    args.push(dir.path().join("results").into());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(&args)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(1)
        || !stdout.contains("no-checkpoint-restore")
        || !stdout.contains("missing CONFIG_CHECKPOINT_RESTORE")
    {
        return Err(format!(
            "want exit 1 naming the rule and the option; got {:?}\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// `crtest doctor --oci --json` on the default cell: compatible, with the runtimes of the
/// `oci` image and the four ways to checkpoint a container: runc's with the `criu` binary,
/// crun's as its libcriu dependency says (bookworm's crun 1.8.1 has none).
fn doctor_oci(_cell: vm_run::Cell) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(["doctor", "--oci", "--json", "--results"])
        .arg(dir.path())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fail = |why: &str| {
        format!(
            "{why}; exit {:?}\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    if out.status.code() != Some(0) {
        return Err(fail("want exit 0 (compatible)"));
    }
    let r: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| fail(&e.to_string()))?;
    let oci = &r["oci"];
    for tool in ["podman", "conmon", "runc", "crun"] {
        if !oci["versions"][tool].is_string() {
            return Err(fail(&format!("no version of {tool}")));
        }
    }
    let paths = oci["paths"].as_array().cloned().unwrap_or_default();
    let can = |name: &str| {
        paths
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["can_checkpoint"].as_bool())
    };
    if can("runc alone") != Some(true) || can("podman over runc") != Some(true) {
        return Err(fail("runc should checkpoint with the criu binary"));
    }
    let crun = can("crun alone").ok_or_else(|| fail("no crun path"))?;
    if can("podman over crun") != Some(crun) {
        return Err(fail("podman over crun should follow crun"));
    }
    let suite = crtest_vm::apt::host_suite().map_err(|e| e.to_string())?;
    if suite == "bookworm" && crun {
        return Err(fail("bookworm's crun 1.8.1 has no CRIU"));
    }
    Ok(())
}

/// An initramfs whose /init does not exist: the kernel panics ("No working init found").
/// Every scenario gets `panic` with the panic lines, QEMU is gone, run.json is complete.
fn panic_at_boot(mut cell: vm_run::Cell) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut entries = crtest_vm::initramfs::Entries::default();
    entries.symlink("/init", "/nonexistent");
    cell.initrd = dir.path().join("initrd.cpio");
    crtest_vm::initramfs::build_initramfs(&cell.initrd, &entries).map_err(|e| e.to_string())?;
    let results = run_fault(&cell, "panic")?;
    for r in &results {
        let f = r
            .failure
            .as_ref()
            .ok_or("a panic without a failure report")?;
        if r.outcome != Outcome::Panic || !f.console_tail.iter().any(|l| l.contains("Kernel panic"))
        {
            return Err(format!(
                "{}: want panic with the panic line, got {r:?}",
                r.name
            ));
        }
    }
    Ok(())
}

/// An initramfs whose /init runs but never answers (a workload binary as init): the boot
/// time limit fires, QEMU is killed, every scenario gets `timeout` with the console tail.
fn hang_at_boot(mut cell: vm_run::Cell) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bins = crtest::host::guest_build::build().map_err(|e| e.to_string())?;
    let counter = std::fs::read(bins.dir.join("counterloop")).map_err(|e| e.to_string())?;
    let mut entries = crtest_vm::initramfs::Entries::default();
    entries.file("/init", 0o755, counter);
    cell.initrd = dir.path().join("initrd.cpio");
    crtest_vm::initramfs::build_initramfs(&cell.initrd, &entries).map_err(|e| e.to_string())?;
    cell.boot_timeout = Duration::from_secs(25);
    let results = run_fault(&cell, "hang")?;
    for r in &results {
        let f = r
            .failure
            .as_ref()
            .ok_or("a timeout without a failure report")?;
        if r.outcome != Outcome::Timeout || f.console_tail.is_empty() {
            return Err(format!(
                "{}: want timeout with a console tail, got {r:?}",
                r.name
            ));
        }
    }
    Ok(())
}

/// Runs two scenarios on a broken cell; checks QEMU is gone and run.json holds both.
fn run_fault(cell: &vm_run::Cell, what: &str) -> Result<Vec<ScenarioResult>, String> {
    let root = crtest::host::guest_build::workspace_root().join(format!("target/vm-fault-{what}"));
    let mut run = RunDir::create(&root).map_err(|e| e.to_string())?;
    let all = crtest::host::catalog::catalog(&[]).map_err(|e| e.to_string())?;
    let two: Vec<Scenario> = all.into_iter().take(2).collect();
    vm_run::run_cell(cell, &two, &[], &mut run, &mut TerminalReporter::new(false))
        .map_err(|e| e.to_string())?;
    crtest::report::views::finish(&mut run, None).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(run.dir.join("run.json")).map_err(|e| e.to_string())?;
    let back: crtest::results::run::RunReport =
        serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let results = back
        .cells
        .into_iter()
        .next()
        .ok_or("no cell in run.json")?
        .scenarios;
    if results.len() != two.len() {
        return Err(format!(
            "want {} results in run.json, got {results:?}",
            two.len()
        ));
    }
    let leftover = qemu_processes_under(&run.dir);
    if !leftover.is_empty() {
        return Err(format!("QEMU left running: pids {leftover:?}"));
    }
    Ok(results)
}

/// Pids of QEMU processes whose command line names `dir`.
fn qemu_processes_under(dir: &std::path::Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

fn matches_filter(args: &Arguments, name: &str) -> bool {
    let hit = |f: &str| {
        if args.exact {
            name == f
        } else {
            name.contains(f)
        }
    };
    let included = args.filter.as_deref().is_none_or(hit);
    let skipped = args.skip.iter().any(|s| hit(s));
    included && !skipped && !args.ignored
}

/// A scenario's line and failure report.
fn report(r: &ScenarioResult) -> String {
    let mut msg = crtest::report::text::scenario_line(r);
    if let Some(f) = &r.failure {
        msg.push('\n');
        msg.push_str(&crtest::report::text::failure_block(f));
    }
    msg
}

/// Runs `scenarios` in guests of the cell, then once more those that failed (a few at
/// most): the machines are shared and noisy, and criu has rare races of its own. A
/// scenario that passes only when retried is `flaky`, with its first failure.
fn run_all(cell: &Mutex<Option<vm_run::Cell>>, scenarios: &[Scenario]) -> Result<AllRuns, String> {
    // A copy, so the fault trials are not kept waiting for the lock.
    let cell = cell
        .lock()
        .map_err(|_| "cell lock poisoned".to_string())?
        .clone()
        .ok_or("no cell")?;
    let mut formats = Vec::new();
    let (run_dir, results) = run_once(&cell, scenarios, &mut formats)?;
    let mut got: Vec<Got> = results
        .into_iter()
        .map(|result| Got {
            run_dir: run_dir.clone(),
            result,
        })
        .collect();
    let failed: Vec<Scenario> = scenarios
        .iter()
        .filter(|s| {
            got.iter()
                .any(|g| g.result.name == s.name && g.result.outcome.is_bad())
        })
        .cloned()
        .collect();
    if failed.is_empty() || failed.len() > MAX_RETRIED {
        return Ok(AllRuns { got, formats });
    }
    let names: Vec<&str> = failed.iter().map(|s| s.name.as_str()).collect();
    eprintln!("vm trials: retrying once: {}", names.join(", "));
    let (retry_dir, again) = run_once(&cell, &failed, &mut formats)?;
    eprintln!("vm trials: the retries are in {}", retry_dir.display());
    for r in again {
        if let Some(g) = got.iter_mut().find(|g| g.result.name == r.name) {
            let first = g.result.clone();
            if let Some(both) = crtest::model::outcome::combine(vec![first, r]) {
                g.result = both;
            }
        }
    }
    Ok(AllRuns { got, formats })
}

/// One run of `scenarios` (as many guests at once as there are cores) in a new run
/// directory under `target/vm-test-results`; what the format check finds of it is added
/// to `formats`.
fn run_once(
    cell: &vm_run::Cell,
    scenarios: &[Scenario],
    formats: &mut Vec<String>,
) -> Result<(PathBuf, Vec<ScenarioResult>), String> {
    let root = crtest::host::guest_build::workspace_root().join("target/vm-test-results");
    let mut run = RunDir::create(&root).map_err(|e| e.to_string())?;
    eprintln!("vm trials: results in {}", run.dir.display());
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Guests are dealt the scenarios by their last durations here (this root's history).
    let durations = crtest::report::durations::Durations::over_reference(
        crtest::report::durations::Durations::of_history(&root),
    );
    let costs = crtest::host::parallel::Costs {
        durations: &durations,
        cell: &cell.id,
    };
    crtest::host::parallel::run_cell(cell, scenarios, jobs, &costs, &mut run, false)
        .map_err(|e| e.to_string())?;
    crtest::report::views::finish(&mut run, None).map_err(|e| e.to_string())?;
    let results = run.report.cells.remove(0).scenarios;
    if let Err(e) = formats_agree(&run.dir, &results) {
        formats.push(format!("{}: {e}", run.dir.display()));
    }
    Ok((run.dir.clone(), results))
}

/// The run's results.ktap, read by TAP::Parser: one top-level test for the cell, and in it
/// one subtest per scenario with the outcomes of run.json; and the run exported as KCIDB,
/// which the pinned kcidb-io's schema accepts with one test per scenario.
fn formats_agree(dir: &std::path::Path, results: &[ScenarioResult]) -> Result<(), String> {
    use common::tap::{counts, subtests, top_level, Counts};
    let path = dir.join(crtest::report::views::KTAP_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = results.iter().filter(|r| r.outcome.is_bad()).count();
    let skipped = results
        .iter()
        .filter(|r| r.outcome == Outcome::Skip)
        .count();
    let want_top = Counts {
        run: 1,
        passed: usize::from(bad == 0),
        failed: usize::from(bad > 0),
        skipped: 0,
        errors: 0,
    };
    let want_sub = Counts {
        run: results.len(),
        passed: results.len() - bad,
        failed: bad,
        skipped,
        errors: 0,
    };
    let sub = subtests(&text).pop().unwrap_or_default();
    for (what, got, want) in [
        ("cells", counts(&top_level(&text))?, want_top),
        ("scenarios", counts(&sub)?, want_sub),
    ] {
        if got != want {
            return Err(format!(
                "{}: TAP::Parser counts {what} as {got:?}, run.json says {want:?}",
                path.display()
            ));
        }
    }
    let out = dir.join("kcidb");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(["export", "--kcidb"])
        .arg(&out)
        .arg(dir)
        .status()
        .map_err(|e| format!("crtest export: {e}"))?;
    if !status.success() {
        return Err(format!("crtest export --kcidb: {status}"));
    }
    let n = common::kcidb::validate(&out.join(crtest::report::kcidb::KCIDB_FILE))?;
    if n != results.len() {
        return Err(format!(
            "kcidb.json holds {n} tests, the run {}",
            results.len()
        ));
    }
    Ok(())
}
