//! `tcplisten`: a listening TCP socket that must still accept. See [`crtest_workloads::net::tcplisten`].

use crtest_workloads::{net::tcplisten, protocol};

fn main() {
    protocol::run_main(tcplisten::NAME, tcplisten::OPTIONS, tcplisten::run)
}
