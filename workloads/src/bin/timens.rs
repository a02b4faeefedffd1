//! `timens`. See [`crtest_workloads::ns::timens`].

use crtest_workloads::{ns::timens, protocol};

fn main() {
    protocol::run_main(timens::NAME, timens::OPTIONS, timens::run)
}
