//! A user's program (`[program]`): its command in the working directory holding its
//! files, ready when its `ready` file appears (or after a delay), alive after a restore, and
//! verified by its `check` command (exit 0 passes), which runs beside it.

use crate::exec::context::{Run, StepError, CHECK_LOG};
use crate::exec::target::{local_command, TargetKind};
use crate::model::outcome::Outcome;
use crate::model::scenario::{ready_spec, Program, ReadySpec, StepKind};
use crtest_vm::command;
use std::path::PathBuf;
use std::time::Duration;

impl TargetKind for Program {
    fn command(&self, run: &Run) -> (PathBuf, Vec<String>) {
        local_command(run, &self.command)
    }

    fn ready_file(&self, run: &Run) -> Result<Option<PathBuf>, StepError> {
        match ready_spec(&self.ready) {
            Ok(ReadySpec::File(f)) => Ok(Some(run.work.join(f))),
            Ok(ReadySpec::DelayMs(ms)) => {
                std::thread::sleep(Duration::from_millis(ms).min(run.step_budget()));
                Ok(None)
            }
            Err(e) => Err(StepError::fail(StepKind::WaitReady, e.to_string())),
        }
    }

    /// The check runs in the working directory with `CRTEST_PID`; what it says is kept as
    /// [`CHECK_LOG`] and its last line shown.
    fn verify(&self, run: &mut Run) -> Result<(), StepError> {
        let pid = run.pid.expect("started before verify");
        if let Some(gone) = run.exited() {
            return Err(run.workload_died(StepKind::Verify, gone));
        }
        let check = &self.check;
        let ran = duct::cmd(&check[0], &check[1..])
            .dir(&run.work)
            .env("CRTEST_PID", pid.to_string())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run();
        let line = command::command_line(&check[0], &check[1..]);
        let said = |out: &std::process::Output| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let _ = std::fs::write(run.work.join(CHECK_LOG), &text);
            text
        };
        match ran {
            Ok(out) if out.status.success() => {
                let last = command::tail_lines(&said(&out), 1).pop();
                run.detail = Some(match last {
                    Some(l) => format!("`{line}` passed: {l}"),
                    None => format!("`{line}` passed"),
                });
                Ok(())
            }
            Ok(out) => {
                let text = said(&out);
                let mut e = StepError::fail(StepKind::Verify, "the program's check failed");
                e.failure.command = Some(line);
                e.failure.exit_status = out.status.code();
                e.failure.first_error_line = command::tail_lines(&text, 1).pop();
                Err(e)
            }
            Err(err) => {
                let mut e =
                    StepError::fail(StepKind::Verify, format!("cannot run the check: {err}"))
                        .with_outcome(Outcome::Error);
                e.failure.command = Some(line);
                Err(e)
            }
        }
    }

    fn ends_at_verify(&self) -> bool {
        false
    }
}
