//! `thp`. See [`crtest_workloads::memory::thp`].

use crtest_workloads::{memory::thp, protocol};

fn main() {
    protocol::run_main(thp::NAME, thp::OPTIONS, thp::run)
}
