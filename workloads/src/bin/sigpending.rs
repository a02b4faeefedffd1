//! `sigpending`: blocked signals waiting to be delivered. See [`crtest_workloads::signals::sigpending`].

use crtest_workloads::{protocol, signals::sigpending};

fn main() {
    protocol::run_main(sigpending::NAME, sigpending::OPTIONS, sigpending::run)
}
