//! `mmapfile`: file-backed mappings, shared and private. See [`crtest_workloads::files::mmapfile`].

use crtest_workloads::{files::mmapfile, protocol};

fn main() {
    protocol::run_main(mmapfile::NAME, mmapfile::OPTIONS, mmapfile::run)
}
