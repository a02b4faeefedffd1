//! `signalfd`: signals read through descriptors, with signals waiting. See [`crtest_workloads::ipc::signalfd`].

use crtest_workloads::{ipc::signalfd, protocol};

fn main() {
    protocol::run_main(signalfd::NAME, signalfd::OPTIONS, signalfd::run)
}
