//! `stopped`. See [`crtest_workloads::process::stopped`].

use crtest_workloads::{process::stopped, protocol};

fn main() {
    protocol::run_main(stopped::NAME, stopped::OPTIONS, stopped::run)
}
