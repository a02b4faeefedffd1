//! `ipv6`. See [`crtest_workloads::net::ipv6`].

use crtest_workloads::{net::ipv6, protocol};

fn main() {
    protocol::run_main(ipv6::NAME, ipv6::OPTIONS, ipv6::run)
}
