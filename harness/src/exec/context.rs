//! The state one scenario's run shares with every backend ([`Run`]), the failure a step
//! returns ([`StepError`]), and what all backends do with a workload: start it, wait for its
//! readiness file, read its progress and verdict, see it exit.
//!
//! The workload protocol (see `workloads/src/protocol.rs`): in its working directory a
//! workload writes `ready` once set up, keeps `progress` (a growing number) up to date, and
//! on SIGTERM checks its own state and writes its verdict to `result`.

use crate::diagnose::errno;
use crate::model::outcome::{Failure, Outcome, StepRecord};
use crate::model::scenario::{ready_spec, ReadySpec, Scenario, StepKind, Target};
use crtest_vm::command;
use crtest_workloads::protocol::{Verdict, PROGRESS_FILE, READY_FILE, RESULT_FILE};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the executor works and what it runs.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Each scenario gets a fresh directory under this one.
    pub work_root: PathBuf,
    /// The run directory: kept files go to `<run_dir>/scenarios/<name>/`.
    pub run_dir: PathBuf,
    /// Where the workload binaries are.
    pub bin_dir: PathBuf,
    /// The criu binary.
    pub criu: String,
    /// Keep the criu images of passing scenarios too (they are always kept on failure).
    pub keep_images: bool,
}

/// A `[program]` check's stdout and stderr, in the working directory (kept as a log).
pub const CHECK_LOG: &str = "check.log";

/// How long to wait, after a restore, for the workload to show it works again.
const CONTINUITY_WAIT: Duration = Duration::from_secs(20);

/// The state of one scenario's run, shared by the steps of every backend.
pub(crate) struct Run<'a> {
    pub(crate) cfg: &'a ExecConfig,
    pub(crate) sc: &'a Scenario,
    /// The scenario's working directory.
    pub(crate) work: PathBuf,
    pub(crate) deadline: Instant,
    /// The root of the tree to checkpoint.
    pub(crate) pid: Option<Pid>,
    /// The workload's progress read right before the last checkpoint.
    pub(crate) progress_at_checkpoint: u64,
    /// The workload's verdict text.
    pub(crate) detail: Option<String>,
    /// The container of an `lxc` scenario, once created.
    pub(crate) lxc: Option<crate::exec::lxc_state::Container>,
    /// Timed parts of the current step (a backend's commands), recorded before the step.
    pub(crate) substeps: Vec<StepRecord>,
    /// The checkpointed root is the init of its own pid namespace.
    pub(crate) ns_init: bool,
    /// A `[vnc]` scenario's screenshots so far.
    pub(crate) screens: Option<crate::model::outcome::Screens>,
    /// The screenshot taken before the checkpoint, to compare the restored screen with.
    pub(crate) screen_before: Option<crate::vnc::frame::Frame>,
    /// The screenshot taken after the restore, to see what typing changes.
    pub(crate) screen_restored: Option<crate::vnc::frame::Frame>,
    /// The visible-state comparison: the side read at the current checkpoint, the result
    /// so far, the tree's own cgroup.
    pub(crate) visible: crate::exec::visible::Tracker,
}

/// A failed step: the outcome it leads to and the failure report.
pub(crate) struct StepError {
    pub(crate) outcome: Outcome,
    pub(crate) failure: Box<Failure>,
}

impl StepError {
    pub(crate) fn fail(step: StepKind, message: impl Into<String>) -> StepError {
        StepError {
            outcome: Outcome::Fail,
            failure: Box::new(Failure {
                step: step.as_str().into(),
                message: message.into(),
                ..Failure::default()
            }),
        }
    }
    pub(crate) fn with_outcome(mut self, outcome: Outcome) -> StepError {
        self.outcome = outcome;
        self
    }
}

