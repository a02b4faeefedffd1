//! `epoll`: an epoll instance watching pipes, sockets and an eventfd. See [`crtest_workloads::ipc::epoll`].

use crtest_workloads::{ipc::epoll, protocol};

fn main() {
    protocol::run_main(epoll::NAME, epoll::OPTIONS, epoll::run)
}
