//! The `criu` command: argument builders and reading its output and logs.

use std::path::Path;

/// `criu dump` of the tree rooted at `pid` into `images`, logging to `log` at level 4,
/// with the scenario's `extra` options.
pub fn dump_args(pid: i32, images: &Path, log: &Path, extra: &[String]) -> Vec<String> {
    let mut v = vec![
        "dump".into(),
        "--tree".into(),
        pid.to_string(),
        "--images-dir".into(),
        images.display().to_string(),
        "--log-file".into(),
        log.display().to_string(),
        "-v4".into(),
    ];
    v.extend_from_slice(extra);
    v
}

/// `criu restore` from `images`, detached, writing the restored root's pid to `pidfile`.
pub fn restore_args(images: &Path, log: &Path, pidfile: &Path, extra: &[String]) -> Vec<String> {
    let mut v = vec![
        "restore".into(),
        "--images-dir".into(),
        images.display().to_string(),
        "--log-file".into(),
        log.display().to_string(),
        "-v4".into(),
        "--restore-detached".into(),
        "--pidfile".into(),
        pidfile.display().to_string(),
    ];
    v.extend_from_slice(extra);
    v
}

/// The version from `criu --version` output (`Version: 3.17.1`).
pub fn parse_version(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Version:")
            .map(|v| v.trim().to_string())
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

/// The first meaningful `Error (file:line): message` line of a criu log, from `Error` on,
/// or the `Warn (...)` line before it that names its cause.
pub fn first_error_line(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| {
            if let Some(i) = l.find("Error (") {
                return Some(&l[i..]);
            }
            let i = l.find("Warn  (")?;
            CAUSES.iter().any(|c| l.contains(c)).then(|| &l[i..])
        })
        .map(str::trim_end)
        .find(|l| !NOISE.iter().any(|n| l.starts_with(n)))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_for_dump_and_restore() {
        let d = dump_args(42, Path::new("/w/img"), Path::new("/w/dump.log"), &[]);
        assert_eq!(
            d.join(" "),
            "dump --tree 42 --images-dir /w/img --log-file /w/dump.log -v4"
        );
        let r = restore_args(
            Path::new("/w/img"),
            Path::new("/w/restore.log"),
            Path::new("/w/pid"),
            &["--tcp-established".into()],
        );
        assert_eq!(
            r.join(" "),
            "restore --images-dir /w/img --log-file /w/restore.log -v4 --restore-detached --pidfile /w/pid --tcp-established"
        );
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
