//! What criu says: its version line and the first error line of its log that names the cause.

/// The version from `criu --version` output (`Version: 3.17.1`).
pub fn parse_version(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Version:")
            .map(|v| v.trim().to_string())
    })
}

/// The errno of a failed criu step, by name: the one its first error line carries (by name,
/// else by number); else the first `Error` line's that carries one; else what the tools criu
/// ran said on stderr (lines without criu's timestamp); else the nearest line before the first error line that ends
/// in a return code (`collect procedure family AF_UNIX ...: -2` before `Sockets ... are not
/// collected`).
pub fn errno_of(log: &str, first_error: Option<&str>) -> Option<String> {
    use crate::diagnose::errno;
    if first_error.is_some_and(|f| QUIET_CAUSES.iter().any(|c| f.contains(c))) {
        // The errors after a quiet cause are its follow-ons: their errno is not its.
        return first_error.and_then(errno::find);
    }
    first_error
        .and_then(errno::find)
        .or_else(|| first_error.and_then(errno::find_numeric))
        .or_else(|| errno::find_in(log.lines().filter(|l| l.contains("Error"))))
        .or_else(|| errno::find_in(log.lines().filter(|l| !l.starts_with('('))))
        .or_else(|| {
            let first = first_error?;
            let before: Vec<&str> = log.lines().take_while(|l| !l.contains(first)).collect();
            before.into_iter().rev().find_map(errno::find_numeric)
        })
}

/// Log lines that say "Error" but are not the cause of a failure.
const NOISE: &[&str] = &[
    "Error (criu/cr-restore.c:1480): 1 killed by signal 9", // follow-on of an earlier error
];

/// Warnings that name the cause of the errors after them. compel only warns when its
/// `PTRACE_SEIZE` fails (a zombie cannot be told apart by the errno); the error that follows,
/// `Unable to detach from N: No such process`, is a follow-on.
const CAUSES: &[&str] = &["Unable to interrupt task"];

/// Causes criu logs below the warning level, before the errors they lead to (the page server
/// of a dump that cannot be reached: the errors after it are of the tree's unfreezing).
const QUIET_CAUSES: &[&str] = &["Can't connect to server"];

/// The first meaningful `Error (file:line): message` line of a criu log, from `Error` on,
/// or the `Warn (...)` line before it that names its cause. When the only error is criu's
/// closing `Dumping FAILED.`, the debug line that returned the code it failed on (criu 4.1.1
/// on kernel 7.1 and later dumping a net namespace: `Sockects collect procedure family AF_INET
/// proto IPPROTO_UDPLITE: -2`, and no `Error` line for it).
pub fn first_error_line(log: &str) -> Option<String> {
    let first = meaningful_error_line(log)?;
    if !first.ends_with("FAILED.") {
        return Some(first);
    }
    Some(silent_cause(log).unwrap_or(first))
}

/// The first `collect procedure ...: -N` line (criu logs a failed sock_diag request at debug
/// level only), from the message on.
fn silent_cause(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim_end)
        .find(|l| {
            l.contains("collect procedure family")
                && crate::diagnose::errno::find_numeric(l).is_some()
        })
        .map(|l| {
            let message = l.find(") ").map_or(l, |i| &l[i + 2..]);
            message.to_string()
        })
}

fn meaningful_error_line(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| {
            if let Some(i) = l.find("Error (") {
                return Some(&l[i..]);
            }
            if QUIET_CAUSES.iter().any(|c| l.contains(c)) {
                // `(00.375924) Can't connect to server 10.77.0.2:27100`: from the message on.
                return Some(l.find(") ").map_or(l, |i| &l[i + 2..]));
            }
            let i = l.find("Warn  (")?;
            CAUSES.iter().any(|c| l.contains(c)).then(|| &l[i..])
        })
        .map(str::trim_end)
        .find(|l| !NOISE.iter().any(|n| l.starts_with(n)))
        .map(str::to_string)
}

/// The pages a `criu lazy-pages` daemon copied in, summed over its processes' `UFFD
/// transferred pages: (copied/total)` lines.
pub fn lazy_pages_copied(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split("UFFD transferred pages: (").nth(1))
        .filter_map(|rest| rest.split('/').next()?.trim().parse::<u64>().ok())
        .sum()
}

