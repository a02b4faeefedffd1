//! `counterloop`: a counter mirrored into counter.dat. See [`crtest_workloads::counter`].

use crtest_workloads::{counter, protocol};

fn main() {
    protocol::run_main(counter::NAME, counter::OPTIONS, counter::run)
}
