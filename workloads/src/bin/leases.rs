//! `leases`. See [`crtest_workloads::files::leases`].

use crtest_workloads::{files::leases, protocol};

fn main() {
    protocol::run_main(leases::NAME, leases::OPTIONS, leases::run)
}
