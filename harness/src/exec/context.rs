//! The state one scenario's run shares with every backend and target ([`Run`]), the failure
//! a step returns ([`StepError`]), and what all of them do with the target's processes: wait
//! for a file, read its progress and verdict, see it exit.
//!
//! The workload protocol (see `workloads/src/protocol.rs`): in its working directory a
//! workload writes `ready` once set up, keeps `progress` (a growing number) up to date, and
//! on SIGTERM checks its own state and writes its verdict to `result`.

use crate::diagnose::errno;
use crate::exec::target::TargetKind;
use crate::model::outcome::{Failure, Outcome, StepRecord};
use crate::model::scenario::{Scenario, StepKind};
use crtest_vm::command;
use crtest_workloads::protocol::{Verdict, PROGRESS_FILE, RESULT_FILE};
use nix::sys::signal::kill;
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

/// The exit status [`Run::exited`] gives a process that is gone but was not our child.
pub(crate) const STATUS_UNKNOWN: i32 = -1;

/// The state of one scenario's run, shared by the steps of every backend.
pub(crate) struct Run<'a> {
    pub(crate) cfg: &'a ExecConfig,
    pub(crate) sc: &'a Scenario,
    /// What the scenario runs.
    pub(crate) target: &'a dyn TargetKind,
    /// The scenario's working directory.
    pub(crate) work: PathBuf,
    pub(crate) deadline: Instant,
    /// The root of the tree to checkpoint.
    pub(crate) pid: Option<Pid>,
    /// The workload's progress read right before the last checkpoint.
    pub(crate) progress_at_checkpoint: u64,
    /// The workload's verdict text.
    pub(crate) detail: Option<String>,
    /// Timed parts of the current step (a backend's commands), recorded before the step.
    pub(crate) substeps: Vec<StepRecord>,
    /// The checkpointed root is the init of its own pid namespace.
    pub(crate) ns_init: bool,
    /// The visible-state comparison: the side read at the current checkpoint, the result
    /// so far, the tree's own cgroup.
    pub(crate) visible: crate::exec::visible::Tracker,
    /// Each criu run as criu measured it.
    pub(crate) criu_runs: Vec<crate::model::outcome::CriuMeasure>,
    /// The other guest of a migration (`None` for a move in place).
    pub(crate) peer: Option<crate::exec::criu::Peer>,
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

impl<'a> Run<'a> {
    /// The run of `sc` starting now, in its own working directory under `cfg`'s, with the
    /// other guest of a migration when there is one.
    pub(crate) fn new(
        cfg: &'a ExecConfig,
        sc: &'a Scenario,
        peer: Option<crate::exec::criu::Peer>,
    ) -> Run<'a> {
        Run {
            cfg,
            sc,
            target: crate::exec::target::of(&sc.target),
            work: cfg.work_root.join(&sc.name),
            deadline: Instant::now() + Duration::from_secs(sc.timeout_s),
            pid: None,
            progress_at_checkpoint: 0,
            detail: None,
            substeps: Vec::new(),
            ns_init: false,
            visible: Default::default(),
            criu_runs: Vec::new(),
            peer,
        }
    }
}

impl Run<'_> {
    /// The time this step may take: the step limit, cut by what is left of the scenario's.
    pub(crate) fn step_budget(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        left.min(Duration::from_secs(self.sc.step_timeout_s))
    }

    /// The target's program and arguments.
    pub(crate) fn command(&self) -> (PathBuf, Vec<String>) {
        self.target.command(self)
    }

    /// See [`TargetKind::continuity`].
    pub(crate) fn continuity(&mut self, step: StepKind) -> Result<(), StepError> {
        let target = self.target;
        target.continuity(self, step)
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
                STATUS_UNKNOWN
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
        // 128 + N: the signal that ended it (SIGILL after a move to a CPU without an
        // instruction it used, SIGSEGV, ...).
        let signal = (129..160)
            .contains(&status)
            .then(|| nix::sys::signal::Signal::try_from(status - 128).ok())
            .flatten()
            .map(|s| format!(" (killed by {})", s.as_str()))
            .unwrap_or_default();
        let mut e = StepError::fail(
            step,
            format!("the workload exited with status {status}{signal}; {from}: {detail}"),
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
