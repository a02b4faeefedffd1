//! `fifo`: a named pipe with unread data, open three ways. See [`crtest_workloads::ipc::fifo`].

use crtest_workloads::{ipc::fifo, protocol};

fn main() {
    protocol::run_main(fifo::NAME, fifo::OPTIONS, fifo::run)
}
