//! `sysvsem`: System V semaphores in an own IPC namespace. See [`crtest_workloads::ipc::sysvsem`].

use crtest_workloads::{ipc::sysvsem, protocol};

fn main() {
    protocol::run_main(sysvsem::NAME, sysvsem::OPTIONS, sysvsem::run)
}
