//! `futex`: threads and a process waiting on futexes. See [`crtest_workloads::ipc::futex`].

use crtest_workloads::{ipc::futex, protocol};

fn main() {
    protocol::run_main(futex::NAME, futex::OPTIONS, futex::run)
}
