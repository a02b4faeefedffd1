//! The OCI backend's `impl Backend`: the container made at `start`, each later step handed
//! the container.

use super::state::Container;
use super::steps;
use crate::exec::backend::Backend;
use crate::exec::context::{Run, StepError};
use crate::model::scenario::StepKind;

/// The podman, runc and crun backends; it owns the scenario's container once `start` made it.
#[derive(Default)]
pub(crate) struct Oci {
    container: Option<Container>,
}

impl Backend for Oci {
    fn step(&mut self, run: &mut Run, kind: StepKind, iteration: u32) -> Result<(), StepError> {
        if kind == StepKind::Start {
            return steps::start(run, &mut self.container);
        }
        let Some(c) = self.container.as_mut() else {
            return Err(StepError::fail(
                kind,
                "no container: the scenario's steps do not begin with `start`",
            ));
        };
        c.phase = kind.as_str();
        c.iteration = iteration;
        match kind {
            StepKind::Start => unreachable!("handled above"),
            StepKind::WaitReady => steps::wait_ready(run, c),
            StepKind::Checkpoint => steps::checkpoint(run, c, iteration),
            StepKind::Restore => steps::restore(run, c, iteration),
            StepKind::Verify => steps::verify(run, c),
            StepKind::Run => Err(StepError::fail(kind, "`run` needs an `[external]` test")),
        }
    }

    fn cleanup(&mut self, run: &mut Run) {
        if let Some(mut c) = self.container.take() {
            steps::cleanup(run, &mut c);
        }
    }
}
