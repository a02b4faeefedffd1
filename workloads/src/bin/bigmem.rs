//! `bigmem`: a large anonymous region whose every page is checked. See [`crtest_workloads::memory::bigmem`].

use crtest_workloads::{memory::bigmem, protocol};

fn main() {
    protocol::run_main(bigmem::NAME, bigmem::OPTIONS, bigmem::run)
}
