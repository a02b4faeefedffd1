//! `posixshm`: POSIX shared memory mapped by the workload. See [`crtest_workloads::ipc::posixshm`].

use crtest_workloads::{ipc::posixshm, protocol};

fn main() {
    protocol::run_main(posixshm::NAME, posixshm::OPTIONS, posixshm::run)
}
