//! `netlink`: a bound NETLINK_ROUTE socket with memberships. See [`crtest_workloads::net::netlink`].

use crtest_workloads::{net::netlink, protocol};

fn main() {
    protocol::run_main(netlink::NAME, netlink::OPTIONS, netlink::run)
}
