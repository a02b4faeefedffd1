//! What a scenario runs, one type per kind of target: a workload of ours
//! ([`Workload`](crate::model::scenario::Workload)), a user's program, a zdtm test, an external
//! test. Each supplies, through [`TargetKind`], what the backends ask of it: its command, how
//! to see it is ready, what shows it goes on after a restore, and how to verify it. A
//! backend (criu, lxc, and later an OCI runtime) runs any target the same way and never asks
//! which kind it is.
//!
//! A new kind of target is a new type here with its `impl TargetKind`, and one arm in [`of`].

mod external;
mod program;
mod workload;
pub mod zdtm;
pub mod zdtm_root;

use crate::exec::context::{reap, Run, StepError};
use crate::model::scenario::{StepKind, Target};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a kind of target supplies to the backends. Every method but [`TargetKind::command`]
/// and [`TargetKind::verify`] has the behaviour most kinds want.
pub(crate) trait TargetKind {
    /// The program and arguments to start.
    fn command(&self, run: &Run) -> (PathBuf, Vec<String>);

    /// Why the target cannot run in this guest (asked before its first step).
    fn skip_reason(&self) -> Option<String> {
        None
    }

    /// Gives the start command its folder and environment (and makes what the target
    /// needs around it: a zdtm test's root, say).
    fn prepare_start(&self, run: &Run, cmd: &mut std::process::Command) -> Result<(), StepError> {
        cmd.current_dir(&run.work);
        Ok(())
    }

    /// criu options every dump of the target needs (a root of its own, say).
    fn dump_options(&self) -> Vec<String> {
        Vec::new()
    }

    /// criu options every restore of the target needs.
    fn restore_options(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs right after the target was started as the executor's child.
    fn started(&self, _run: &mut Run) -> Result<(), StepError> {
        Ok(())
    }

    /// The file whose appearance means the target is ready, or `None` when it has none (a
    /// program ready after a delay sleeps it here).
    fn ready_file(&self, _run: &Run) -> Result<Option<PathBuf>, StepError> {
        Ok(None)
    }

    /// The pid, as the target sees it, of the root of the tree to checkpoint, when the
    /// target names it once ready (a workload may start its tree elsewhere, in a new pid
    /// namespace say, and let the starter exit).
    fn named_root(&self, _run: &Run) -> Option<i32> {
        None
    }

    /// Waits until the target, the executor's child, is ready.
    fn wait_ready(&self, run: &mut Run) -> Result<(), StepError> {
        wait_as_child(self, run)
    }

    /// Whether the target keeps a progress count (the workload protocol's `progress`).
    fn has_progress(&self) -> bool {
        false
    }

    /// Runs right before each dump.
    fn before_dump(&self, _run: &mut Run) -> Result<(), StepError> {
        Ok(())
    }

    /// Runs right before each restore from `images`.
    fn before_restore(&self, _run: &mut Run, _images: &Path) -> Result<(), StepError> {
        Ok(())
    }

    /// Runs right after each restore from `images`.
    fn after_restore(&self, _run: &mut Run, _images: &Path) -> Result<(), StepError> {
        Ok(())
    }

    /// After a restore (or a dump that left it running) the target must go on from where
    /// it was; without a progress count it must at least be alive.
    fn continuity(&self, run: &mut Run, step: StepKind) -> Result<(), StepError> {
        match run.exited() {
            Some(gone) => Err(run.workload_died(step, gone)),
            None => Ok(()),
        }
    }

    /// The target's own check of its state, at the `verify` step.
    fn verify(&self, run: &mut Run) -> Result<(), StepError>;

    /// Whether the target has ended once verified (a program keeps running).
    fn ends_at_verify(&self) -> bool {
        true
    }

    /// Puts back what the target changed outside its working directory (never fails).
    fn cleanup(&self, _run: &mut Run) {}
}

/// The type that runs `target`.
pub(crate) fn of(target: &Target) -> &dyn TargetKind {
    match target {
        Target::Workload(w) => w,
        Target::Program(p) => p,
        Target::External(e) => e,
        Target::Zdtm(z) => z,
    }
}

/// A command line's program: a relative path is the working directory's file when there
/// is one, else looked up as given.
fn local_command(run: &Run, command: &[String]) -> (PathBuf, Vec<String>) {
    let first = PathBuf::from(&command[0]);
    let local = run.work.join(&first);
    let program = if first.is_relative() && local.exists() {
        local
    } else {
        first
    };
    (program, command[1..].to_vec())
}

/// [`TargetKind::wait_ready`] of a target started as the executor's child: its ready file
/// (or none), then the root it names takes the starter's place.
fn wait_as_child<T: TargetKind + ?Sized>(target: &T, run: &mut Run) -> Result<(), StepError> {
    let gone = |run: &mut Run| {
        let status = run.exited()?;
        Some(run.workload_died(StepKind::WaitReady, status))
    };
    let Some(ready) = target.ready_file(run)? else {
        return gone(run).map_or(Ok(()), Err);
    };
    run.wait_for_file(&ready, gone)?;
    let named = target.named_root(run).map(nix::unistd::Pid::from_raw);
    if let Some(named) = named.filter(|n| Some(*n) != run.pid) {
        if let Some(starter) = run.pid.replace(named) {
            reap(starter, Duration::from_secs(10));
        }
    }
    Ok(())
}
