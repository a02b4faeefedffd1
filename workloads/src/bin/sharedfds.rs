//! `sharedfds`: one open file description shared by two processes. See [`crtest_workloads::files::sharedfds`].

use crtest_workloads::{files::sharedfds, protocol};

fn main() {
    protocol::run_main(sharedfds::NAME, sharedfds::OPTIONS, sharedfds::run)
}
