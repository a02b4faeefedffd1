//! `pty`: a pseudo-terminal pair with data in flight and its own settings. See [`crtest_workloads::tty::pty`].

use crtest_workloads::{protocol, tty::pty};

fn main() {
    protocol::run_main(pty::NAME, pty::OPTIONS, pty::run)
}
