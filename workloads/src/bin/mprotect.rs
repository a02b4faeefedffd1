//! `mprotect`: anonymous regions with their own protections and madvise/mlock flags. See [`crtest_workloads::memory::mprotect`].

use crtest_workloads::{memory::mprotect, protocol};

fn main() {
    protocol::run_main(mprotect::NAME, mprotect::OPTIONS, mprotect::run)
}
