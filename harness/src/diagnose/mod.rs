//! Naming failures: errno names, kernel messages, the failure classes, what criu's logs
//! say, the kernel config fragment, version comparison, and `doctor`'s verdict on a
//! pairing of kernel and tools (with the OCI runtimes a userland can checkpoint with). Pure logic over text; uses nothing of the crate.

pub mod chain;
pub mod class;
pub mod criu_log;
pub mod doctor;
pub mod errno;
pub mod kernel_config;
pub mod kmsg;
pub mod oci;
pub mod version;
