//! `junit.xml`: one test suite per cell, one test case per scenario.

use crate::model::outcome::Outcome;
use crate::results::run::RunReport;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

pub fn render(run: &RunReport) -> String {
    let mut report = Report::new(format!("crtest {}", run.run_id));
    for cell in &run.cells {
        let mut suite = TestSuite::new(cell.id.clone());
        for s in &cell.scenarios {
            let status = match s.outcome {
                Outcome::Pass | Outcome::Xfail => TestCaseStatus::success(),
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
