//! `threads`: threads with their own ids, names, thread-local values, masks and stacks. See [`crtest_workloads::process::threads`].

use crtest_workloads::{process::threads, protocol};

fn main() {
    protocol::run_main(threads::NAME, threads::OPTIONS, threads::run)
}
