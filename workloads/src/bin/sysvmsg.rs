//! `sysvmsg`: a System V message queue in an own IPC namespace. See [`crtest_workloads::ipc::sysvmsg`].

use crtest_workloads::{ipc::sysvmsg, protocol};

fn main() {
    protocol::run_main(sysvmsg::NAME, sysvmsg::OPTIONS, sysvmsg::run)
}
