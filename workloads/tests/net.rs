//! The `net` workloads on the host: each passes when left alone, and each catches its
//! sockets changed from outside the way a broken restore would leave them (bytes taken
//! out of a connection, a listener that stopped listening, a datagram gone, a netlink
//! membership dropped, a packet socket option turned off).

mod common;

use common::*;
use nix::libc;
use std::os::fd::AsRawFd;
use std::time::Duration;

const FAST: &[&str] = &["--tick-ms", "5"];
const GRACE: Duration = Duration::from_secs(3);

fn started(bin: &str, args: &[&str]) -> (Running, String) {
    let mut w = Running::start(bin, args);
    let ready = w.wait_ready();
    (w, ready.detail)
}

#[test]
fn tcpconn_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_tcpconn"), FAST);
    assert!(
        detail.starts_with("the TCP connection stayed ESTABLISHED"),
        "{detail}"
    );
}

#[test]
fn tcpconn_catches_bytes_taken_out() {
    if !root_or_skip("tcpconn_catches_bytes_taken_out") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_tcpconn"), FAST);
    let fd = detail_number(&detail, "server") as i32;
    let stolen = steal_fd(w.pid(), fd);
    let mut buf = [0u8; 100];
    // SAFETY: a valid buffer.
    let n = unsafe {
        libc::recv(
            stolen.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            100,
            libc::MSG_DONTWAIT,
        )
    };
    assert_eq!(n, 100);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            "client -> server: ",
            "bytes wait at the receiver and",
            "were written and none read",
        ],
    );
}

#[test]
fn tcpconn_catches_bytes_made_up() {
    if !root_or_skip("tcpconn_catches_bytes_made_up") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_tcpconn"), FAST);
    let fd = detail_number(&detail, "server") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // 100 bytes the workload never wrote reach the client, as a restore that put data
    // twice into its receive queue would leave it.
    let extra = [b'x'; 100];
    // SAFETY: a valid buffer.
    let n = unsafe {
        libc::send(
            stolen.as_raw_fd(),
            extra.as_ptr().cast(),
            extra.len(),
            libc::MSG_DONTWAIT,
        )
    };
    assert_eq!(n, 100);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            "server -> client: ",
            "1100 bytes wait at the receiver, more than the 1000 that were written and none read",
        ],
    );
}

#[test]
fn tcplisten_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_tcplisten"), FAST);
    assert!(detail.contains("accepted 2 new connections"), "{detail}");
}

#[test]
fn tcplisten_catches_a_listener_that_stopped() {
    if !root_or_skip("tcplisten_catches_a_listener_that_stopped") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_tcplisten"), FAST);
    let fd = detail_number(&detail, "listener") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: plain syscall on our copy.
    assert_eq!(
        unsafe { libc::shutdown(stolen.as_raw_fd(), libc::SHUT_RDWR) },
        0
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            &format!("listener (fd {fd}, 127.0.0.1:"),
            "SO_ACCEPTCONN is 0, it no longer listens",
        ],
    );
}

#[test]
fn udp_passes_with_and_without_queued_datagrams() {
    let detail = passes(env!("CARGO_BIN_EXE_udp"), FAST);
    assert!(detail.contains("0 queued datagrams arrived"), "{detail}");
    let detail = passes(
        env!("CARGO_BIN_EXE_udp"),
        &["--tick-ms", "5", "--queued", "3"],
    );
    assert!(
        detail.contains("3 queued datagrams arrived whole and in order"),
        "{detail}"
    );
}

#[test]
fn udp_catches_a_lost_datagram() {
    if !root_or_skip("udp_catches_a_lost_datagram") {
        return;
    }
    let (mut w, detail) = started(
        env!("CARGO_BIN_EXE_udp"),
        &["--tick-ms", "5", "--queued", "3"],
    );
    let fd = detail_number(&detail, "receiver") as i32;
    let stolen = steal_fd(w.pid(), fd);
    let mut buf = [0u8; 100];
    // SAFETY: a valid buffer.
    let n = unsafe {
        libc::recv(
            stolen.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            100,
            libc::MSG_DONTWAIT,
        )
    };
    assert_eq!(n, 5);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            &format!("receiver (fd {fd}, 127.0.0.1:"),
            "the next waiting datagram (SIOCINQ) is 15 bytes, expected 5 (3 datagrams were queued)",
        ],
    );
}

#[test]
fn netlink_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_netlink"), FAST);
    assert!(
        detail.starts_with("the netlink socket kept its port id, groups and memberships"),
        "{detail}"
    );
}

