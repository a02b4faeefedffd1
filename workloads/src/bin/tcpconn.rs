//! `tcpconn`: an established TCP connection with data in flight both ways. See [`crtest_workloads::net::tcpconn`].

use crtest_workloads::{net::tcpconn, protocol};

fn main() {
    protocol::run_main(tcpconn::NAME, tcpconn::OPTIONS, tcpconn::run)
}
