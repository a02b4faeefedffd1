//! `memfd`: memfds with seals. See [`crtest_workloads::files::memfd`].

use crtest_workloads::{files::memfd, protocol};

fn main() {
    protocol::run_main(memfd::NAME, memfd::OPTIONS, memfd::run)
}
