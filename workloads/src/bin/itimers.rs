//! `itimers`: the three interval timers of setitimer. See [`crtest_workloads::signals::itimers`].

use crtest_workloads::{protocol, signals::itimers};

fn main() {
    protocol::run_main(itimers::NAME, itimers::OPTIONS, itimers::run)
}
