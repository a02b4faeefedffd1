//! `seccomp`: a seccomp filter that must still be enforced. See [`crtest_workloads::process::seccomp`].

use crtest_workloads::{process::seccomp, protocol};

fn main() {
    protocol::run_main(seccomp::NAME, seccomp::OPTIONS, seccomp::run)
}
