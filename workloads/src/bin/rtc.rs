//! `rtc`. See [`crtest_workloads::files::rtc`].

use crtest_workloads::{files::rtc, protocol};

fn main() {
    protocol::run_main(rtc::NAME, rtc::OPTIONS, rtc::run)
}
