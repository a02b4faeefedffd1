//! `junit.xml`: one test suite per cell, one test case per scenario.

use crate::model::outcome::Outcome;
use crate::results::run::RunReport;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};
use std::time::Duration;

pub fn render(run: &RunReport) -> String {
    let mut report = Report::new(format!("crtest {}", run.run_id));
    for cell in &run.cells {
        let mut suite = TestSuite::new(cell.id.clone());
        for s in &cell.scenarios {
            let status = match s.outcome {
                Outcome::Pass | Outcome::Xfail => TestCaseStatus::success(),
                // As nextest writes it: a success with its failed attempts as flakyFailure.
                Outcome::Flaky => {
                    let mut st = TestCaseStatus::success();
                    for a in s.attempts.iter().filter(|a| a.outcome.is_bad()) {
                        let kind = match a.outcome {
                            Outcome::Fail | Outcome::Xpass => NonSuccessKind::Failure,
                            _ => NonSuccessKind::Error,
                        };
                        let mut rerun = TestRerun::new(kind);
                        rerun.set_time(Duration::from_millis(a.duration_ms));
                        rerun.set_type(a.outcome.as_str());
                        if let Some(f) = &a.failure {
                            rerun.set_message(f.message.clone());
                            rerun.set_description(crate::report::text::failure_block(f));
                        }
                        st.add_rerun(rerun);
                    }
                    st
                }
                Outcome::Skip => TestCaseStatus::skipped(),
                Outcome::Fail | Outcome::Xpass => {
                    TestCaseStatus::non_success(NonSuccessKind::Failure)
                }
                Outcome::Error | Outcome::Timeout | Outcome::Panic => {
                    TestCaseStatus::non_success(NonSuccessKind::Error)
                }
            };
            let mut case = TestCase::new(s.name.clone(), status);
            case.set_classname(cell.id.clone())
                .set_time(Duration::from_millis(s.duration_ms));
            if let Some(f) = &s.failure {
                if s.outcome.is_bad() {
                    let mut text = crate::report::text::failure_block(f);
                    text.insert_str(0, &format!("outcome: {}\n", s.outcome));
                    case.status.set_message(f.message.clone());
                    case.status.set_type(s.outcome.as_str());
                    case.status.set_description(text);
                }
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{combine, Failure, ScenarioResult};
    use crate::results::fixtures;

    #[test]
    fn a_flaky_scenario_is_a_success_with_its_failed_attempts() {
        let mut report = fixtures::matrix_report();
        let pass = ScenarioResult::without_steps("lxc-posixshm", Outcome::Pass, Failure::default());
        let fail = ScenarioResult::without_steps(
            "lxc-posixshm",
            Outcome::Fail,
            Failure {
                step: "verify".into(),
                message: "the unlinked shm mapping shows as /usr/sbin/criu".into(),
                ..Failure::default()
            },
        );
        let flaky = combine(vec![pass.clone(), fail, pass]).unwrap();
        report.cells[0].scenarios = vec![flaky];
        let xml = render(&report);
        let case = xml
            .split("<testcase")
            .find(|c| c.contains("lxc-posixshm"))
            .unwrap();
        assert!(case.contains("<flakyFailure"), "{case}");
        assert!(case.contains("shows as /usr/sbin/criu"), "{case}");
        assert!(
            !case.contains("<failure"),
            "a flaky test is not a failure: {case}"
        );
    }
}
