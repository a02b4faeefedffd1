//! A migrated scenario's one result, made of what each side did: the first failure in the
//! order of the move (with the side that met it), the steps and phases of both sides, the
//! visible state as the target compared it, criu's runs of both, what the move cost and what
//! became of the source's tree.

use crate::model::migration::MoveReport;
use crate::model::outcome::{Failure, MoveMeasure, Outcome, ScenarioResult};
use crate::model::scenario::Scenario;

/// The first thing that went wrong in a move, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstFailure {
    /// `source`, `target` or `host` (the handoff between them).
    pub side: String,
    pub outcome: Outcome,
    pub failure: Failure,
}

impl FirstFailure {
    /// The failure of `report` (from `side`), when it has one.
    pub fn of(side: &str, report: &MoveReport) -> Option<FirstFailure> {
        (report.outcome != Outcome::Pass).then(|| FirstFailure {
            side: side.into(),
            outcome: report.outcome,
            failure: report.failure.clone().unwrap_or_else(|| Failure {
                step: report.verb.clone(),
                message: format!("`{}` did not succeed", report.verb),
                ..Failure::default()
            }),
        })
    }
}

/// What the host measured of one move.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    pub duration_ms: u64,
    pub freeze_ms: Option<u64>,
    pub total_ms: Option<u64>,
    pub host_bytes: u64,
    pub link_bytes: u64,
    /// The CPU flags the source's CPU has and the target's lacks.
    pub cpu_missing: Vec<String>,
}

/// The scenario's result from the source's and the target's halves.
pub fn merged(
    sc: &Scenario,
    mode: &str,
    first: Option<FirstFailure>,
    source: Option<ScenarioResult>,
    target: Option<ScenarioResult>,
    m: Measured,
) -> ScenarioResult {
    let mut r = ScenarioResult::without_steps(&sc.name, Outcome::Pass, Failure::default());
    r.failure = None;
    r.tags = sc.tags.clone();
    r.duration_ms = m.duration_ms;
    let source_fate = source
        .as_ref()
        .and_then(|s| s.migration.as_ref())
        .map(|mm| mm.source.clone())
        .unwrap_or_else(|| "not started".into());
    let mut detail = Vec::new();
    for (side, half) in [("source", source), ("target", target)] {
        let Some(mut h) = half else { continue };
        r.steps.extend(h.steps.drain(..).map(|mut s| {
            s.step = format!("{side}:{}", s.step);
            s
        }));
        let p = &mut r.phases;
        p.ready_ms = p.ready_ms.or(h.phases.ready_ms);
        p.checkpoint_ms = p.checkpoint_ms.or(h.phases.checkpoint_ms);
        if side == "target" {
            p.restore_ms = h.phases.restore_ms;
            p.verify_ms = h.phases.verify_ms;
            r.visible_state = h.visible_state.take();
            detail.extend(h.detail.take());
        }
        r.criu_runs.append(&mut h.criu_runs);
        r.artifacts.append(&mut h.artifacts);
        r.leftovers
            .extend(h.leftovers.drain(..).map(|l| format!("{side}: {l}")));
        if first.is_none() && h.outcome != Outcome::Pass {
            // A side that said nothing went wrong in its answers but did not pass (a skip).
            r.outcome = h.outcome;
            detail.extend(h.detail.take());
            r.failure = h.failure.take();
        }
    }
    match &first {
        Some(f) => {
            r.outcome = f.outcome;
            let mut failure = f.failure.clone();
            failure.message = format!("on the {}: {}", f.side, failure.message);
            if f.side == "target" {
                name_missing_cpu_features(&mut failure, &m.cpu_missing);
            }
            r.failure = Some(failure);
            detail.push(match source_fate.as_str() {
                "running" => "the move failed; the process goes on on the source (verified)".into(),
                "lost" => "the move failed and the process was lost on the source too".into(),
                other => format!("the move failed; the source's tree: {other}"),
            });
        }
        None if source_fate == "lost" => {
            r.outcome = Outcome::Fail;
            r.failure = Some(Failure {
                step: "finish".into(),
                message: "on the source: the stopped tree did not go".into(),
                ..Failure::default()
            });
        }
        None => {}
    }
    if r.outcome == Outcome::Skip {
        r.failure = None;
    }
    r.outcome = crate::model::expectation::apply(&sc.expect, r.outcome, &mut r.failure);
    r.detail = (!detail.is_empty()).then(|| detail.join("; "));
    r.migration = Some(MoveMeasure {
        mode: mode.into(),
        freeze_ms: m.freeze_ms,
        total_ms: m.total_ms,
        host_bytes: m.host_bytes,
        link_bytes: m.link_bytes,
        source: source_fate,
    });
    r
}

