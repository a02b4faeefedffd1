//! `chroot`. See [`crtest_workloads::process::chroot`].

use crtest_workloads::{process::chroot, protocol};

fn main() {
    protocol::run_main(chroot::NAME, chroot::OPTIONS, chroot::run)
}
