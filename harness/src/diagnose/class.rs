//! Naming a failure: its class (from `harness/data/failure-classes.toml`) and its errno.

use serde::Deserialize;
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    pub id: String,
    pub title: String,
    pub fix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    class: String,
    #[serde(default)]
    contains: Vec<String>,
    errno: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    class: Vec<Class>,
    rule: Vec<Rule>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        toml::from_str(include_str!("../../data/failure-classes.toml"))
            .expect("harness/data/failure-classes.toml is valid (checked by a unit test)")
    })
}

/// The class with this id.
pub fn class(id: &str) -> Option<&'static Class> {
    table().class.iter().find(|c| c.id == id)
}

/// All class ids, in the table's order.
pub fn class_ids() -> Vec<&'static str> {
    table().class.iter().map(|c| c.id.as_str()).collect()
}

/// The class of a failure given its evidence lines (most telling first) and its errno.
pub fn classify<'a>(
    evidence: impl IntoIterator<Item = &'a str> + Clone,
    errno: Option<&str>,
) -> String {
    for rule in &table().rule {
        let errno_ok = rule.errno.as_deref().is_none_or(|want| Some(want) == errno);
        if !errno_ok {
            continue;
        }
        let hit = rule.contains.is_empty()
            || evidence
                .clone()
                .into_iter()
                .any(|line| rule.contains.iter().all(|c| line.contains(c.as_str())));
        if hit {
            return rule.class.clone();
        }
    }
    "unknown".into()
}

