//! `cowmem`: copy-on-write and shared anonymous memory across three processes. See [`crtest_workloads::memory::cowmem`].

use crtest_workloads::{memory::cowmem, protocol};

fn main() {
    protocol::run_main(cowmem::NAME, cowmem::OPTIONS, cowmem::run)
}
