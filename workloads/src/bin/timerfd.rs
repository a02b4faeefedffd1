//! `timerfd`: timers read through descriptors. See [`crtest_workloads::ipc::timerfd`].

use crtest_workloads::{ipc::timerfd, protocol};

fn main() {
    protocol::run_main(timerfd::NAME, timerfd::OPTIONS, timerfd::run)
}
