//! `vdso`: the vDSO's place and its clock. See [`crtest_workloads::memory::vdso`].

use crtest_workloads::{memory::vdso, protocol};

fn main() {
    protocol::run_main(vdso::NAME, vdso::OPTIONS, vdso::run)
}
