//! `sysvshm`: System V shared memory in an own IPC namespace. See [`crtest_workloads::ipc::sysvshm`].

use crtest_workloads::{ipc::sysvshm, protocol};

fn main() {
    protocol::run_main(sysvshm::NAME, sysvshm::OPTIONS, sysvshm::run)
}
