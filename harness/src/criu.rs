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

/// The first meaningful `Error (file:line): message` line of a criu log, from `Error` on.
pub fn first_error_line(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| l.find("Error (").map(|i| l[i..].trim_end()))
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
}
