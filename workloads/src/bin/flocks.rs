//! `flocks`: flock(2) locks. See [`crtest_workloads::files::flocks`].

use crtest_workloads::{files::flocks, protocol};

fn main() {
    protocol::run_main(flocks::NAME, flocks::OPTIONS, flocks::run)
}
