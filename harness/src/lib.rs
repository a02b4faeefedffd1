//! cr-tests: a checkpoint/restart test and compatibility harness.
//!
//! Data flows one way: scenario files -> plan -> images -> VM -> guest agent runs the steps ->
//! events + artifacts -> results. See DESIGN.md in the team's shared folder.

pub mod agent;
pub mod bench;
pub mod cell_choice;
pub mod ckpt_dir;
pub mod ckpt_entries;
pub mod ckpt_image;
pub mod ckpt_logs;
pub mod ckpt_proto;
pub mod ckptinfo;
pub mod cli;
pub mod command;
pub mod compare;
pub mod criu;
pub mod diagnose;
pub mod doctor;
pub mod errno;
pub mod event;
pub mod executor;
pub mod expectation;
pub mod external;
#[cfg(test)]
mod fixtures;
pub mod frame;
pub mod guest_build;
pub mod guest_health;
pub mod guest_setup;
pub mod history;
pub mod host_run;
pub mod html_report;
pub mod interrupt;
pub mod junit;
pub mod kernel_build;
pub mod kernel_config;
pub mod kmsg;
pub mod lxc;
pub mod lxc_config;
pub mod matrix;
pub mod merge;
pub mod outcome;
pub mod parallel;
pub mod proctree;
pub mod progress;
pub mod report;
pub mod requirements;
pub mod results;
pub mod rfb;
pub mod scenario;
pub mod shard;
pub mod summary_md;
pub mod userland_variant;
pub mod verdict;
pub mod vm_run;
pub mod vnc_steps;
