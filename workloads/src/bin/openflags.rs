//! `openflags`: descriptors with their own flags, offsets and close-on-exec bits. See [`crtest_workloads::files::openflags`].

use crtest_workloads::{files::openflags, protocol};

fn main() {
    protocol::run_main(openflags::NAME, openflags::OPTIONS, openflags::run)
}
