//! The executor: one scenario's steps in the guest (or on the host with `--host`). The
//! dispatcher (`executor`) hands each step to the scenario's backend (`backend`: `criu`,
//! `lxc`, `oci` (podman, runc, crun), `external`, `zdtm_py`, with `vnc_steps`' viewer around them), which runs the
//! scenario's target (`target`: a workload, a program, a zdtm test, an external test).
//! Backends and targets share the step context (`context`), never the dispatcher; a backend
//! keeps its own state.

pub mod backend;
pub mod command_log;
pub mod context;
pub mod criu;
pub mod executor;
pub mod external;
pub mod lxc;
pub mod mover;
pub mod nstree;
pub mod oci;
pub mod proctree;
pub mod requires;
pub mod target;
pub mod visible;
pub mod vnc_steps;
pub mod zdtm_py;
