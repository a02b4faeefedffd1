//! `aio`: an AIO context with a completion waiting. See [`crtest_workloads::files::aio`].

use crtest_workloads::{files::aio, protocol};

fn main() {
    protocol::run_main(aio::NAME, aio::OPTIONS, aio::run)
}
