//! How a bisect step is judged, as syzbot's and KernelCI's bisections judge theirs: each run
//! of the selected scenarios is `passed`, `failed` (with the hunted failure) or `other`
//! (skipped, an infrastructure error, a timeout, another failure than the one hunted); a
//! revision with several runs `fails` when at least max(2, n/6) runs failed (all of them
//! when n < 2), `passes` when none failed and at least half passed, and is unknown
//! otherwise (a flake below the threshold, too many runs that judged nothing): unknown is
//! `git bisect skip`.

use crate::model::outcome::{Outcome, ScenarioResult};
use serde::{Deserialize, Serialize};

/// What one run of the selected scenarios came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunVerdict {
    /// Every selected scenario passed (or passed against an expected failure).
    Passed,
    /// A selected scenario failed as the hunt says (any failure, or the one `--match` names).
    Failed,
    /// Nothing to judge by: a skip, an infrastructure error, a timeout, another failure.
    Other,
}

/// What a revision comes to over its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Passes,
    Fails,
    /// Neither, by the thresholds: the step is skipped.
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Passes => "passes",
            State::Fails => "fails",
            State::Unknown => "unknown",
        }
    }
}

/// Whether a failed scenario is the failure hunted: with no `--match`, any; with one, its
/// class, or a text found in its message, first error line, errno or detail.
pub fn is_hunted(wanted: Option<&str>, r: &ScenarioResult) -> bool {
    let Some(want) = wanted else { return true };
    let f = r.failure.as_ref();
    let texts = [
        f.map(|f| f.message.as_str()),
        f.and_then(|f| f.first_error_line.as_deref()),
        f.and_then(|f| f.errno.as_deref()),
        r.detail.as_deref(),
    ];
    f.and_then(|f| f.class.as_deref()) == Some(want)
        || texts.iter().flatten().any(|t| t.contains(want))
}

/// One scenario's line in a verdict: `NAME: outcome (class): first line`.
fn said(r: &ScenarioResult) -> String {
    let mut s = format!("{}: {}", r.name, r.outcome.as_str());
    if let Some(f) = &r.failure {
        if let Some(c) = &f.class {
            s.push_str(&format!(" ({c})"));
        }
        let line = f.first_error_line.as_deref().unwrap_or(&f.message);
        if !line.is_empty() {
            s.push_str(&format!(": {line}"));
        }
    }
    s
}

/// Whether the scenario's C/R failed (expected or not, or the kernel panicked).
fn failed(r: &&ScenarioResult) -> bool {
    matches!(
        r.outcome,
        Outcome::Fail | Outcome::Xfail | Outcome::Panic | Outcome::Flaky
    )
}

/// The first scenario of a run that failed as the hunt says.
pub fn hunted<'a>(
    results: &'a [ScenarioResult],
    wanted: Option<&str>,
) -> Option<&'a ScenarioResult> {
    results.iter().filter(failed).find(|r| is_hunted(wanted, r))
}

/// A run's verdict and why: the first hunted failure, else the first other thing, else
/// `passed`.
pub fn judge_run(results: &[ScenarioResult], wanted: Option<&str>) -> (RunVerdict, String) {
    if results.is_empty() {
        return (RunVerdict::Other, "no scenario ran".into());
    }
    if let Some(r) = hunted(results, wanted) {
        return (RunVerdict::Failed, said(r));
    }
    if let Some(r) = results.iter().find(failed) {
        return (
            RunVerdict::Other,
            format!("another failure than the one hunted: {}", said(r)),
        );
    }
    match results
        .iter()
        .find(|r| !matches!(r.outcome, Outcome::Pass | Outcome::Xpass))
    {
        Some(r) => (RunVerdict::Other, said(r)),
        None => (RunVerdict::Passed, "passed".into()),
    }
}

