//! `appendlog`: a log written through an O_APPEND descriptor. See [`crtest_workloads::files::appendlog`].

use crtest_workloads::{files::appendlog, protocol};

fn main() {
    protocol::run_main(appendlog::NAME, appendlog::OPTIONS, appendlog::run)
}
