//! `uffd`. See [`crtest_workloads::memory::uffd`].

use crtest_workloads::{memory::uffd, protocol};

fn main() {
    protocol::run_main(uffd::NAME, uffd::OPTIONS, uffd::run)
}
