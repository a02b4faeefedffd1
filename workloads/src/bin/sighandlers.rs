//! `sighandlers`: signal dispositions and the alternate signal stack. See [`crtest_workloads::signals::sighandlers`].

use crtest_workloads::{protocol, signals::sighandlers};

fn main() {
    protocol::run_main(sighandlers::NAME, sighandlers::OPTIONS, sighandlers::run)
}