/// How many of `n` runs must fail for the revision to fail: max(2, ceil(n/6)), and all of
/// them when there are fewer than 2.
pub fn fail_threshold(n: usize) -> usize {
    n.div_ceil(6).max(2.min(n)).max(1)
}

/// A revision's state over its runs, and why.
pub fn judge_step(runs: &[RunVerdict]) -> (State, String) {
    let n = runs.len();
    let failed = runs.iter().filter(|v| **v == RunVerdict::Failed).count();
    let passed = runs.iter().filter(|v| **v == RunVerdict::Passed).count();
    let need = fail_threshold(n);
    if n > 0 && failed >= need {
        (State::Fails, format!("{failed} of {n} runs failed"))
    } else if failed == 0 && passed > 0 && passed * 2 >= n {
        (State::Passes, format!("{passed} of {n} runs passed"))
    } else if failed > 0 {
        (
            State::Unknown,
            format!("{failed} of {n} runs failed, fewer than the {need} that make it fail, so it does not pass either (flaky)"),
        )
    } else {
        (
            State::Unknown,
            format!("{passed} of {n} runs passed, the rest judged nothing"),
        )
    }
}

/// Whether an unknown step is worth one more try: nothing failed (errors, timeouts, skips),
/// as opposed to a flake, which another try would not settle.
pub fn retry_worth(runs: &[RunVerdict]) -> bool {
    !runs.contains(&RunVerdict::Failed) && runs.contains(&RunVerdict::Other)
}

/// Why the endpoints give no direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoDirection {
    #[error("an endpoint could not be judged (see its runs)")]
    Unknown,
    #[error("both endpoints {}: nothing changed between them for these scenarios", .0.as_str())]
    Same(State),
}

/// Which way the range goes, decided from its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Passes at the older revision, fails at the newer: the first bad commit is hunted.
    Regression,
    /// Fails at the older revision, passes at the newer: the first fixed commit is hunted.
    Fix,
}

impl Direction {
    /// The direction two endpoints say, or why they say none.
    pub fn from_endpoints(old: State, new: State) -> Result<Direction, NoDirection> {
        match (old, new) {
            (State::Passes, State::Fails) => Ok(Direction::Regression),
            (State::Fails, State::Passes) => Ok(Direction::Fix),
            (State::Unknown, _) | (_, State::Unknown) => Err(NoDirection::Unknown),
            (a, _) => Err(NoDirection::Same(a)),
        }
    }

    /// git bisect's terms: the older state's, then the newer's.
    pub fn terms(self) -> (&'static str, &'static str) {
        match self {
            Direction::Regression => ("good", "bad"),
            Direction::Fix => ("broken", "fixed"),
        }
    }

