//! `udp`: UDP sockets with and without queued datagrams. See [`crtest_workloads::net::udp`].

use crtest_workloads::{net::udp, protocol};

fn main() {
    protocol::run_main(udp::NAME, udp::OPTIONS, udp::run)
}
