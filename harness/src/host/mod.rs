//! The host side: cells (kernel x userland), images, QEMU runs, shards and parallel
//! guests, the matrix, bench, kernel builds, `run --host`, and signals that stop a run.

pub mod bench;
pub mod bisect;
pub mod catalog;
pub mod cell_choice;
pub mod guest_build;
pub mod guest_share;
pub mod host_run;
pub mod interrupt;
pub mod kernel_build;
pub mod matrix;
pub mod migrate;
pub mod parallel;
pub mod profile;
pub mod repeat;
pub mod resume;
pub mod shard;
pub mod vm_run;
