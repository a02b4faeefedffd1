//! `packet`: an AF_PACKET socket bound to lo. See [`crtest_workloads::net::packet`].

use crtest_workloads::{net::packet, protocol};

fn main() {
    protocol::run_main(packet::NAME, packet::OPTIONS, packet::run)
}
