//! `utsns`: a UTS namespace with its own host and domain names. See [`crtest_workloads::ns::utsns`].

use crtest_workloads::{ns::utsns, protocol};

fn main() {
    protocol::run_main(utsns::NAME, utsns::OPTIONS, utsns::run)
}
