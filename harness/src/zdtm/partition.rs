//! Which zdtm tests a cell runs: those it cannot are skips with the reason, applied in one
//! place for every way of running them.

use crate::model::outcome::{Failure, Outcome, ScenarioResult};
use crate::model::scenario::Scenario;
use crate::zdtm::known::CellFacts;
use crtest_vm::zdtm_build::ZdtmBuild;

/// The zdtm scenarios a cell cannot run, as skips with the reason: one whose `.desc` the
/// harness does not support, one the cell's `build` lacks (it did not build for the suite;
/// `Err` says why the cell has no build at all), one a shipped rule says is not run there.
/// The others run, with what the rules expect of them on that cell. Other scenarios pass
/// through.
pub fn partition(
    scenarios: Vec<Scenario>,
    facts: &CellFacts,
    build: Result<&ZdtmBuild, &str>,
) -> (Vec<Scenario>, Vec<ScenarioResult>) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    let rules = crate::zdtm::known::shipped();
    for mut sc in scenarios {
        let crate::model::scenario::Target::Zdtm(z) = &sc.target else {
            run.push(sc);
            continue;
        };
        let known = crate::zdtm::known::find(&rules, &z.test, z.flavor, &sc.mode, facts);
        let why = z.unsupported.clone().or_else(|| match build {
            Err(why) => Some(why.to_string()),
            Ok(b) if !b.tests.iter().any(|t| t.name == z.test) => {
                Some(match b.build_errors.get(&z.test) {
                    Some(e) => format!("did not build for {}: {e}", b.suite),
                    None => format!("not among the tests built for {}", b.suite),
                })
            }
            Ok(_) => known
                .filter(|k| k.outcome == "skip")
                .map(|k| format!("known here: {}", k.reason)),
        });
        match why {
            None => {
                if let Some(k) = known.filter(|k| k.outcome == "fail" || k.outcome == "visible") {
                    crate::zdtm::known::expect(&mut sc, k);
                }
                run.push(sc)
            }
            Some(why) => {
                let mut r =
                    ScenarioResult::without_steps(&sc.name, Outcome::Skip, Failure::default());
                r.failure = None;
                r.detail = Some(why);
                r.tags = sc.tags.clone();
                skipped.push(r);
            }
        }
    }
    (run, skipped)
}
