//! `bpfmap`. See [`crtest_workloads::ipc::bpfmap`].

use crtest_workloads::{ipc::bpfmap, protocol};

fn main() {
    protocol::run_main(bpfmap::NAME, bpfmap::OPTIONS, bpfmap::run)
}
