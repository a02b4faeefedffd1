//! `pidns`: a process tree in a PID namespace of its own. See [`crtest_workloads::ns::pidns`].

use crtest_workloads::{ns::pidns, protocol};

fn main() {
    protocol::run_main(pidns::NAME, pidns::OPTIONS, pidns::run)
}
