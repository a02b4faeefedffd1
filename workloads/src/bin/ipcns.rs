//! `ipcns`: an IPC namespace with its own limits. See [`crtest_workloads::ns::ipcns`].

use crtest_workloads::{ns::ipcns, protocol};

fn main() {
    protocol::run_main(ipcns::NAME, ipcns::OPTIONS, ipcns::run)
}
