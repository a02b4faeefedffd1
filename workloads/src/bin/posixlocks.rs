//! `posixlocks`: POSIX record locks and OFD locks. See [`crtest_workloads::files::posixlocks`].

use crtest_workloads::{files::posixlocks, protocol};

fn main() {
    protocol::run_main(posixlocks::NAME, posixlocks::OPTIONS, posixlocks::run)
}
