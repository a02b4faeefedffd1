//! cr-tests: a checkpoint/restart test and compatibility harness.
//!
//! Data flows one way: scenario files -> plan -> images -> VM -> guest agent runs the steps ->
//! events + artifacts -> results. See DESIGN.md in the team's shared folder.

pub mod agent;
pub mod ckpt_dir;
pub mod ckpt_entries;
pub mod ckpt_image;
pub mod ckpt_logs;
pub mod ckpt_proto;
pub mod ckptinfo;
pub mod cli;
pub mod command;
pub mod criu;
pub mod diagnose;
pub mod errno;
pub mod event;
pub mod executor;
pub mod expectation;
pub mod guest_build;
pub mod guest_setup;
pub mod host_run;
pub mod junit;
pub mod kernel_config;
pub mod kmsg;
pub mod outcome;
pub mod proctree;
pub mod progress;
pub mod report;
pub mod requirements;
pub mod results;
pub mod scenario;
pub mod vm_run;
