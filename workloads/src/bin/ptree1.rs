//! `ptree1`: a process tree counting in shared memory. See [`crtest_workloads::ptree`].

use crtest_workloads::{protocol, ptree};

fn main() {
    protocol::run_main(ptree::NAME, ptree::OPTIONS, ptree::run)
}
