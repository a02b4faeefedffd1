//! `bursty`: file and socket I/O in bursts. See [`crtest_workloads::files::bursty`].

use crtest_workloads::{files::bursty, protocol};

fn main() {
    protocol::run_main(bursty::NAME, bursty::OPTIONS, bursty::run)
}
