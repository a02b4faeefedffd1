//! `unixdgram`: UNIX datagram sockets with queued messages. See [`crtest_workloads::ipc::unixsock::dgram`].

use crtest_workloads::{ipc::unixsock::dgram, protocol};

fn main() {
    protocol::run_main(dgram::NAME, dgram::OPTIONS, dgram::run)
}
