//! Turning a raw outcome into the verdict: a scenario expected to fail that fails as
//! expected is `xfail`; one that passes is `xpass`; one that fails another way stays `fail`.

use crate::model::outcome::{Failure, Outcome};
use crate::model::scenario::{Expect, ExpectedOutcome};

/// Names the failure's class (when not named yet) from its evidence.
pub fn diagnose(f: &mut Failure, log_errors: &[&str]) {
    if f.class.is_none() {
        let mut evidence: Vec<&str> = Vec::new();
        evidence.extend(f.first_error_line.as_deref());
        evidence.extend(log_errors.iter().copied());
        evidence.push(&f.message);
        f.class = Some(crate::diagnose::class::classify(
            evidence,
            f.errno.as_deref(),
        ));
    }
}

/// The verdict for `outcome` under `expect`.
pub fn apply(expect: &Expect, outcome: Outcome, failure: &mut Option<Failure>) -> Outcome {
    if expect.outcome == ExpectedOutcome::Pass {
        return outcome;
    }
    match (outcome, failure.as_mut()) {
        (Outcome::Pass, _) => {
            *failure = Some(Failure {
                step: "verify".into(),
                message: format!(
                    "expected to fail ({}) but passed",
                    expect.reason.as_deref().unwrap_or("see the scenario file")
                ),
                ..Failure::default()
            });
            Outcome::Xpass
        }
        (Outcome::Fail, Some(f)) => {
            let class_ok = expect
                .class
                .as_ref()
                .is_none_or(|c| f.class.as_ref() == Some(c));
            let errno_ok = expect
                .errno
                .as_ref()
                .is_none_or(|e| f.errno.as_ref() == Some(e));
            let says = |t: &String| {
                f.first_error_line
                    .as_ref()
                    .is_some_and(|l| l.contains(t.as_str()))
                    || f.message.contains(t.as_str())
            };
            let text_ok = expect.contains.as_ref().is_none_or(says)
                && (expect.contains_any.is_empty() || expect.contains_any.iter().any(says));
            if class_ok && errno_ok && text_ok {
                Outcome::Xfail
            } else {
                f.message =
                    format!(
                        "{} (expected class {} errno {}{}, got class {} errno {})",
                        f.message,
                        expect.class.as_deref().unwrap_or("any"),
                        expect.errno.as_deref().unwrap_or("any"),
                        expect
                            .contains
                            .iter()
                            .map(|t| format!(" and `{t}`"))
                            .chain((!expect.contains_any.is_empty()).then(|| format!(
                                " and one of `{}`",
                                expect.contains_any.join("`, `")
                            )))
                            .collect::<String>(),
                        f.class.as_deref().unwrap_or("none"),
                        f.errno.as_deref().unwrap_or("none"),
                    );
                Outcome::Fail
            }
        }
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect_fail(class: Option<&str>, errno: Option<&str>) -> Expect {
        Expect {
            outcome: ExpectedOutcome::Fail,
            class: class.map(Into::into),
            errno: errno.map(Into::into),
            contains: None,
            contains_any: vec![],
            reason: Some("pid taken".into()),
            variants: None,
            visible_state_ignore: vec![],
            criu: None,
            fixed_by: None,
        }
    }

    fn failure(class: &str, errno: &str) -> Option<Failure> {
        Some(Failure {
            class: Some(class.into()),
            errno: Some(errno.into()),
            message: "criu restore exited with status 1".into(),
            ..Failure::default()
        })
    }

    #[test]
    fn matching_failure_is_xfail() {
        let mut f = failure("pid-collision", "EEXIST");
        let e = expect_fail(Some("pid-collision"), Some("EEXIST"));
        assert_eq!(apply(&e, Outcome::Fail, &mut f), Outcome::Xfail);
    }

    #[test]
    fn other_failure_stays_fail_and_says_why() {
        let mut f = failure("permission", "EPERM");
        let e = expect_fail(Some("pid-collision"), None);
        assert_eq!(apply(&e, Outcome::Fail, &mut f), Outcome::Fail);
        assert!(f.unwrap().message.contains("expected class pid-collision"));
    }

    #[test]
    fn expected_text_must_be_there() {
        let mut f = failure("workload-state", "EEXIST");
        f.as_mut().unwrap().first_error_line = Some("tick 3: personality: expected 1".into());
        let mut e = expect_fail(Some("workload-state"), None);
        e.contains = Some("personality".into());
        assert_eq!(apply(&e, Outcome::Fail, &mut f.clone()), Outcome::Xfail);
        e.contains = Some("NoNewPrivs".into());
        assert_eq!(apply(&e, Outcome::Fail, &mut f.clone()), Outcome::Fail);
        // One of several wordings (criu versions word a refusal differently).
        e.contains = None;
        e.contains_any = vec!["Unsupported mapping".into(), "personality".into()];
        assert_eq!(apply(&e, Outcome::Fail, &mut f.clone()), Outcome::Xfail);
        e.contains_any = vec!["Unsupported mapping".into(), "has uprobes vma".into()];
        assert_eq!(apply(&e, Outcome::Fail, &mut f), Outcome::Fail);
        let said = &f.unwrap().message;
        assert!(
            said.contains("one of `Unsupported mapping`, `has uprobes vma`"),
            "{said}"
        );
    }

    #[test]
    fn pass_is_xpass_and_plain_expectation_changes_nothing() {
        let mut f = None;
        assert_eq!(
            apply(&expect_fail(None, None), Outcome::Pass, &mut f),
            Outcome::Xpass
        );
        assert!(f.is_some());
        let mut none = None;
        assert_eq!(
            apply(&Expect::default(), Outcome::Fail, &mut none),
            Outcome::Fail
        );
    }

    #[test]
    fn diagnosis_fills_the_class() {
        let mut f = Failure {
            first_error_line: Some(
                "Error (criu/cr-restore.c:1469): Can't fork for 156: File exists".into(),
            ),
            errno: Some("EEXIST".into()),
            ..Failure::default()
        };
        diagnose(&mut f, &[]);
        assert_eq!(f.class.as_deref(), Some("pid-collision"));
    }
}
