//! `uprobes`. See [`crtest_workloads::process::uprobes`].

use crtest_workloads::{process::uprobes, protocol};

fn main() {
    protocol::run_main(uprobes::NAME, uprobes::OPTIONS, uprobes::run)
}
