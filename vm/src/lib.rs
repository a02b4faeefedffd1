//! Kernels, guest images and QEMU for cr-tests.
//!
//! * [`cache`]: directories keyed by their inputs, built once, verified on use;
//! * [`apt`], [`apt_get`]: the host's mirror, for another suite; apt look-ups
//!   and downloads;
//! * [`kernel`] (with [`bzimage`], [`kconfig`]): Debian or local kernels;
//! * [`modules`]: module names to the files to load, in order;
//! * [`initramfs`]: the newc archive with the agent, workloads and modules;
//! * [`userland`]: the Debian guest root as an ext4 image ([`ext4`]), built by root or,
//!   in a user namespace ([`userns`]), by a normal user;
//! * [`criu_tree`], [`criu_build`]: a user's CRIU source tree, built for a suite and put
//!   into its image in place of the package's criu; [`zdtm_build`]: its zdtm tests;
//! * [`qemu`], [`console`]: QEMU's command line and process guard; following the console;
//! * [`qmp`], [`saved_vm`]: QEMU's machine protocol; a guest saved when ready and resumed;
//! * [`hostdeps`]: the host tools, installed when missing;
//! * [`command`], [`control`]: running tools; Debian control-file syntax.

pub mod apt;
pub mod apt_get;
pub mod bzimage;
pub mod cache;
pub mod command;
pub mod console;
pub mod control;
pub mod criu_build;
pub mod criu_tree;
pub mod ext4;
pub mod hostdeps;
pub mod initramfs;
pub mod kconfig;
pub mod kernel;
pub mod modules;
pub mod qemu;
pub mod qmp;
pub mod saved_vm;
pub mod userland;
pub mod userns;
pub mod vmlinux;
pub mod zdtm_build;

pub use cache::Cache;
pub use command::{Cmd, CommandError};
pub use kernel::{Kernel, KernelSource};
pub use userland::Userland;
