//! `sockfilter`. See [`crtest_workloads::net::sockfilter`].

use crtest_workloads::{net::sockfilter, protocol};

fn main() {
    protocol::run_main(sockfilter::NAME, sockfilter::OPTIONS, sockfilter::run)
}
