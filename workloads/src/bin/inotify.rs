//! `inotify`: inotify watches that must survive and keep reporting. See [`crtest_workloads::ipc::inotify`].

use crtest_workloads::{ipc::inotify, protocol};

fn main() {
    protocol::run_main(inotify::NAME, inotify::OPTIONS, inotify::run)
}
