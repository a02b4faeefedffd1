//! Workloads about processes and their attributes: zombies, threads with their own state,
//! sessions and process groups, per-process attributes (name, cwd, umask, rlimits, nice...)
//! a seccomp filter, a pidfd, and the CPU's vector and floating-point registers. Scenario tag `process` (with [`crate::ptree`] and
//! [`crate::counter`]).

pub mod fpu;
pub mod pidfd;
pub mod procattrs;
pub mod seccomp;
pub mod sessions;
pub mod threads;
pub mod zombies;
