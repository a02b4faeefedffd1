//! How a scenario's steps are carried out, one type per way: criu driven by its command line
//! around a target started as the executor's child ([`Criu`](crate::exec::criu::Criu)),
//! `lxc-checkpoint` on a container ([`Lxc`](crate::exec::lxc::Lxc)), a test that runs its own
//! tools ([`ExternalRun`](crate::exec::external::ExternalRun)), and zdtm.py running one zdtm
//! test ([`ZdtmPy`](crate::exec::zdtm_py::ZdtmPy)). A backend keeps its own state (the
//! container, say); what every step needs is in [`Run`].
//!
//! A new backend (an OCI runtime, criu through RPC) is a new type with its `impl Backend`,
//! and one arm in the executor's `backend_of`.

use crate::exec::context::{Run, StepError};
use crate::model::scenario::StepKind;

/// One way of carrying out a scenario's steps.
pub(crate) trait Backend {
    /// Carries out one step of the scenario.
    fn step(&mut self, run: &mut Run, kind: StepKind, iteration: u32) -> Result<(), StepError>;

    /// Stops and removes what the steps left running (never fails).
    fn cleanup(&mut self, _run: &mut Run) {}
}
