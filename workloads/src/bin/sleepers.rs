//! `sleepers`: sleeps that a checkpoint interrupts must end at the right time. See [`crtest_workloads::signals::sleepers`].

use crtest_workloads::{protocol, signals::sleepers};

fn main() {
    protocol::run_main(sleepers::NAME, sleepers::OPTIONS, sleepers::run)
}
