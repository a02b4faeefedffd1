//! `zombies`: children that have exited and are not reaped yet. See [`crtest_workloads::process::zombies`].

use crtest_workloads::{process::zombies, protocol};

fn main() {
    protocol::run_main(zombies::NAME, zombies::OPTIONS, zombies::run)
}
