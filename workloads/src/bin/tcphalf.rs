//! `tcphalf`. See [`crtest_workloads::net::tcphalf`].

use crtest_workloads::{net::tcphalf, protocol};

fn main() {
    protocol::run_main(tcphalf::NAME, tcphalf::OPTIONS, tcphalf::run)
}