impl Run<'_> {
    /// The time this step may take: the step limit, cut by what is left of the scenario's.
    pub(crate) fn step_budget(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        left.min(Duration::from_secs(self.sc.step_timeout_s))
    }

    /// The program and arguments to start.
    pub(crate) fn command(&self) -> (PathBuf, Vec<String>) {
        let command = match &self.sc.target {
            Target::Workload { name, args } => return (self.cfg.bin_dir.join(name), args.clone()),
            Target::Zdtm(z) => return crate::exec::zdtm::command(z),
            Target::Program(p) => &p.command,
            Target::External(e) => &e.command,
        };
        let first = PathBuf::from(&command[0]);
        let local = self.work.join(&first);
        let program = if first.is_relative() && local.exists() {
            local
        } else {
            first
        };
        (program, command[1..].to_vec())
    }

    /// The file whose appearance means the target is ready, or `None` when it has none (an
    /// external test; a program ready after a delay, which is slept here).
    pub(crate) fn ready_file(&self) -> Result<Option<PathBuf>, StepError> {
        let name = match &self.sc.target {
            Target::Workload { .. } => READY_FILE.to_string(),
            Target::Program(p) => match ready_spec(&p.ready) {
                Ok(ReadySpec::File(f)) => f,
                Ok(ReadySpec::DelayMs(ms)) => {
                    std::thread::sleep(Duration::from_millis(ms).min(self.step_budget()));
                    return Ok(None);
                }
                Err(e) => return Err(StepError::fail(StepKind::WaitReady, e)),
            },
            // An external test has no readiness (it runs as one `run` step); a zdtm test's is
            // its pidfile, read once its launcher exited.
            Target::External(_) | Target::Zdtm(_) => return Ok(None),
        };
        Ok(Some(self.work.join(name)))
    }

    /// Waits until `ready` exists, within the step's budget; `gone` returns the step's
    /// failure once the workload has ended without it.
    pub(crate) fn wait_for_file(
        &mut self,
        ready: &Path,
        mut gone: impl FnMut(&mut Self) -> Option<StepError>,
    ) -> Result<(), StepError> {
        let limit = Instant::now() + self.step_budget();
        while !ready.exists() {
            if let Some(e) = gone(self) {
                return Err(e);
            }
            if Instant::now() >= limit {
                return Err(StepError::fail(
                    StepKind::WaitReady,
                    "the workload did not become ready in time",
                )
                .with_outcome(Outcome::Timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    pub(crate) fn mkdir(&self, dir: &Path) -> Result<(), StepError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StepError::fail(
                StepKind::Checkpoint,
                format!("cannot create {}: {e}", dir.display()),
            )
            .with_outcome(Outcome::Error)
        })
    }

    /// After a restore the workload must go on from where it was: its progress never goes
    /// back below the value read before the checkpoint, and it grows again.
    pub(crate) fn continuity(&mut self, step: StepKind) -> Result<(), StepError> {
        if let Target::Program(_) | Target::Zdtm(_) = self.sc.target {
            // A user's program (a zdtm test) has no progress file: it must at least be alive.
            return match self.exited() {
                Some(gone) => Err(self.workload_died(step, gone)),
                None => Ok(()),
            };
        }
        let before = self.progress_at_checkpoint;
        let limit = Instant::now() + self.step_budget().min(CONTINUITY_WAIT);
        loop {
            let now = self.progress();
            match now {
                Some(p) if p < before => {
                    return Err(StepError::fail(
                        step,
                        format!(
                            "progress went back from {before} to {p}: the workload lost its state"
                        ),
                    ))
                }
                Some(p) if p > before => return Ok(()),
                _ => {}
            }
            if let Some(gone) = self.exited() {
                return Err(self.workload_died(step, gone));
            }
            if Instant::now() >= limit {
                return Err(StepError::fail(
                    step,
                    format!(
                        "the restored workload made no progress (stuck at {}, was {before} at the checkpoint)",
                        now.map_or("nothing".to_string(), |p| p.to_string())
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn verify(&mut self) -> Result<(), StepError> {
        let pid = self.pid.expect("started before verify");
        if let Target::Program(p) = &self.sc.target {
            return self.program_check(pid, &p.check.clone());
        }
        if let Target::Zdtm(z) = &self.sc.target {
            return self.zdtm_verify(&z.clone());
        }
        let _ = kill(pid, Signal::SIGTERM);
        let limit = Instant::now() + self.step_budget();
        let status = loop {
            if let Some(s) = self.exited() {
                break s;
            }
            if Instant::now() >= limit {
                return Err(StepError::fail(
                    StepKind::Verify,
                    "the workload did not finish its check in time",
                )
                .with_outcome(Outcome::Timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let verdict = self
            .verdict()
            .ok_or_else(|| self.workload_died(StepKind::Verify, status))?;
        self.detail = Some(verdict.detail.clone());
        if !verdict.ok || status != 0 {
            let mut e = StepError::fail(
                StepKind::Verify,
                format!("the workload's check failed: {}", verdict.detail),
            );
            e.failure.exit_status = Some(status);
            e.failure.first_error_line = Some(verdict.detail);
            return Err(e);
        }
        if verdict.progress < self.progress_at_checkpoint {
            return Err(StepError::fail(
                StepKind::Verify,
                format!(
                    "final progress {} is below {} seen at the last checkpoint",
                    verdict.progress, self.progress_at_checkpoint
                ),
            ));
        }
        Ok(())
    }

    /// A user program's check: run in the working directory; exit 0 = pass.
    fn program_check(&mut self, pid: Pid, check: &[String]) -> Result<(), StepError> {
        if let Some(gone) = self.exited() {
            return Err(self.workload_died(StepKind::Verify, gone));
        }
        let ran = duct::cmd(&check[0], &check[1..])
            .dir(&self.work)
            .env("CRTEST_PID", pid.to_string())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run();
        let line = command::command_line(&check[0], &check[1..]);
        // What the check said is kept beside the scenario's logs, and its last line shown.
        let said = |out: &std::process::Output| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let _ = std::fs::write(self.work.join(CHECK_LOG), &text);
            text
        };
        match ran {
            Ok(out) if out.status.success() => {
                let last = command::tail_lines(&said(&out), 1).pop();
                self.detail = Some(match last {
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

    pub(crate) fn progress(&self) -> Option<u64> {
        std::fs::read_to_string(self.work.join(PROGRESS_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub(crate) fn verdict(&self) -> Option<Verdict> {
        let text = std::fs::read_to_string(self.work.join(RESULT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The workload's exit status when it has exited (and was collected), else None.
    pub(crate) fn exited(&mut self) -> Option<i32> {
        let pid = self.pid?;
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => {
                self.pid = None;
                Some(code)
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                self.pid = None;
                Some(128 + sig as i32)
            }
            Ok(_) => None,
            // Not our child (any more): it is gone if kill(0) says so.
            Err(_) => kill(pid, None).is_err().then(|| {
                self.pid = None;
                -1
            }),
        }
    }

    pub(crate) fn workload_died(&self, step: StepKind, status: i32) -> StepError {
        let (detail, from) = match self.verdict() {
            Some(v) => (v.detail, "its verdict"),
            None => {
                let log =
                    std::fs::read_to_string(self.work.join("workload.log")).unwrap_or_default();
                (
                    command::tail_lines(&log, 1).pop().unwrap_or_default(),
                    "its log",
                )
            }
        };
        let mut e = StepError::fail(
            step,
            format!("the workload exited with status {status}; {from}: {detail}"),
        );
        e.failure.exit_status = Some(status);
        e.failure.errno = errno::find(&detail);
        e.failure.first_error_line = (!detail.is_empty()).then_some(detail);
        e
    }
}

/// Waits for `pid` to exit and collects it; true when it is gone.
pub(crate) fn reap(pid: Pid, limit: Duration) -> bool {
    let gone = command::wait_until(Instant::now() + limit, || {
        Ok(match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => false,
            Ok(_) => true,
            Err(_) => kill(pid, None).is_err(),
        })
    });
    matches!(gone, Ok(Some(())))
}

/// Collects every exited child (orphans re-parented to us). Call between scenarios only,
/// when no command of ours is running.
pub fn reap_orphans() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
