//! One cell's scenarios in several guests at once (`crtest run -j N`).
//!
//! The scenarios are dealt into N shards by their expected cost; each shard runs in its own
//! QEMU (one vCPU each when there are several) and writes into `shards/<i>/` of the run;
//! the shards' reports are then joined into the run's one cell report, in catalog order,
//! with artifact paths relative to the run.

use crate::host::vm_run::{self, Cell};
use crate::model::scenario::Scenario;
use crate::report::durations::Durations;
use crate::report::progress::{Tally, TerminalReporter};
use crate::results::run::{CellReport, GuestTime, ResultsError, RunDir};

/// What a scenario is expected to take on a cell, ms: its last duration there (or on
/// other cells, or a typical one: see [`Durations::estimate`]); its time limit when nothing
/// was measured at all.
pub struct Costs<'a> {
    pub durations: &'a Durations,
    /// The cell's stable key.
    pub cell: &'a str,
}

impl Costs<'_> {
    pub fn of(&self, s: &Scenario) -> u64 {
        match self.durations.estimate(self.cell, &s.name) {
            Some((ms, _)) => ms.max(1),
            None => s.timeout_s * 1000,
        }
    }
}

/// Deals scenarios into `n` shards, largest expected cost first, each to the shard with the
/// least cost so far; the scenarios of a userland variant are dealt as one (one image, one
/// boot), unless they are more than one shard's share (zdtm's hundreds of tests): then one
/// by one, each shard booting the variant once. Deterministic: ties go to the lower shard.
pub fn deal(scenarios: &[Scenario], n: usize, costs: &Costs) -> Vec<Vec<Scenario>> {
    let n = n.max(1);
    // Scenarios of one userland variant go to one shard together: one image, one boot.
    let mut units: Vec<Vec<&Scenario>> = Vec::new();
    for sc in scenarios {
        let same = sc.userland_variant.as_ref().and_then(|v| {
            units
                .iter_mut()
                .find(|u| u[0].userland_variant.as_ref() == Some(v))
        });
        match same {
            Some(unit) => unit.push(sc),
            None => units.push(vec![sc]),
        }
    }
    let cost = |u: &Vec<&Scenario>| u.iter().map(|s| costs.of(s)).sum::<u64>();
    let share = units.iter().map(cost).sum::<u64>() / n as u64;
    let units: Vec<Vec<&Scenario>> = units
        .into_iter()
        .flat_map(|u| {
            if u.len() > 1 && cost(&u) > share {
                u.into_iter().map(|s| vec![s]).collect()
            } else {
                vec![u]
            }
        })
        .collect();
    let mut units = units;
    units.sort_by(|a, b| cost(b).cmp(&cost(a)).then(a[0].name.cmp(&b[0].name)));
    let mut shards: Vec<(u64, Vec<Scenario>)> = vec![(0, Vec::new()); n];
    for unit in units {
        let (total, list) = shards
            .iter_mut()
            .min_by_key(|(total, _)| *total)
            .expect("at least one shard");
        *total += cost(&unit);
        list.extend(unit.into_iter().cloned());
    }
    shards
        .into_iter()
        .map(|(_, list)| list)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Joins shard reports into one; scenarios in the order of `catalog`.
pub fn join(mut parts: Vec<(String, CellReport)>, catalog: &[Scenario]) -> Option<CellReport> {
    let (_, first) = parts.first()?.clone();
    let mut joined = CellReport {
        scenarios: Vec::new(),
        notes: Vec::new(),
        boot_ms: None,
        resume_ms: None,
        boot_marks: Vec::new(),
        ..first
    };
    joined.qemu.boots = 0;
    joined.qemu.resumes = 0;
    joined.guests = Vec::new();
    for (dir, part) in parts.iter_mut() {
        joined.guests.append(&mut part.guests);
        joined.qemu.boots += part.qemu.boots;
        joined.qemu.resumes += part.qemu.resumes;
        if part.resume_ms.is_some()
            && (joined.resume_ms.is_none() || part.resume_ms < joined.resume_ms)
        {
            joined.resume_ms = part.resume_ms;
        }
        let faster = joined.boot_ms.is_none() || part.boot_ms < joined.boot_ms;
        if faster && part.boot_ms.is_some() {
            joined.boot_ms = part.boot_ms;
            joined.boot_marks = part.boot_marks.clone();
        }
        for n in &part.notes {
            if !joined.notes.contains(n) {
                joined.notes.push(n.clone());
            }
        }
        for mut s in std::mem::take(&mut part.scenarios) {
            for a in s.paths_mut() {
                *a = format!("{dir}/{a}");
            }
            joined.scenarios.push(s);
        }
    }
    let rank = |name: &str| {
        catalog
            .iter()
            .position(|s| s.name == name)
            .unwrap_or(usize::MAX)
    };
    joined.scenarios.sort_by_key(|s| rank(&s.name));
    Some(joined)
}

/// Runs the cell's scenarios in `jobs` guests, dealt by `costs`, and adds the joined cell
/// report to `run`, with each guest's expected and busy time.
pub fn run_cell(
    cell: &Cell,
    scenarios: &[Scenario],
    jobs: usize,
    costs: &Costs,
    run: &mut RunDir,
    verbose: bool,
) -> Result<(), ResultsError> {
    let shards = deal(scenarios, jobs, costs);
    let cell = Cell {
        cpus: if shards.len() > 1 { 1 } else { cell.cpus },
        ..cell.clone()
    };
    let run_id = run.report.run_id.clone();
    let tally = Tally::new(scenarios.len());
    let results: Vec<Result<(String, CellReport), ResultsError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .iter()
            .enumerate()
            .map(|(i, shard)| {
                let (cell, run_id, tally) = (&cell, &run_id, tally.clone());
                let rel = format!("shards/{i}");
                let dir = run.dir.join(&rel);
                scope.spawn(move || {
                    let started = std::time::Instant::now();
                    let mut sub = RunDir::create_at(&dir, run_id)?;
                    let mut reporter = TerminalReporter::new(verbose)
                        .for_guest(i + 1)
                        .counting(tally);
                    vm_run::run_cell(cell, shard, &[], &mut sub, &mut reporter)?;
                    crate::report::views::finish(&mut sub, crate::host::interrupt::stopped_by())?;
                    let mut report = sub.report.cells.pop().unwrap_or_default();
                    report.guests = vec![GuestTime {
                        dir: rel.clone(),
                        scenarios: shard.len(),
                        expected_ms: shard.iter().map(|s| costs.of(s)).sum(),
                        busy_ms: started.elapsed().as_millis() as u64,
                    }];
                    Ok((rel, report))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(Default::default())))
            .collect()
    });
    let mut parts = Vec::new();
    for r in results {
        parts.push(r?);
    }
    if let Some(mut joined) = join(parts, scenarios) {
        joined.notes.push(format!(
            "ran in {} guests at once ({} vCPU each); shards under shards/",
            shards.len(),
            cell.cpus
        ));
        run.report.cells.push(joined);
    }
    run.save()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Failure, Outcome, ScenarioResult};
    use std::path::Path;

    fn sc(name: &str, timeout: u64) -> Scenario {
        let mut s = Scenario::parse(
            Path::new(&format!("{name}.toml")),
            "description = \"d\"\nworkload = \"counterloop\"\n",
        )
        .unwrap()
        .remove(0);
        s.timeout_s = timeout;
        s
    }

    /// Costs by time limits: nothing measured.
    fn limits() -> Costs<'static> {
        static NONE: std::sync::OnceLock<Durations> = std::sync::OnceLock::new();
        Costs {
            durations: NONE.get_or_init(Durations::default),
            cell: "cell",
        }
    }

    #[test]
    fn measured_durations_deal_instead_of_time_limits() {
        let all = vec![sc("a", 180), sc("b", 180), sc("c", 180), sc("slow", 180)];
        let mut d = Durations::default();
        let cell = d.cells.entry("cell".into()).or_default();
        for (n, ms) in [("a", 10_000), ("b", 12_000), ("c", 9_000), ("slow", 30_000)] {
            cell.scenarios.insert(n.into(), ms);
        }
        let costs = Costs {
            durations: &d,
            cell: "cell",
        };
        let shards = deal(&all, 2, &costs);
        let names = |v: &Vec<Scenario>| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&shards[0]), ["slow"]);
        assert_eq!(names(&shards[1]), ["b", "a", "c"]);
        // A scenario never measured counts as a typical one (the median, 10 s).
        assert_eq!(costs.of(&sc("new", 180)), 10_000);
    }

    #[test]
    fn dealing_balances_cost_and_is_deterministic() {
        let all = vec![
            sc("a", 180),
            sc("big", 600),
            sc("b", 180),
            sc("c", 180),
            sc("d", 180),
        ];
        let shards = deal(&all, 2, &limits());
        let names = |v: &Vec<Scenario>| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&shards[0]), ["big"]);
        assert_eq!(names(&shards[1]), ["a", "b", "c", "d"]);
        assert_eq!(deal(&all, 2, &limits()).len(), 2);
        // The scenarios of a userland variant stay together.
        let mut v1 = sc("v1", 100);
        let mut v2 = sc("v2", 100);
        v1.userland_variant = Some("vnc".into());
        v2.userland_variant = Some("vnc".into());
        let shards = deal(&[sc("a", 150), v1, sc("b", 150), v2], 2, &limits());
        assert_eq!(names(&shards[0]), ["v1", "v2"]);
        assert_eq!(names(&shards[1]), ["a", "b"]);
        assert_eq!(deal(&all[..1], 4, &limits()).len(), 1, "no empty shards");
        // A variant with more than a shard's share (zdtm's tests) is dealt one by one.
        let many: Vec<Scenario> = (0..10)
            .map(|i| {
                let mut s = sc(&format!("z{i}"), 100);
                s.userland_variant = Some("zdtm".into());
                s
            })
            .chain([sc("plain", 100)])
            .collect();
        let shards = deal(&many, 2, &limits());
        assert_eq!((shards[0].len(), shards[1].len()), (6, 5), "{shards:?}");
    }

    #[test]
    fn joined_report_keeps_catalog_order_and_relocates_artifacts() {
        let all = vec![sc("a", 1), sc("b", 1), sc("c", 1)];
        let result = |name: &str| {
            let mut r = ScenarioResult::without_steps(name, Outcome::Pass, Failure::default());
            r.artifacts = vec![format!("scenarios/{name}/dump-1.log")];
            r.screens = Some(crate::model::outcome::Screens {
                before: Some(format!("scenarios/{name}/screen-before.png")),
                ..Default::default()
            });
            r
        };
        let part = |names: &[&str], boot| CellReport {
            id: "cell".into(),
            boot_ms: Some(boot),
            scenarios: names.iter().map(|n| result(n)).collect(),
            ..CellReport::default()
        };
        let joined = join(
            vec![
                ("shards/0".into(), part(&["c"], 900)),
                ("shards/1".into(), part(&["b", "a"], 800)),
            ],
            &all,
        )
        .unwrap();
        let names: Vec<_> = joined.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(joined.boot_ms, Some(800));
        assert_eq!(
            joined.scenarios[2].artifacts,
            ["shards/0/scenarios/c/dump-1.log"]
        );
        let screens = joined.scenarios[2].screens.as_ref().unwrap();
        assert_eq!(
            screens.before.as_deref(),
            Some("shards/0/scenarios/c/screen-before.png")
        );
    }
}
