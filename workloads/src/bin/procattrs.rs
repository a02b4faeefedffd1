//! `procattrs`: name, cwd, umask, rlimits, nice, personality and more. See [`crtest_workloads::process::procattrs`].

use crtest_workloads::{process::procattrs, protocol};

fn main() {
    protocol::run_main(procattrs::NAME, procattrs::OPTIONS, procattrs::run)
}
