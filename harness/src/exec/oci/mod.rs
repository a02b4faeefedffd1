//! The OCI backends: the workload in a container of `podman` (over runc or crun), or of
//! `runc` or `crun` alone, checkpointed and restored by that tool (criu underneath, driven
//! over its RPC by runc's go-criu, through libcriu by crun).
//!
//! - **start**: podman runs the base image (`root`: a skeleton imported once per boot) with
//!   the guest's `/usr`, the workload binaries and the working directory bound at their
//!   paths, no network but `lo`; a runtime alone runs a bundle made of the same parts. A
//!   crun built without CRIU is a `skip` that says so.
//! - **wait-ready**: the workload's pid inside the container mapped to its host pid.
//! - **checkpoint**: `podman container checkpoint` (`--leave-running`, `--pre-checkpoint`
//!   then `--with-previous`, `--export`, `--create-image`, `--keep`, `--tcp-established`,
//!   `--file-locks`, always `--print-stats`), `runc`/`crun checkpoint` into `images-N`.
//!   The visible state is read while the container runs (three reads, unstable items
//!   named): criu, under runc's RPC, stops when a configuration file names an action script.
//! - **restore**: in place, `--import` (under a new `--name` for a copy), or from the
//!   checkpoint image; the same tree must be back, and the workload must go on.
//! - **verify**, **cleanup**: the workload's check; every container and image removed.
//!
//! Every command is logged with its output in `oci-commands.log` and timed as a sub-step.

pub mod argv;
mod backend;
pub mod output;
mod root;
mod state;
mod steps;
mod tools;

pub(crate) use backend::Oci;
