//! `sessions`: process groups and sessions inside one tree. See [`crtest_workloads::process::sessions`].

use crtest_workloads::{process::sessions, protocol};

fn main() {
    protocol::run_main(sessions::NAME, sessions::OPTIONS, sessions::run)
}
