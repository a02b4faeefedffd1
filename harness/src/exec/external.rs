//! External tests: a command run in the guest to its end (LXC's own
//! `lxc-test-checkpoint-restore`, say), reported beside our scenarios. Exit status 0 is a
//! pass. Its output goes to `external.log`; the files it names in `collect` (its tool logs)
//! are kept with the results and searched for the error line when it fails, so the failure
//! is classified like ours.

use crate::diagnose::errno;
use crate::exec::backend::Backend;
use crate::exec::context::{Run, StepError};
use crate::model::outcome::Outcome;
use crate::model::scenario::{External, StepKind};
use crtest_vm::command::{Cmd, CommandError};
use std::path::Path;

/// The output file in the working directory.
pub const OUTPUT: &str = "external.log";

/// The backend of an external test: its command is the scenario's one step.
pub(crate) struct ExternalRun(pub(crate) External);

impl Backend for ExternalRun {
    fn step(&mut self, run: &mut Run, kind: StepKind, _iteration: u32) -> Result<(), StepError> {
        run_it(run, &self.0, kind)
    }
}

/// Runs the scenario's only step.
fn run_it(run: &mut Run, ext: &External, kind: StepKind) -> Result<(), StepError> {
    if kind != StepKind::Run {
        return Err(StepError::fail(
            kind,
            "an external test has only a `run` step",
        ));
    }
    let collect = ext.collect.clone();
    let (program, args) = run.command();
    let line = crtest_vm::command::command_line(&program.display().to_string(), &args);
    let out = run.work.join(OUTPUT);
    let ran = Cmd::new(program.as_os_str())
        .args(&args)
        .dir(&run.work)
        .run_timed(run.step_budget(), Some(&out))
        .map_err(|e| {
            let mut err = StepError::fail(kind, e.to_string()).with_outcome(Outcome::Error);
            err.failure.command = Some(line.clone());
            err.failure.errno = e.os_error().and_then(errno::name);
            if matches!(e, CommandError::Spawn { .. }) {
                err.failure.class = Some("missing-tool".into());
            }
            err
        })?;
    let (status, timed_out) = (ran.status, ran.timed_out);
    let logs = keep(&run.work, &collect);
    if status == 0 && !timed_out {
        run.detail = Some(format!("`{line}` passed"));
        return Ok(());
    }
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    let mut e = StepError::fail(
        kind,
        if timed_out {
            format!("`{line}` did not finish in time")
        } else {
            format!("`{line}` exited with status {status}")
        },
    );
    if timed_out {
        e.outcome = Outcome::Timeout;
    }
    let criu_errors: Vec<&str> = logs
        .iter()
        .flat_map(|t| crate::diagnose::class::error_lines(t))
        .collect();
    let first = logs
        .iter()
        .find_map(|t| crate::diagnose::criu_log::first_error_line(t))
        .or_else(|| crate::exec::lxc::config::first_error(&output))
        .or_else(|| crtest_vm::command::tail_lines(&output, 1).pop());
    e.failure.command = Some(line);
    e.failure.exit_status = (!timed_out).then_some(status);
    e.failure.errno = first.as_deref().and_then(errno::find);
    e.failure.first_error_line = first;
    crate::model::expectation::diagnose(&mut e.failure, &criu_errors);
    Err(e)
}

/// Copies the collected files into the working directory (as `NAME.log`, which the results
/// keep) and returns their texts, in the order given. Each names a file of the working
/// directory; one that resolves outside it (a symlink the test left) is not read.
fn keep(work: &Path, collect: &[std::path::PathBuf]) -> Vec<String> {
    let mut texts = Vec::new();
    for rel in collect {
        let Ok(path) = crate::model::confine::resolve(work, rel) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let name = path
            .file_name()
            .map_or("collected".into(), |n| n.to_string_lossy().into_owned());
        let name = if name.ends_with(".log") {
            name
        } else {
            format!("{name}.log")
        };
        let kept = work.join(name);
        if kept != path {
            let _ = std::fs::write(kept, &text);
        }
        texts.push(text);
    }
    texts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::ScenarioResult;

    /// Runs an external scenario given as TOML; the run directory stays for inspection.
    fn run(toml: &str) -> (ScenarioResult, tempfile::TempDir) {
        crate::exec::executor::run_on_host("ext", toml)
    }

    #[test]
    fn exit_zero_passes_and_keeps_the_output() {
        let (r, dir) =
            run("description = \"d\"\n[external]\ncommand = [\"sh\", \"-c\", \"echo all good\"]\n");
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert_eq!(r.steps.len(), 1);
        assert_eq!(r.steps[0].step, "run");
        let kept = dir.path().join("run/scenarios/ext").join(OUTPUT);
        assert_eq!(std::fs::read_to_string(kept).unwrap(), "all good\n");
    }

    #[test]
    fn a_failure_is_named_from_the_collected_criu_log() {
        let script = "mkdir -p logs; echo '(00.1) Error (criu/mount-v2.c:324): mnt-v2: Failed to move_mount from /lib to /x: Invalid argument' > logs/restore.log; echo 'Failed failed restoring'; exit 1";
        let toml = format!(
            "description = \"d\"\n[external]\ncommand = [\"sh\", \"-c\", \"{}\"]\ncollect = [\"nonexistent/dump.log\", \"logs/restore.log\"]\n[expect]\noutcome = \"fail\"\nclass = \"invalid-argument\"\nerrno = \"EINVAL\"\n",
            script.replace('"', "\\\"")
        );
        let (r, run_dir) = run(&toml);
        assert_eq!(r.outcome, Outcome::Xfail, "{r:?}");
        let f = r.failure.unwrap();
        assert_eq!(f.exit_status, Some(1));
        assert!(
            f.first_error_line
                .unwrap()
                .contains("Failed to move_mount from /lib"),
            "the criu line wins over the output's last line"
        );
        assert!(run_dir
            .path()
            .join("run/scenarios/ext/restore.log")
            .exists());
    }

    #[test]
    fn a_collected_symlink_out_of_the_working_directory_is_not_read() {
        let (r, run_dir) = run(
            "description = \"d\"\n[external]\ncommand = [\"sh\", \"-c\", \"ln -s /etc/hostname dump.log; exit 1\"]\ncollect = [\"dump.log\"]\n",
        );
        assert_eq!(r.outcome, Outcome::Fail, "{r:?}");
        let kept = run_dir.path().join("run/scenarios/ext/dump.log");
        assert!(
            std::fs::symlink_metadata(&kept).is_err(),
            "the link's target was not copied into the results"
        );
    }

    #[test]
    fn a_missing_command_is_an_error() {
        let (r, _dir) =
            run("description = \"d\"\n[external]\ncommand = [\"no-such-test-command\"]\n");
        assert_eq!(r.outcome, Outcome::Error);
        assert_eq!(r.failure.unwrap().class.as_deref(), Some("missing-tool"));
    }
}
