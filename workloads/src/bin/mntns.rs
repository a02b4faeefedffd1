//! `mntns`: a mount namespace with a private tmpfs. See [`crtest_workloads::ns::mntns`].

use crtest_workloads::{ns::mntns, protocol};

fn main() {
    protocol::run_main(mntns::NAME, mntns::OPTIONS, mntns::run)
}
