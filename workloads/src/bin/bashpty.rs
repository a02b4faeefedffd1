//! `bashpty`: an interactive bash driven through a pseudo-terminal. See [`crtest_workloads::shell`].

use crtest_workloads::{protocol, shell};

fn main() {
    protocol::run_main(shell::NAME, shell::OPTIONS, shell::run)
}
