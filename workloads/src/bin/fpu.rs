//! `fpu`: vector registers and MXCSR of a running thread. See [`crtest_workloads::process::fpu`].

use crtest_workloads::{process::fpu, protocol};

fn main() {
    protocol::run_main(fpu::NAME, fpu::OPTIONS, fpu::run)
}
