//! `rawsock`. See [`crtest_workloads::net::rawsock`].

use crtest_workloads::{net::rawsock, protocol};

fn main() {
    protocol::run_main(rawsock::NAME, rawsock::OPTIONS, rawsock::run)
}
