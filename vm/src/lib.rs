//! Kernels, guest images and QEMU for cr-tests.

pub mod apt;
pub mod apt_get;
pub mod bzimage;
pub mod cache;
pub mod command;
pub mod control;
pub mod kconfig;
pub mod kernel;
