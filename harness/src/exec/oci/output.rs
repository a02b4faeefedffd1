//! What the OCI tools print, read: podman's `--print-stats` figures, the container's state
//! (`podman inspect`, `runc state`), the criu log a failure names, the first error line, and
//! whether a crun was built with CRIU. Bounded: only the first [`MAX_OUTPUT`] bytes are read.

use crate::model::outcome::{DumpMeasure, RestoreMeasure};
use serde::Deserialize;
use std::path::PathBuf;

/// How much of a tool's output the readers look at.
pub const MAX_OUTPUT: usize = 256 * 1024;

fn bounded(text: &str) -> &str {
    let mut end = text.len().min(MAX_OUTPUT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A container's state as its tool names it, and its init's host pid (0 when it runs none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `running`, `exited`, `created`, `paused` (podman); `running`, `stopped`,
    /// `created`, `paused` (runc, crun).
    pub status: String,
    pub pid: i32,
}

impl State {
    pub fn running(&self) -> bool {
        self.status == "running" && self.pid > 0
    }
}

/// `podman inspect --format '{{.State.Status}} {{.State.Pid}}'`.
pub fn podman_state(output: &str) -> Option<State> {
    let line = bounded(output).lines().find(|l| !l.trim().is_empty())?;
    let (status, pid) = line.trim().split_once(' ')?;
    Some(State {
        status: status.to_string(),
        pid: pid.trim().parse().ok()?,
    })
}

/// `runc state` / `crun state`: a JSON object with `status` and `pid`.
pub fn runtime_state(output: &str) -> Option<State> {
    #[derive(Deserialize)]
    struct Raw {
        status: String,
        #[serde(default)]
        pid: i32,
    }
    let v: Raw = first_json(output)?;
    Some(State {
        status: v.status,
        pid: v.pid,
    })
}

/// The first JSON object of `output` (it may follow or precede other lines).
fn first_json<T: serde::de::DeserializeOwned>(output: &str) -> Option<T> {
    let text = bounded(output);
    let start = text.find('{')?;
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<T>()
        .next()?
        .ok()
}

/// podman's `--print-stats`: its own time, the runtime's, and criu's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// podman's whole checkpoint or restore, in microseconds.
    pub engine_us: Option<u64>,
    /// The runtime's part (`runc checkpoint`), in microseconds.
    pub runtime_us: Option<u64>,
    pub dump: Option<DumpMeasure>,
    pub restore: Option<RestoreMeasure>,
}

#[derive(Deserialize, Default)]
struct RawStats {
    podman_checkpoint_duration: Option<u64>,
    podman_restore_duration: Option<u64>,
    #[serde(default)]
    container_statistics: Option<Vec<RawContainer>>,
}

#[derive(Deserialize, Default)]
struct RawContainer {
    runtime_checkpoint_duration: Option<u64>,
    runtime_restore_duration: Option<u64>,
    criu_statistics: Option<RawCriu>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCriu {
    freezing_time: Option<u64>,
    frozen_time: u64,
    memdump_time: u64,
    memwrite_time: u64,
    pages_scanned: u64,
    pages_skipped_parent: u64,
    pages_written: u64,
    pages_lazy: u64,
    forking_time: Option<u64>,
    restore_time: u64,
    pages_compared: u64,
    pages_skipped_cow: u64,
    pages_restored: Option<u64>,
}

/// The figures of `podman container checkpoint|restore --print-stats`; `None` when the
/// output holds none.
pub fn podman_stats(output: &str) -> Option<Stats> {
    let raw: RawStats = first_json(output)?;
    let c = raw
        .container_statistics
        .and_then(|v| v.into_iter().next())
        .unwrap_or_default();
    let criu = c.criu_statistics;
    Some(Stats {
        engine_us: raw
            .podman_checkpoint_duration
            .or(raw.podman_restore_duration),
        runtime_us: c.runtime_checkpoint_duration.or(c.runtime_restore_duration),
        dump: criu
            .as_ref()
            .filter(|s| s.freezing_time.is_some())
            .map(|s| DumpMeasure {
                freezing_us: s.freezing_time.unwrap_or(0),
                frozen_us: s.frozen_time,
                memdump_us: s.memdump_time,
                memwrite_us: s.memwrite_time,
                pages_scanned: s.pages_scanned,
                pages_skipped_parent: s.pages_skipped_parent,
                pages_written: s.pages_written,
                pages_lazy: s.pages_lazy,
            }),
        restore: criu
            .as_ref()
            .filter(|s| s.forking_time.is_some())
            .map(|s| RestoreMeasure {
                forking_us: s.forking_time.unwrap_or(0),
                restore_us: s.restore_time,
                pages_compared: s.pages_compared,
                pages_skipped_cow: s.pages_skipped_cow,
                pages_restored: s.pages_restored,
            }),
    })
}

/// The criu log a failed checkpoint or restore names (`log file: PATH`, inside a quoted
/// message where the line break is the two characters `\n`).
pub fn criu_log_path(output: &str) -> Option<PathBuf> {
    let text = bounded(output);
    // runc: `log file: PATH`; crun: `Please check CRIU logfile PATH: <error>`.
    let at = ["log file: ", "CRIU logfile "]
        .iter()
        .find_map(|m| text.find(m).map(|i| i + m.len()))?;
    let path: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\\' | ':'))
        .take(4096)
        .collect();
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// The line that says what went wrong: podman's `Error: ...`, a logged
/// `level=error msg="..."` (its message), a runtime's own `... error ...` line.
pub fn first_error(output: &str) -> Option<String> {
    let lines: Vec<&str> = bounded(output).lines().map(str::trim).collect();
    let logged = |l: &&&str| l.contains("level=error") || l.contains("level=fatal");
    let message = |l: &str| -> String {
        match l.find("msg=\"") {
            Some(i) => {
                let rest = &l[i + 5..];
                let end = rest
                    .find("\\n")
                    .or_else(|| rest.rfind('"'))
                    .unwrap_or(rest.len());
                rest[..end].to_string()
            }
            None => l.to_string(),
        }
    };
    lines
        .iter()
        .find(|l| l.starts_with("Error: "))
        .map(|l| l.to_string())
        .or_else(|| lines.iter().find(logged).map(|l| message(l)))
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.to_ascii_lowercase().contains("error") || l.starts_with("crun: "))
                .map(|l| l.to_string())
        })
        .map(|l| l.chars().take(500).collect())
}

