//! `vncdesk`: Xvnc, twm and an xterm running vi. See [`crtest_workloads::desktop`].

use crtest_workloads::{desktop, protocol};

fn main() {
    protocol::run_main(desktop::NAME, desktop::OPTIONS, desktop::run)
}