#[test]
fn netlink_catches_a_membership_dropped() {
    if !root_or_skip("netlink_catches_a_membership_dropped") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_netlink"), FAST);
    let fd = detail_number(&detail, "route") as i32;
    let copy = steal_fd(w.pid(), fd);
    crtest_workloads::sys::setsockopt_int(
        copy.as_raw_fd(),
        libc::SOL_NETLINK,
        libc::NETLINK_DROP_MEMBERSHIP,
        libc::RTNLGRP_TC as libc::c_int,
    )
    .unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "netlink route socket (fd {fd}): bound groups: expected \"0x228\", got \"0x220\""
        )],
    );
}

#[test]
fn packet_passes() {
    if !root_or_skip("packet_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_packet"), FAST);
    assert!(
        detail.starts_with("the packet socket stayed bound to lo"),
        "{detail}"
    );
}

#[test]
fn packet_catches_an_option_turned_off() {
    if !root_or_skip("packet_catches_an_option_turned_off") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_packet"), FAST);
    let fd = detail_number(&detail, "raw") as i32;
    let copy = steal_fd(w.pid(), fd);
    crtest_workloads::sys::setsockopt_int(
        copy.as_raw_fd(),
        libc::SOL_PACKET,
        libc::PACKET_AUXDATA,
        0,
    )
    .unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "packet socket (fd {fd}): PACKET_AUXDATA: expected 1, got 0"
        )],
    );
}

#[test]
fn ipv6_passes() {
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        eprintln!("ipv6_passes: skipped: no IPv6 on this host");
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_ipv6"), FAST);
    assert!(
        detail.starts_with("a dual-stack listener, an IPv6 and an IPv4-mapped connection"),
        "{detail}"
    );
}

#[test]
fn ipv6_catches_a_half_closed_connection() {
    if !root_or_skip("ipv6_catches_a_half_closed_connection") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_ipv6"), FAST);
    let fd = detail_number(&detail, "v6client") as i32;
    let copy = steal_fd(w.pid(), fd);
    // SAFETY: plain syscall on our copy of the socket.
    assert_eq!(
        unsafe { libc::shutdown(copy.as_raw_fd(), libc::SHUT_WR) },
        0
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["IPv6 connection: client state: expected \"ESTABLISHED\", got \"FIN_WAIT"],
    );
}

#[test]
fn tcphalf_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_tcphalf"), FAST);
    assert!(
        detail.starts_with("a half-closed connection stayed in FIN_WAIT2 / CLOSE_WAIT"),
        "{detail}"
    );
}

#[test]
fn tcphalf_catches_the_other_half_closed() {
    if !root_or_skip("tcphalf_catches_the_other_half_closed") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_tcphalf"), FAST);
    let fd = detail_number(&detail, "server") as i32;
    let copy = steal_fd(w.pid(), fd);
    // SAFETY: plain syscall on our copy of the socket.
    assert_eq!(
        unsafe { libc::shutdown(copy.as_raw_fd(), libc::SHUT_WR) },
        0
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["server: state: expected \"CLOSE_WAIT\", got"],
    );
}

#[test]
fn rawsock_passes() {
    if !root_or_skip("rawsock_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_rawsock"), FAST);
    assert!(
        detail.starts_with("ICMP, ICMPv6 and header-including raw sockets"),
        "{detail}"
    );
}

#[test]
fn rawsock_catches_a_changed_icmp_filter() {
    if !root_or_skip("rawsock_catches_a_changed_icmp_filter") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_rawsock"), FAST);
    let fd = detail_number(&detail, "icmp") as i32;
    let copy = steal_fd(w.pid(), fd);
    // Let every ICMP type through.
    crtest_workloads::sys::setsockopt_int(
        copy.as_raw_fd(),
        libc::SOL_RAW,
        crtest_workloads::net::rawsock::ICMP_FILTER,
        0,
    )
    .unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("ICMP raw socket (fd {fd}): ICMP_FILTER: expected")],
    );
}

#[test]
fn sockfilter_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_sockfilter"), FAST);
    assert!(
        detail.starts_with("two socket filters read back the same"),
        "{detail}"
    );
}

#[test]
fn sockfilter_catches_a_detached_filter() {
    if !root_or_skip("sockfilter_catches_a_detached_filter") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_sockfilter"), FAST);
    let fd = detail_number(&detail, "short") as i32;
    let copy = steal_fd(w.pid(), fd);
    crtest_workloads::sys::setsockopt_int(
        copy.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_DETACH_FILTER,
        0,
    )
    .unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "short-datagram socket (fd {fd}): filter program: expected"
        )],
    );
}

#[test]
fn sockfilter_with_a_locked_filter_passes() {
    let detail = passes(
        env!("CARGO_BIN_EXE_sockfilter"),
        &["--tick-ms", "5", "--lock", "1"],
    );
    assert!(
        detail.starts_with("two socket filters read back the same"),
        "{detail}"
    );
}