/// Whether `crun --version` lists CRIU among the features it was built with.
pub fn crun_has_criu(version_output: &str) -> bool {
    bounded(version_output)
        .split_whitespace()
        .any(|w| w == "+CRIU")
}

/// The first line of a tool's `--version` with its version number (`podman version 4.3.1`
/// -> `4.3.1`, `runc version 1.1.5+ds1` -> `1.1.5+ds1`).
pub fn version_of(output: &str) -> Option<String> {
    let line = bounded(output).lines().next()?;
    let word = line
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))?;
    Some(word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKPOINT_STATS: &str = r#"{
    "podman_checkpoint_duration": 1622606,
    "container_statistics": [
        {
            "Id": "13189c82",
            "RawInput": "c1",
            "runtime_checkpoint_duration": 1313020,
            "criu_statistics": {
                "freezing_time": 7318,
                "frozen_time": 784610,
                "memdump_time": 16294,
                "memwrite_time": 2322,
                "pages_scanned": 1269,
                "pages_written": 58
            }
        }
    ]
}
"#;

    #[test]
    fn print_stats_of_a_checkpoint_and_a_restore() {
        let s = podman_stats(CHECKPOINT_STATS).unwrap();
        assert_eq!(s.engine_us, Some(1622606));
        assert_eq!(s.runtime_us, Some(1313020));
        let d = s.dump.unwrap();
        assert_eq!((d.frozen_us, d.pages_written), (784610, 58));
        assert!(s.restore.is_none());
        let r = podman_stats(
            "{\"podman_restore_duration\": 1293207, \"container_statistics\": [{\"runtime_restore_duration\": 1011107, \"criu_statistics\": {\"forking_time\": 2654, \"restore_time\": 714620, \"pages_restored\": 58}}]}\nc1\n",
        )
        .unwrap();
        assert_eq!(r.restore.unwrap().pages_restored, Some(58));
        // A failed checkpoint prints its figures without criu's.
        let f = podman_stats(
            "time=\"x\" level=error msg=\"container still running\"\n{\n \"podman_checkpoint_duration\": 1084563,\n \"container_statistics\": null\n}\nError: failed",
        )
        .unwrap();
        assert_eq!((f.engine_us, f.dump), (Some(1084563), None));
        assert_eq!(podman_stats("c1\n"), None);
    }

    #[test]
    fn a_failure_names_its_line_and_criu_log() {
        let out = "time=\"2026-12-07T16:59:30Z\" level=error msg=\"container still running\"\n\
            time=\"2026-12-07T16:59:30Z\" level=error msg=\"criu failed: type NOTIFY errno 0\\nlog file: /var/lib/containers/storage/overlay-containers/4f93/userdata/dump.log\"\n\
            Error: `/usr/bin/runc checkpoint --image-path /x 4f93` failed: exit status 1\n";
        assert_eq!(
            criu_log_path(out).unwrap(),
            PathBuf::from("/var/lib/containers/storage/overlay-containers/4f93/userdata/dump.log")
        );
        assert!(first_error(out)
            .unwrap()
            .starts_with("Error: `/usr/bin/runc checkpoint"));
        assert_eq!(
            first_error("time=\"t\" level=error msg=\"criu failed: type NOTIFY errno 0\\nlog file: /x/dump.log\"\n").unwrap(),
            "criu failed: type NOTIFY errno 0"
        );
        assert_eq!(criu_log_path("log file: relative.log"), None);
        assert_eq!(
            criu_log_path("CRIU checkpointing failed -52.  Please check CRIU logfile /var/lib/c/userdata/dump.log: Invalid exchange").unwrap(),
            PathBuf::from("/var/lib/c/userdata/dump.log")
        );
        assert_eq!(first_error("all good\n"), None);
    }

    #[test]
    fn states_versions_and_crun_features() {
        assert!(podman_state("running 1234\n").unwrap().running());
        assert!(!podman_state("exited 0\n").unwrap().running());
        assert_eq!(podman_state("garbage"), None);
        let s = runtime_state("{\n  \"ociVersion\": \"1.0.2\",\n  \"id\": \"c\",\n  \"pid\": 77,\n  \"status\": \"running\"\n}").unwrap();
        assert_eq!((s.status.as_str(), s.pid), ("running", 77));
        assert!(!crun_has_criu(
            "crun version 1.8.1\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL"
        ));
        assert!(crun_has_criu(
            "crun version 1.21\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +CRIU +YAJL"
        ));
        assert_eq!(version_of("podman version 4.3.1\n").unwrap(), "4.3.1");
        assert_eq!(
            version_of("runc version 1.1.5+ds1\ncommit: x").unwrap(),
            "1.1.5+ds1"
        );
        assert_eq!(version_of("conmon version 2.1.6\n").unwrap(), "2.1.6");
        assert_eq!(version_of(""), None);
    }
}
