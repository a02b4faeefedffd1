//! `lsm`. See [`crtest_workloads::process::lsm`].

use crtest_workloads::{process::lsm, protocol};

fn main() {
    protocol::run_main(lsm::NAME, lsm::OPTIONS, lsm::run)
}
