//! `fileio1`: copy src.dat to dst.dat record by record and verify the copy. See [`crtest_workloads::fileio`].

use crtest_workloads::{fileio, protocol};

fn main() {
    protocol::run_main(fileio::NAME, fileio::OPTIONS, fileio::run)
}
