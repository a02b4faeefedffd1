//! `unlinked`: files that stay open after their name is gone. See [`crtest_workloads::files::unlinked`].

use crtest_workloads::{files::unlinked, protocol};

fn main() {
    protocol::run_main(unlinked::NAME, unlinked::OPTIONS, unlinked::run)
}
