//! An external test (`[external]`): its own tools checkpoint and restore, so it has a
//! command and nothing else; the `external` backend runs it as the scenario's one step.

use crate::exec::context::{Run, StepError};
use crate::exec::target::{local_command, TargetKind};
use crate::model::scenario::{External, StepKind};
use std::path::PathBuf;

impl TargetKind for External {
    fn command(&self, run: &Run) -> (PathBuf, Vec<String>) {
        local_command(run, &self.command)
    }

    fn verify(&self, _run: &mut Run) -> Result<(), StepError> {
        Err(StepError::fail(
            StepKind::Verify,
            "an external test has only a `run` step",
        ))
    }
}