/// `Error (...)` lines of a criu log, in order.
pub fn error_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.find("Error (").map(|i| l[i..].trim_end()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn table_is_consistent() {
        let ids = class_ids();
        for r in &table().rule {
            assert!(
                ids.contains(&r.class.as_str()),
                "rule names unknown class {}",
                r.class
            );
            assert!(
                !r.contains.is_empty() || r.errno.is_some(),
                "rule matches everything"
            );
        }
    }

    // Each excerpt is a real line from a criu or tool log.
    #[rstest]
    #[case(
        "result: FAIL (progress 0): setup failed: cannot start Xvnc: ENOENT: No such file or directory",
        Some("ENOENT"),
        "missing-tool"
    )]
    #[case(
        "Error (criu/cgroup.c:1093): cg: Can't move 99 into unified//crtest-busy/leaf/cgroup.procs (-1/10): Device or resource busy",
        Some("EBUSY"),
        "resource-busy"
    )]
    #[case(
        "Warn  (compel/src/lib/infect.c:127): Unable to interrupt task: 125 (Operation not permitted)",
        Some("EPERM"),
        "permission"
    )]
    #[case(
        "Error (criu/cr-restore.c:1469): Can't fork for 156: File exists",
        Some("EEXIST"),
        "pid-collision"
    )]
    #[case(
        "Error (criu/vdso.c:627): vdso: Unexpected rt vDSO area bounds",
        None,
        "version-mismatch"
    )]
    #[case(
        "Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported",
        Some("EOPNOTSUPP"),
        "version-mismatch"
    )]
    #[case(
        "sockets: Sockects collect procedure family AF_INET proto IPPROTO_UDPLITE: -2",
        Some("ENOENT"),
        "version-mismatch"
    )]
    #[case(
        "sockets: Sockects collect procedure family AF_INET proto IPPROTO_UDP: -2",
        Some("ENOENT"),
        "missing-kernel-feature"
    )]
    #[case("Error (criu/util.c:637): execvp(\"iptables-restore\", ...) failed: No such file or directory", Some("ENOENT"), "missing-tool")]
    #[case("Error (criu/arch/x86/crtools.c:378): x86: FPU xsave area present, but host cpu doesn't support it", None, "cpu-mismatch")]
    #[case(
        "Error (criu/arch/x86/cpu.c:297): cpu: CPU capabilities do not match run time",
        None,
        "cpu-mismatch"
    )]
    #[case(
        "Error (criu/files-reg.c:2175): File usr/bin/bash has bad size 1298416 (expect 1265648)",
        None,
        "files-differ"
    )]
    #[case(
        "Error (criu/pie/util-vdso.c:117): vdso: ELF header magic mismatch",
        None,
        "version-mismatch"
    )]
    #[case("Can't connect to server 10.77.0.2:27100", None, "peer-unreachable")]
    #[case(
        "Error: configured runtime does not support checkpoint/restore",
        None,
        "runtime-without-criu"
    )]
    #[case(
        "Error (soccr/soccr.c:529): Can't connect inet socket back: Network is unreachable",
        Some("ENETUNREACH"),
        "netns-unreachable"
    )]
    #[case(
        "Error (criu/protobuf.c:76): Read 2 bytes while 4 expected on /tmp/crtest/counterloop/images-1/inventory.img: Success",
        None,
        "damaged-images"
    )]
    #[case(
        "Error (criu/page-xfer.c:1510): page-xfer: The page server doesn't answer: No such file or directory",
        Some("ENOENT"),
        "peer-unreachable"
    )]
    #[case(
        "Error (criu/libnetlink.c:84): ERROR -95 reported by netlink",
        Some("EOPNOTSUPP"),
        "missing-kernel-feature"
    )]
    #[case(
        "Error (criu/kerndat.c:1421): kerndat_has_nspid failed when initializing kerndat.",
        None,
        "missing-kernel-feature"
    )]
    #[case(
        "Error (criu/lsm.c:351): apparmor LSM specified but apparmor not supported by kernel",
        None,
        "missing-kernel-feature"
    )]
    #[case(
        "modprobe: FATAL: Module packet_diag not found in directory /lib/modules/6.1.0-56-amd64",
        None,
        "missing-kernel-feature"
    )]
    #[case("Error (criu/sk-unix.c:896): unix: External socket is used. Consider using --ext-unix-sk option.", None, "unsupported-resource")]
    #[case("Error (criu/sk-inet.c:206): inet: Connected TCP socket, consider using --tcp-established option.", None, "unsupported-resource")]
    #[case(
        "Error (criu/files-reg.c:1785): Can't lookup mount=22 for fd=-3 path=/init",
        None,
        "unsupported-resource"
    )]
    #[case(
        "Error (criu/mount.c:2520): mnt: Can't mount at ./dev/pts: Device or resource busy",
        Some("EBUSY"),
        "resource-busy"
    )]
    #[case(
        "Error (criu/cr-restore.c:2100): Can't attach to 55: Operation not permitted",
        Some("EPERM"),
        "permission"
    )]
    #[case(
        "Error (criu/mount-v2.c:1027): mnt-v2: Failed to move_mount: Invalid argument",
        Some("EINVAL"),
        "invalid-argument"
    )]
    #[case(
        "the workload's check failed: counter.dat holds 7 but memory says 9",
        None,
        "workload-state"
    )]
    #[case("the workload exited with status 1; its verdict: tick 3: the next waiting datagram is 0 bytes, expected 5", None, "workload-state")]
    #[case(
        "Error (criu/namespaces.c:463): Can't dump nested ipc namespace for 451",
        None,
        "unsupported-resource"
    )]
    #[case(
        "Error (criu/sk-queue.c:144): skqueue: Control messages in queue, not supported",
        None,
        "unsupported-resource"
    )]
    #[case(
        "../src/lxc/criu.c: exec_criu: 402 No such file or directory - Failed getting freezer path",
        Some("ENOENT"),
        "tool-limitation"
    )]
    #[case(
        "Error (criu/sk-queue.c:144): skqueue: Control messages in queue, not supported",
        None,
        "unsupported-resource"
    )]
    #[case("Error (criu/files-reg.c:1042): Can't create link remap for /tmp/crtest/unlinked/keep.dat. Use link-remap option.", None, "unsupported-resource")]
    #[case(
        "Error (criu/cr-dump.c:1618): A session leader of 397(1) is outside of its pid namespace",
        None,
        "unsupported-resource"
    )]
    #[case("Error (criu/util.c:642): exited, status=127", None, "missing-tool")]
    #[case(
        "Error (criu/files-ext.c:94): Can't dump file 6 of that type [600] (anon anon_inode:[pidfd])",
        None,
        "tool-limitation"
    )]
    #[case(
        "Error (criu/sk-netlink.c:77): netlink: The socket has data to read",
        None,
        "tool-limitation"
    )]
    #[case(
        "Error (criu/sockets.c:435): sockets: Sockets (family 1 proto 0) are not collected",
        None,
        "missing-kernel-feature"
    )]
    #[case(
        "Error (criu/sockets.c:209): sockets: Diag module missing (-2)",
        Some("ENOENT"),
        "missing-kernel-feature"
    )]
    #[case("nothing recognisable", None, "unknown")]
    fn classes_of_real_lines(#[case] line: &str, #[case] errno: Option<&str>, #[case] want: &str) {
        assert_eq!(classify([line], errno), want);
    }

    #[test]
    fn errno_alone_decides_when_no_line_does() {
        assert_eq!(classify(["whatever"], Some("EBUSY")), "resource-busy");
        assert_eq!(classify(["whatever"], Some("EINVAL")), "invalid-argument");
    }
}
