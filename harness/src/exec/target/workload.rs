//! A workload of ours (`workloads/`): started from the guest's binaries, ready when it
//! writes `ready` (naming the root of its tree), going on when its `progress` grows, and
//! verified by its own check on SIGTERM (its `result`). See `workloads/src/protocol.rs`.

use crate::exec::context::{Run, StepError, STATUS_UNKNOWN};
use crate::exec::target::TargetKind;
use crate::model::outcome::Outcome;
use crate::model::scenario::{StepKind, Workload};
use crtest_workloads::protocol::{Ready, READY_FILE};
use nix::sys::signal::{kill, Signal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long to wait, after a restore, for the workload to show it works again.
const CONTINUITY_WAIT: Duration = Duration::from_secs(20);

impl TargetKind for Workload {
    fn command(&self, run: &Run) -> (PathBuf, Vec<String>) {
        (run.cfg.bin_dir.join(&self.name), self.args.clone())
    }

    fn ready_file(&self, run: &Run) -> Result<Option<PathBuf>, StepError> {
        Ok(Some(run.work.join(READY_FILE)))
    }

    fn named_root(&self, run: &Run) -> Option<i32> {
        let text = std::fs::read_to_string(run.work.join(READY_FILE)).ok()?;
        serde_json::from_str::<Ready>(&text)
            .ok()
            .map(|r| r.pid as i32)
    }

    fn has_progress(&self) -> bool {
        true
    }

    /// Its progress never goes back below the value read before the checkpoint, and it
    /// grows again.
    fn continuity(&self, run: &mut Run, step: StepKind) -> Result<(), StepError> {
        let before = run.progress_at_checkpoint;
        let limit = Instant::now() + run.step_budget().min(CONTINUITY_WAIT);
        loop {
            let now = run.progress();
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
            if let Some(gone) = run.exited() {
                return Err(run.workload_died(step, gone));
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

    /// SIGTERM: the workload checks its state, writes its verdict and exits.
    fn verify(&self, run: &mut Run) -> Result<(), StepError> {
        let pid = run.pid.expect("started before verify");
        let _ = kill(pid, Signal::SIGTERM);
        let limit = Instant::now() + run.step_budget();
        let status = loop {
            if let Some(s) = run.exited() {
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
        let verdict = run
            .verdict()
            .ok_or_else(|| run.workload_died(StepKind::Verify, status))?;
        run.detail = Some(verdict.detail.clone());
        // A workload that is not our child (in a container, say) exits with a status we
        // cannot read: its verdict decides.
        if !verdict.ok || (status != 0 && status != STATUS_UNKNOWN) {
            let mut e = StepError::fail(
                StepKind::Verify,
                format!("the workload's check failed: {}", verdict.detail),
            );
            e.failure.exit_status = (status != STATUS_UNKNOWN).then_some(status);
            e.failure.first_error_line = Some(verdict.detail);
            return Err(e);
        }
        if verdict.progress < run.progress_at_checkpoint {
            return Err(StepError::fail(
                StepKind::Verify,
                format!(
                    "final progress {} is below {} seen at the last checkpoint",
                    verdict.progress, run.progress_at_checkpoint
                ),
            ));
        }
        Ok(())
    }
}
