//! What the OCI backend knows of a scenario's container while it runs.

use crate::exec::nstree::Member;
use crate::model::scenario::{Backend, OciOptions, OciRuntime};
use nix::unistd::Pid;
use std::path::PathBuf;

/// A scenario's container and what the harness knows of it.
pub(crate) struct Container {
    pub(crate) backend: Backend,
    pub(crate) runtime: OciRuntime,
    pub(crate) opts: OciOptions,
    /// The container's name now (a restore under `--name` changes it).
    pub(crate) name: String,
    /// Every container and image the scenario made, removed at cleanup.
    pub(crate) made: Vec<String>,
    pub(crate) images_made: Vec<String>,
    /// The bundle of a runtime run alone (`config.json`, `rootfs/`).
    pub(crate) bundle: Option<PathBuf>,
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

impl Container {
    /// The program of the container's commands.
    pub(crate) fn program(&self) -> &'static str {
        super::argv::program(self.backend)
    }

    /// `podman+runc`, `runc`, `crun`: how criu was driven, for run.json.
    pub(crate) fn via(&self) -> String {
        match self.backend {
            Backend::Podman => format!("podman+{}", self.runtime.as_str()),
            b => super::argv::program(b).to_string(),
        }
    }
}
