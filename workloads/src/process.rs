//! Workloads about processes and their attributes: zombies, threads with their own state,
//! sessions and process groups, per-process attributes (name, cwd, umask, rlimits, nice...)
//! a seccomp filter, a pidfd, the CPU's vector and floating-point registers, a stopped
//! child, credentials and capabilities, a chroot, LSM labels and a uprobe. Scenario tag
//! `process` (with [`crate::ptree`] and [`crate::counter`]).

pub mod chroot;
pub mod creds;
pub mod fpu;
pub mod lsm;
pub mod pidfd;
pub mod procattrs;
pub mod seccomp;
pub mod sessions;
pub mod stopped;
pub mod threads;
pub mod uprobes;
pub mod zombies;
