//! `posixtimers`: POSIX timers. See [`crtest_workloads::signals::posixtimers`].

use crtest_workloads::{protocol, signals::posixtimers};

fn main() {
    protocol::run_main(posixtimers::NAME, posixtimers::OPTIONS, posixtimers::run)
}