/// What getopt says when criu refuses its command line (it writes no log then): the line
/// naming the option (`criu: unrecognized option '--no-ghost-fiemap'`), not the usage text
/// or the `Try -h|--help for more info` hint printed after it.
pub fn usage_error_line(output: &str) -> Option<String> {
    const GETOPT: &[&str] = &[
        ": unrecognized option",
        ": invalid option",
        ": option requires an argument",
        "doesn't allow an argument",
        "is ambiguous",
    ];
    output
        .lines()
        .map(str::trim)
        .find(|l| GETOPT.iter().any(|g| l.contains(g)))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_pages_are_summed_over_the_tree() {
        let log = "(00.1) uffd: 20002-1: UFFD transferred pages: (4081/4081)\n(00.2) uffd: 20003-2: UFFD transferred pages: (12/20)\nUFFD transferred pages: (x/1)\n";
        assert_eq!(lazy_pages_copied(log), 4093);
        assert_eq!(lazy_pages_copied(""), 0);
    }

    #[test]
    fn an_unreachable_page_server_is_the_cause_not_the_unfreezing() {
        let log = "(00.375924) Connecting to server 10.77.0.2:27100\n(03.463455) Can't connect to server 10.77.0.2:27100\n(03.464603) Error (compel/src/lib/infect.c:356): Unable to detach from 20001: No such process\n(03.465812) Error (criu/cr-dump.c:2053): Dumping FAILED.\n";
        assert_eq!(
            first_error_line(log).as_deref(),
            Some("Can't connect to server 10.77.0.2:27100")
        );
        let first = first_error_line(log);
        assert_eq!(errno_of(log, first.as_deref()), None);
    }

    #[test]
    fn usage_error_names_the_option() {
        let out = "criu: unrecognized option '--no-ghost-fiemap'\n\nUsage:\n  criu dump|pre-dump -t PID [<options>]\n\nTry -h|--help for more info\n";
        assert_eq!(
            usage_error_line(out).as_deref(),
            Some("criu: unrecognized option '--no-ghost-fiemap'")
        );
        assert_eq!(
            usage_error_line("/usr/sbin/criu: option requires an argument -- 'D'\n").as_deref(),
            Some("/usr/sbin/criu: option requires an argument -- 'D'")
        );
        assert_eq!(usage_error_line("Try -h|--help for more info\n"), None);
    }

    #[test]
    fn version_line() {
        assert_eq!(
            parse_version("Version: 3.17.1\n").as_deref(),
            Some("3.17.1")
        );
        assert_eq!(
            parse_version("Version: 4.1\nGitID: v4.1\n").as_deref(),
            Some("4.1")
        );
        assert_eq!(parse_version("nothing"), None);
    }

    #[test]
    fn first_error_of_a_real_log() {
        // From a criu 3.17.1 restore on a guest without `lo` up.
        let log = "(00.001200) Running network-lock scripts\n\
(00.004000) Error (criu/libnetlink.c:84): ERROR -101 reported by netlink\n\
(00.004100) Error (criu/net.c:3000): Unable to connect a socket: Network is unreachable\n";
        assert_eq!(
            first_error_line(log).as_deref(),
            Some("Error (criu/libnetlink.c:84): ERROR -101 reported by netlink")
        );
        assert_eq!(first_error_line("(0.1) all fine\n"), None);
    }

    #[test]
    fn an_errno_from_the_line_before_the_error() {
        // criu 3.17.1 dumping UNIX sockets with unix_diag unloaded (repro-missing-module).
        let log = "(00.281029) sockets: Sockects collect procedure family AF_UNIX proto IPPROTO_IP: -2\n\
(00.353049) Warn  (compel/arch/x86/src/lib/infect.c:352): Will restore 1453 with interrupted system call\n\
(00.390727) Error (criu/sockets.c:435): sockets: Sockets (family 1 proto 0) are not collected\n\
(00.390890) Error (criu/sk-unix.c:351): unix: Unix socket 37268 not found\n\
(00.391287) Error (criu/cr-dump.c:1635): Dump files (pid: 1453) failed with -1\n";
        let first = first_error_line(log);
        assert_eq!(
            first.as_deref(),
            Some(
                "Error (criu/sockets.c:435): sockets: Sockets (family 1 proto 0) are not collected"
            )
        );
        assert_eq!(errno_of(log, first.as_deref()).as_deref(), Some("ENOENT"));
        // A line after the error, or a -1, names nothing.
        let log = "(0.1) step: -1\n(0.2) Error (criu/x.c:1): broke\n(0.3) later: -2\n";
        assert_eq!(errno_of(log, first_error_line(log).as_deref()), None);
    }

    #[test]
    fn a_dump_that_fails_without_an_error_line_names_the_request_that_failed() {
        // criu 4.1.1 dumping zdtm's netns_lock_iptables on 7.2.13 (UDP-Lite is gone).
        let log = "(00.742376) inet: \tCollected: ino   0x9c1e family AF_INET    type SOCK_STREAM    port     8880 state TCP_LISTEN       src_addr 127.0.0.1\n\
(00.742700) sockets: Sockects collect procedure family AF_INET proto IPPROTO_UDP: OK\n\
(00.742910) sockets: Sockects collect procedure family AF_INET proto IPPROTO_UDPLITE: -2\n\
(00.744552) sockets: Sockects collect procedure family AF_INET6 proto IPPROTO_UDPLITE: -2\n\
(00.746026) net: Unlock network\n\
(01.156155) Error (criu/cr-dump.c:2111): Dumping FAILED.\n";
        let first = first_error_line(log);
        assert_eq!(
            first.as_deref(),
            Some("sockets: Sockects collect procedure family AF_INET proto IPPROTO_UDPLITE: -2")
        );
        assert_eq!(errno_of(log, first.as_deref()).as_deref(), Some("ENOENT"));
        // With nothing to name, the summary stays.
        let log = "(0.1) fine\n(0.2) Error (criu/cr-dump.c:2111): Dumping FAILED.\n";
        assert_eq!(
            first_error_line(log).as_deref(),
            Some("Error (criu/cr-dump.c:2111): Dumping FAILED.")
        );
    }

    #[test]
    fn a_warning_that_names_the_cause_comes_first() {
        // From criu 3.17.1 dumping a process another tracer holds (repro-traced).
        let log = "(00.031635) Detected cgroup V1 freezer\n\
(00.032100) Warn  (compel/src/lib/infect.c:127): Unable to interrupt task: 125 (Operation not permitted)\n\
(00.032525) Unlock network\n\
(00.033182) Error (compel/src/lib/infect.c:356): Unable to detach from 125: No such process\n\
(00.033534) Error (criu/cr-dump.c:2053): Dumping FAILED.\n";
        assert_eq!(
            first_error_line(log).as_deref(),
            Some("Warn  (compel/src/lib/infect.c:127): Unable to interrupt task: 125 (Operation not permitted)")
        );
        // Other warnings are not causes.
        let log = "(0.1) Warn  (criu/x.c:1): something odd\n(0.2) Error (criu/y.c:2): real\n";
        assert_eq!(
            first_error_line(log).as_deref(),
            Some("Error (criu/y.c:2): real")
        );
    }
}
