//! `crtest run --repeat N`: the selection runs N times, each round in fresh guests into
//! `rounds/<i>/` of the run directory; the run's one cell then holds each scenario once,
//! combined over its attempts (`flaky` when some passed and some did not; every attempt
//! kept under `attempts`, its files under its round's folder).

use crate::model::outcome::{combine, ScenarioResult};
use crate::results::run::{CellReport, ResultsError, RunDir};

/// Where round `i` (from 1) of a repeated run goes, relative to the run directory.
pub fn round_dir(i: u32) -> String {
    format!("rounds/{i}")
}

/// Runs `once` into a round directory `rounds` times (or until a signal asks to stop) and
/// adds the combined cell to `run`. `once` gets the round's run directory.
pub fn run_rounds<E: From<ResultsError>>(
    run: &mut RunDir,
    rounds: u32,
    mut once: impl FnMut(&mut RunDir) -> Result<(), E>,
) -> Result<(), E> {
    let mut done = Vec::new();
    let mut first_err = None;
    for i in 1..=rounds {
        let rel = round_dir(i);
        let mut sub =
            RunDir::create_at(&run.dir.join(&rel), &run.report.run_id).map_err(E::from)?;
        eprintln!("crtest: round {i} of {rounds} in {}", sub.dir.display());
        let res = once(&mut sub);
        crate::report::views::finish(&mut sub, crate::host::interrupt::stopped_by())
            .map_err(E::from)?;
        if let Some(cell) = sub.report.cells.pop() {
            done.push((rel, cell));
        }
        if let Err(e) = res {
            first_err.get_or_insert(e);
            break;
        }
        if crate::host::interrupt::requested().is_some() {
            break;
        }
    }
    if let Some(mut cell) = join_rounds(done) {
        cell.notes.push(format!(
            "each scenario ran {rounds} times (rounds under rounds/); flaky = passed on some attempts only"
        ));
        run.report.cells.push(cell);
    }
    run.save().map_err(E::from)?;
    first_err.map_or(Ok(()), Err)
}

/// The rounds' cells as one: the first round's cell with every scenario combined over its
/// attempts, in the first round's order; paths moved under each round's folder.
pub fn join_rounds(rounds: Vec<(String, CellReport)>) -> Option<CellReport> {
    let mut rounds = rounds.into_iter();
    let (dir, mut cell) = rounds.next()?;
    let mut attempts: Vec<(String, Vec<ScenarioResult>)> = Vec::new();
    let mut add = |dir: &str, scenarios: Vec<ScenarioResult>| {
        for mut s in scenarios {
            for p in s.paths_mut() {
                *p = format!("{dir}/{p}");
            }
            match attempts.iter_mut().find(|(n, _)| *n == s.name) {
                Some((_, v)) => v.push(s),
                None => attempts.push((s.name.clone(), vec![s])),
            }
        }
    };
    add(&dir, std::mem::take(&mut cell.scenarios));
    for (dir, more) in rounds {
        cell.qemu.boots += more.qemu.boots;
        for n in more.notes {
            if !cell.notes.contains(&n) {
                cell.notes.push(n);
            }
        }
        add(&dir, more.scenarios);
    }
    cell.scenarios = attempts
        .into_iter()
        .filter_map(|(_, a)| combine(a))
        .collect();
    Some(cell)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Failure, Outcome};

    fn cell(outcomes: &[(&str, Outcome)]) -> CellReport {
        CellReport {
            id: "c".into(),
            scenarios: outcomes
                .iter()
                .map(|(n, o)| {
                    let mut r = ScenarioResult::without_steps(n, *o, Failure::default());
                    r.artifacts = vec![format!("guest/scenarios/{n}/dump-1.log")];
                    r
                })
                .collect(),
            ..CellReport::default()
        }
    }

    #[test]
    fn rounds_combine_per_scenario() {
        use Outcome::*;
        let joined = join_rounds(vec![
            ("rounds/1".into(), cell(&[("a", Pass), ("b", Pass)])),
            ("rounds/2".into(), cell(&[("a", Fail), ("b", Pass)])),
            ("rounds/3".into(), cell(&[("a", Pass), ("b", Pass)])),
        ])
        .unwrap();
        let got: Vec<_> = joined
            .scenarios
            .iter()
            .map(|s| (s.name.as_str(), s.outcome))
            .collect();
        assert_eq!(got, [("a", Flaky), ("b", Pass)]);
        let a = &joined.scenarios[0];
        assert_eq!(a.artifacts, ["rounds/2/guest/scenarios/a/dump-1.log"]);
        assert_eq!(a.attempts.len(), 3);
        assert_eq!(
            a.attempts[0].artifacts,
            ["rounds/1/guest/scenarios/a/dump-1.log"]
        );
        assert!(join_rounds(vec![]).is_none());
    }
}
