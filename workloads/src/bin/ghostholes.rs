//! `ghostholes`. See [`crtest_workloads::files::ghostholes`].

use crtest_workloads::{files::ghostholes, protocol};

fn main() {
    protocol::run_main(ghostholes::NAME, ghostholes::OPTIONS, ghostholes::run)
}
