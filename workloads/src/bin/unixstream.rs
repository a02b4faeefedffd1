//! `unixstream`: UNIX stream sockets with queued data. See [`crtest_workloads::ipc::unixsock::stream`].

use crtest_workloads::{ipc::unixsock::stream, protocol};

fn main() {
    protocol::run_main(stream::NAME, stream::OPTIONS, stream::run)
}
