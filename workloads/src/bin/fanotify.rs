//! `fanotify`. See [`crtest_workloads::files::fanotify`].

use crtest_workloads::{files::fanotify, protocol};

fn main() {
    protocol::run_main(fanotify::NAME, fanotify::OPTIONS, fanotify::run)
}
