//! `pidfd`: a process descriptor of a child. See [`crtest_workloads::process::pidfd`].

use crtest_workloads::{process::pidfd, protocol};

fn main() {
    protocol::run_main(pidfd::NAME, pidfd::OPTIONS, pidfd::run)
}
