//! `unixseqpacket`: UNIX seqpacket sockets with queued messages. See [`crtest_workloads::ipc::unixsock::seqpacket`].

use crtest_workloads::{ipc::unixsock::seqpacket, protocol};

fn main() {
    protocol::run_main(seqpacket::NAME, seqpacket::OPTIONS, seqpacket::run)
}
