//! `creds`. See [`crtest_workloads::process::creds`].

use crtest_workloads::{process::creds, protocol};

fn main() {
    protocol::run_main(creds::NAME, creds::OPTIONS, creds::run)
}
