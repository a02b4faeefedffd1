//! What the harness knows of an `lxc` scenario's container while it runs: the state the
//! lxc backend keeps in the step context between steps.

use crate::exec::nstree::Member;
use crate::model::scenario::LxcOptions;
use nix::unistd::Pid;
use std::path::PathBuf;

/// A scenario's container and what the harness knows of it.
pub(crate) struct Container {
    pub(crate) name: String,
    /// `/var/lib/lxc/NAME`.
    pub(crate) dir: PathBuf,
    /// lxc's own log (copied into the working directory at the end).
    pub(crate) log: PathBuf,
    pub(crate) opts: LxcOptions,
    /// `lxc-execute`, which runs until the container stops.
    pub(crate) execute: Option<std::process::Child>,
    /// Host pid of the container's init, while it runs.
    pub(crate) init: Option<Pid>,
    /// The workload's root as seen inside the container.
    pub(crate) app: Option<i32>,
    /// The container's processes before the last checkpoint.
    pub(crate) tree: Vec<Member>,
    /// The step and iteration under way, which name the sub-step records.
    pub(crate) phase: &'static str,
    pub(crate) iteration: u32,
}
