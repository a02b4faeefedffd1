//! Workload programs run inside the cr-tests guest, and the protocol they share.
//!
//! Each workload is one binary (`src/bin/`) whose `main` is a single call to
//! [`protocol::run_main`]; the logic lives here so it can be unit-tested:
//!
//! - [`protocol`]: the `ready` / `progress` / `result` files and SIGTERM-means-verify.
//! - [`args`]: the `--name value` option parser the binaries use.
//! - [`fileio`]: `fileio1`, a record-by-record file copy through long-lived fds.
//! - [`ptree`]: `ptree1`, a tree of processes counting in shared memory.
//! - [`counter`]: `counterloop`, a counter mirrored into a file with `pwrite`.

/// Every workload binary, by name. The harness accepts these in scenario files and ships
/// them in the guest; a new binary in `src/bin/` must be added here.
pub const ALL: &[&str] = &["counterloop", "fileio1", "ptree1"];

pub mod args;
pub mod counter;
pub mod fileio;
pub mod protocol;
pub mod ptree;
