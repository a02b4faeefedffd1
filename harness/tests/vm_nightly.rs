//! The nightly's machinery in real guests: a profile of two parts that share a cell and one
//! migration pair, split by durations into two shards, each run by `crtest matrix --profile
//! --shard i/2` as a CI machine would, then `crtest merge`: every pair ran exactly once, the
//! shared cell ran both parts' scenarios, the pair moved its scenario, and the shards and
//! the merge recorded their split, their expected and actual times and the durations for
//! the next night.
//!
//! When the guest cannot be had the trial is reported ignored with the reason, never
//! passed; with `CRTEST_REQUIRE_VM=1` (CI) that is a failure.

mod common {
    pub mod cell;
}

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn main() {
    let args = Arguments::from_args();
    let name = "vm_nightly::two_shards_of_a_profile_merged";
    let wanted = args.filter.as_deref().is_none_or(|f| name.contains(f)) && !args.list;
    // The default cell prepared first: its images are the cache the shards find.
    let unavailable = match wanted {
        false => None,
        true => common::cell::default_cell().err(),
    };
    let require = std::env::var("CRTEST_REQUIRE_VM").is_ok_and(|v| v == "1");
    let why = unavailable.clone();
    let trial = Trial::test(name, move || match why {
        Some(why) => Err(Failed::from(format!("no guest: {why}"))),
        None => two_shards().map_err(Failed::from),
    })
    .with_ignored_flag(unavailable.is_some() && !require);
    libtest_mimic::run(&args, vec![trial]).exit();
}

fn crtest(args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_crtest"))
        .args(args)
        .env_remove("CI_NODE_INDEX")
        .env_remove("CI_NODE_TOTAL")
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .map_err(|e| format!("crtest: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(stderr),
        code => Err(format!(
            "crtest {} exited {code:?}:\n{stderr}",
            args.join(" ")
        )),
    }
}

fn run_json(root: &Path) -> Result<Value, String> {
    let path = root.join("latest/run.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn two_shards() -> Result<(), String> {
    let suite = crtest_vm::apt::host_suite().map_err(|e| e.to_string())?;
    let root = crtest::host::guest_build::workspace_root().join("target/vm-test-results");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let t = tempfile::tempdir_in(&root).map_err(|e| e.to_string())?;
    let profile = t.path().join("trial.toml");
    std::fs::write(
        &profile,
        format!(
            "description = \"two parts sharing a cell, one migration pair\"\n\
             [[part]]\nname = \"a\"\nkernels = [\"{suite}\"]\nuserlands = [\"{suite}\"]\n\
             scenarios = [\"counterloop\", \"fileio1\"]\n\
             [[part]]\nname = \"b\"\nkernels = [\"{suite}\"]\nuserlands = [\"{suite}\"]\n\
             scenarios = [\"ptree1\", \"fileio1\"]\n\
             [[migrate]]\nname = \"m\"\nkernels = [\"{suite}\"]\nuserland = \"{suite}\"\n\
             scenarios = [\"counterloop\"]\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    // Last night's durations, as a CI job carries them (inputs of the split, not results).
    let cell = format!("kernel-{suite}+userland-{suite}");
    let durations = t.path().join("durations.json");
    std::fs::write(
        &durations,
        format!(
            "{{\"format\": \"crtest-durations-v1\", \"cells\": {{\"{cell}\": {{\"overhead_ms\": 5000, \
             \"scenarios\": {{\"counterloop\": 4000, \"fileio1\": 3000, \"ptree1\": 5000}}}}}}}}"
        ),
    )
    .map_err(|e| e.to_string())?;
    let (p, d) = (
        profile.display().to_string(),
        durations.display().to_string(),
    );
    let mut shards = Vec::new();
    for (i, shard) in ["1/2", "auto/2"].iter().enumerate() {
        // The second as a Kubernetes Indexed Job's pod: JOB_COMPLETION_INDEX=1.
        let dir = t.path().join(format!("shard-{}", i + 1));
        let out = dir.display().to_string();
        let args = [
            "matrix",
            "--profile",
            &p,
            "--shard",
            shard,
            "-j",
            "1",
            "--durations",
            &d,
        ];
        crtest(&[&args[..], &["--results", &out]].concat())?;
        shards.push(dir);
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (i, dir) in shards.iter().enumerate() {
        let r = run_json(dir)?;
        let m = &r["matrix"];
        if m["shard"] != format!("{}/2", i + 1) || m["split"]["method"] != "durations" {
            return Err(format!("shard {}: {}", i + 1, m));
        }
        if m["split"]["expected_ms"].as_array().map(Vec::len) != Some(2)
            || r["wall_ms"].as_u64().is_none()
        {
            return Err(format!("shard {}: no times: {r}", i + 1));
        }
        for c in r["cells"].as_array().into_iter().flatten() {
            for s in c["scenarios"].as_array().into_iter().flatten() {
                pairs.push((
                    c["id"].as_str().unwrap_or("").into(),
                    s["name"].as_str().unwrap_or("").into(),
                ));
            }
        }
    }
    pairs.sort();
    let mv = format!("move-images-{cell}--{cell}");
    let want = [
        (cell.clone(), "counterloop".to_string()),
        (cell.clone(), "fileio1".to_string()),
        (cell.clone(), "ptree1".to_string()),
        (mv.clone(), "counterloop".to_string()),
    ];
    if pairs != want {
        return Err(format!(
            "the shards ran {pairs:?}, want each of {want:?} once"
        ));
    }
    let merged = t.path().join("merged");
    let (a, b) = (shards[0].join("latest"), shards[1].join("latest"));
    let said = crtest(&[
        "merge",
        &a.display().to_string(),
        &b.display().to_string(),
        "--results",
        &merged.display().to_string(),
    ])?;
    if !said.contains("balance: slowest shard / mean = ") {
        return Err(format!("merge did not report the balance:\n{said}"));
    }
    let r = run_json(&merged)?;
    let times = r["matrix"]["shard_times"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if times.len() != 2
        || times
            .iter()
            .any(|t| t["wall_ms"].as_u64().is_none() || t["expected_ms"].as_u64().is_none())
    {
        return Err(format!("merged shard times: {times:?}"));
    }
    for c in r["cells"].as_array().into_iter().flatten() {
        for s in c["scenarios"].as_array().into_iter().flatten() {
            if s["outcome"] != "pass" {
                return Err(format!("{} {}: {}", c["id"], s["name"], s["failure"]));
            }
        }
        if c["id"] == mv.as_str() && c["migration"]["mode"] != "images" {
            return Err(format!("the pair's cell has no migration: {c}"));
        }
    }
    let next = crtest::report::durations::Durations::load(&merged.join("latest/durations.json"))
        .map_err(|e| e.to_string())?;
    if next.pairs() != 4 {
        return Err(format!("durations.json for the next night: {next:?}"));
    }
    Ok(())
}
