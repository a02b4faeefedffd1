//! `pipes`: pipes with unread data in them. See [`crtest_workloads::ipc::pipes`].

use crtest_workloads::{ipc::pipes, protocol};

fn main() {
    protocol::run_main(pipes::NAME, pipes::OPTIONS, pipes::run)
}