    /// The term a judged state is marked with (`None`: skip).
    pub fn term(self, state: State) -> Option<&'static str> {
        let (old, new) = self.terms();
        match (self, state) {
            (_, State::Unknown) => None,
            (Direction::Regression, State::Passes) | (Direction::Fix, State::Fails) => Some(old),
            _ => Some(new),
        }
    }

    /// `first bad commit` or `first fixed commit`.
    pub fn culprit_label(self) -> &'static str {
        match self {
            Direction::Regression => "first bad commit",
            Direction::Fix => "first fixed commit",
        }
    }

    /// The state the culprit has (the newer one) and its parent has (the older one).
    pub fn states(self) -> (State, State) {
        match self {
            Direction::Regression => (State::Fails, State::Passes),
            Direction::Fix => (State::Passes, State::Fails),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Regression => "regression",
            Direction::Fix => "fix",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::Failure;
    use rstest::rstest;

    fn res(name: &str, outcome: Outcome, class: Option<&str>, line: &str) -> ScenarioResult {
        let failure = Failure {
            class: class.map(Into::into),
            first_error_line: (!line.is_empty()).then(|| line.to_string()),
            message: "criu dump exited with status 1".into(),
            ..Failure::default()
        };
        ScenarioResult::without_steps(name, outcome, failure)
    }

    #[rstest]
    #[case(1, 1)]
    #[case(2, 2)]
    #[case(3, 2)]
    #[case(10, 2)]
    #[case(12, 2)]
    #[case(13, 3)]
    #[case(20, 4)]
    fn thresholds_follow_syzbot(#[case] n: usize, #[case] need: usize) {
        assert_eq!(fail_threshold(n), need);
    }

    #[test]
    fn runs_are_judged_by_the_hunted_failure() {
        use Outcome::*;
        let sock = "Error (criu/sockets.c:123): Can't get 1:16 opt: Operation not supported";
        let failing = [
            res("a", Pass, None, ""),
            res("tcp", Xfail, Some("version-mismatch"), sock),
        ];
        assert_eq!(judge_run(&failing, None).0, RunVerdict::Failed);
        assert_eq!(
            judge_run(&failing, Some("version-mismatch")),
            (
                RunVerdict::Failed,
                format!("tcp: xfail (version-mismatch): {sock}")
            )
        );
        assert_eq!(judge_run(&failing, Some("16 opt")).0, RunVerdict::Failed);
        let (v, why) = judge_run(&failing, Some("pid-collision"));
        assert_eq!(v, RunVerdict::Other);
        assert!(why.starts_with("another failure than the one hunted: tcp"));
        assert_eq!(
            judge_run(&[res("a", Pass, None, ""), res("b", Xpass, None, "")], None).0,
            RunVerdict::Passed
        );
        assert_eq!(
            judge_run(
                &[res("a", Pass, None, ""), res("b", Error, None, "boot")],
                None
            ),
            (RunVerdict::Other, "b: error: boot".into())
        );
        assert_eq!(
            judge_run(&[res("a", Panic, None, "")], None).0,
            RunVerdict::Failed
        );
        assert_eq!(judge_run(&[], None).0, RunVerdict::Other);
    }

    #[test]
    fn steps_need_their_thresholds() {
        use RunVerdict::*;
        assert_eq!(judge_step(&[Failed]).0, State::Fails);
        assert_eq!(judge_step(&[Passed]).0, State::Passes);
        assert_eq!(judge_step(&[Other]).0, State::Unknown);
        assert_eq!(judge_step(&[Passed, Passed, Failed]).0, State::Unknown);
        assert_eq!(judge_step(&[Passed, Failed, Failed]).0, State::Fails);
        assert_eq!(judge_step(&[Passed, Other, Other]).0, State::Unknown);
        assert_eq!(judge_step(&[Passed, Passed, Other]).0, State::Passes);
        let mut ten = vec![Passed; 9];
        ten.push(Failed);
        let (s, why) = judge_step(&ten);
        assert_eq!(s, State::Unknown);
        assert!(
            why.contains("1 of 10 runs failed, fewer than the 2"),
            "{why}"
        );
        assert!(retry_worth(&[Other, Other]));
        assert!(!retry_worth(&[Other, Failed]));
        assert!(!retry_worth(&[]));
    }

    #[test]
    fn endpoints_decide_the_direction() {
        use State::*;
        let r = Direction::from_endpoints(Passes, Fails).unwrap();
        assert_eq!(r, Direction::Regression);
        assert_eq!(r.term(Passes), Some("good"));
        assert_eq!(r.term(Fails), Some("bad"));
        let f = Direction::from_endpoints(Fails, Passes).unwrap();
        assert_eq!(f, Direction::Fix);
        assert_eq!(f.term(Fails), Some("broken"));
        assert_eq!(f.term(Passes), Some("fixed"));
        assert_eq!(f.term(Unknown), None);
        assert_eq!(f.culprit_label(), "first fixed commit");
        assert_eq!(
            Direction::from_endpoints(Passes, Passes)
                .unwrap_err()
                .to_string(),
            "both endpoints passes: nothing changed between them for these scenarios"
        );
        assert!(Direction::from_endpoints(Unknown, Fails).is_err());
    }
}