/// A failure on the target that a CPU without the source's features explains (criu's CPU
/// check refused the images, or a restored process died of SIGILL): its class is
/// `cpu-mismatch` and its message names the features.
fn name_missing_cpu_features(f: &mut Failure, missing: &[String]) {
    let sigill = f.message.contains("(killed by SIGILL)");
    if missing.is_empty() || !(sigill || f.class.as_deref() == Some("cpu-mismatch")) {
        return;
    }
    const SHOWN: usize = 12;
    let mut named = missing[..missing.len().min(SHOWN)].join(" ");
    if missing.len() > SHOWN {
        named.push_str(&format!(" and {} more", missing.len() - SHOWN));
    }
    f.class = Some("cpu-mismatch".into());
    f.message = format!(
        "{}; the target's CPU lacks what the source's had: {named}",
        f.message
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Phases, StepRecord};
    use std::path::Path;

    fn scenario() -> Scenario {
        Scenario::parse(
            Path::new("/s/counterloop.toml"),
            "description = \"d\"\nworkload = \"counterloop\"\n",
        )
        .unwrap()
        .remove(0)
    }

    fn half(steps: &[(&str, u64)], fate: Option<&str>) -> ScenarioResult {
        let mut h = ScenarioResult::without_steps("counterloop", Outcome::Pass, Failure::default());
        h.failure = None;
        h.steps = steps
            .iter()
            .map(|(s, ms)| StepRecord {
                step: (*s).into(),
                iteration: 1,
                ms: *ms,
                ok: true,
            })
            .collect();
        h.phases = Phases {
            ready_ms: Some(10),
            checkpoint_ms: Some(20),
            restore_ms: Some(30),
            verify_ms: Some(40),
        };
        h.migration = fate.map(|f| MoveMeasure {
            source: f.into(),
            ..MoveMeasure::default()
        });
        h
    }

    #[test]
    fn a_move_that_held_is_a_pass_with_both_sides_steps() {
        let m = Measured {
            duration_ms: 900,
            freeze_ms: Some(300),
            total_ms: Some(500),
            host_bytes: 4096,
            link_bytes: 0,
            cpu_missing: Vec::new(),
        };
        let r = merged(
            &scenario(),
            "images",
            None,
            Some(half(&[("start", 5), ("checkpoint", 20)], Some("gone"))),
            Some(half(&[("restore", 30), ("verify", 40)], None)),
            m,
        );
        assert_eq!(r.outcome, Outcome::Pass);
        let steps: Vec<&str> = r.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            steps,
            [
                "source:start",
                "source:checkpoint",
                "target:restore",
                "target:verify"
            ]
        );
        let mm = r.migration.unwrap();
        assert_eq!((mm.source.as_str(), mm.freeze_ms), ("gone", Some(300)));
    }

    #[test]
    fn a_failed_restore_names_the_target_and_the_source_that_goes_on() {
        let report = MoveReport {
            index: 0,
            verb: "restore".into(),
            ms: 10,
            outcome: Outcome::Fail,
            failure: Some(Failure {
                step: "restore".into(),
                message: "criu restore exited with status 1".into(),
                errno: Some("EINVAL".into()),
                ..Failure::default()
            }),
            criu_ms: None,
            handoff_ms: 0,
            link_bytes: 0,
            half: None,
        };
        let first = FirstFailure::of("target", &report);
        let r = merged(
            &scenario(),
            "lazy",
            first,
            Some(half(&[("checkpoint", 20), ("verify", 3)], Some("running"))),
            Some(half(&[("restore", 30)], None)),
            Measured {
                cpu_missing: vec!["avx2".into()],
                ..Measured::default()
            },
        );
        assert_eq!(r.outcome, Outcome::Fail);
        let f = r.failure.unwrap();
        assert_eq!(
            f.message,
            "on the target: criu restore exited with status 1"
        );
        assert_eq!(f.errno.as_deref(), Some("EINVAL"));
        assert!(r
            .detail
            .unwrap()
            .contains("goes on on the source (verified)"));
        assert_eq!(r.migration.unwrap().source, "running");
    }
}
