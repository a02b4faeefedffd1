//! `eventfd`: event counters. See [`crtest_workloads::ipc::eventfd`].

use crtest_workloads::{ipc::eventfd, protocol};

fn main() {
    protocol::run_main(eventfd::NAME, eventfd::OPTIONS, eventfd::run)
}
