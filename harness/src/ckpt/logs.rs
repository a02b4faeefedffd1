//! The criu logs that go with an image directory: the errors they report, and the criu
//! version that wrote them (the images themselves do not record it).
//!
//! criu writes `dump.log` / `restore.log` wherever `--log-file` says; in a crtest results
//! folder `scenarios/<name>/images-N/` sits beside `dump-N.log` and `restore-N.log`. So the
//! logs are the `*.log` files of the directory and of its parent; when the directory is
//! named `images-N`, parent logs numbered for another attempt (`dump-M.log`) are left out.

use crate::ckpt::dir::ImageError;
use crate::diagnose::criu_log;
use crate::diagnose::errno;
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// A line of a log that reports an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLine {
    /// The log, as a path relative to the image directory (`../restore-1.log`).
    pub log: String,
    /// 1-based.
    pub line: usize,
    pub text: String,
    /// The errno the line carries, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
}

/// The criu version a log was written by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedVersion {
    pub log: String,
    pub version: String,
}

/// The errors the logs of an image directory report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogErrors {
    /// The logs read, relative to the image directory.
    pub logs: Vec<String>,
    /// Every line containing `Error (`, in log order.
    pub errors: Vec<ErrorLine>,
    /// The first error that is a cause, not a follow-on (see [`criu_log::first_error_line`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_errno: Option<String>,
}

/// What the logs of an image directory say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogScan {
    pub errors: LogErrors,
    /// The criu version each log names (`Version: 3.17.1` near its top).
    pub versions: Vec<LoggedVersion>,
}

/// The attempt number of `images-N`, `dump-N.log` or `restore-N.log`.
fn attempt(stem: &str) -> Option<&str> {
    let (_, n) = stem.rsplit_once('-')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

fn logs_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut logs: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "log"))
        .filter(|p| p.file_stem().and_then(|s| s.to_str()).is_some_and(&keep))
        .collect();
    logs.sort();
    logs
}

/// The logs that belong to the image directory `dir`: its own, then its parent's.
pub fn find_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs = logs_in(dir, |_| true);
    let own = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.starts_with("images"))
        .and_then(attempt);
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    // A directory given as `.` or `x/..` has no meaningful parent listing of its own.
    if parent != dir {
        logs.extend(logs_in(&parent, |stem| match (own, attempt(stem)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }));
    }
    logs
}

/// How `log` is shown: relative to the image directory `dir`.
fn shown(dir: &Path, log: &Path) -> String {
    let name = log.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_else(|| log.display().to_string());
    if log.parent() == Some(dir) {
        name
    } else {
        format!("../{name}")
    }
}

/// The criu version in a log line such as `(00.000447) Version: 3.17.1 (gitid 0)`.
fn version_in(line: &str) -> Option<String> {
    let rest = line.trim_start();
    let rest = match rest.strip_prefix('(') {
        Some(r) => r.split_once(')').map_or(r, |(_, after)| after),
        None => rest,
    };
    let v = criu_log::parse_version(rest)?;
    v.split_whitespace().next().map(str::to_string)
}

/// Scans the text of one log.
pub fn scan_text(shown_as: &str, text: &str, into: &mut LogScan) {
    let found = &mut into.errors;
    found.logs.push(shown_as.to_string());
    let mut version = None;
    for (i, line) in text.lines().enumerate() {
        if version.is_none() && i < 50 {
            version = version_in(line);
        }
        if line.contains("Error (") {
            found.errors.push(ErrorLine {
                log: shown_as.to_string(),
                line: i + 1,
                text: line.trim_end().to_string(),
                errno: errno::find(line),
            });
        }
    }
    if found.first_error.is_none() {
        if let Some(first) = criu_log::first_error_line(text) {
            found.first_errno = errno::find(&first);
            found.first_error = Some(first);
        }
    }
    if let Some(version) = version {
        into.versions.push(LoggedVersion {
            log: shown_as.to_string(),
            version,
        });
    }
}

/// Reads and scans every log of the image directory `dir`.
pub fn scan(dir: &Path) -> Result<LogScan, ImageError> {
    let mut out = LogScan::default();
    for log in find_logs(dir) {
        let bytes = fs::read(&log).map_err(|source| ImageError::Io {
            path: log.clone(),
            source,
        })?;
        scan_text(
            &shown(dir, &log),
            &String::from_utf8_lossy(&bytes),
            &mut out,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            version_in("(00.000447) Version: 3.17.1 (gitid 0)").as_deref(),
            Some("3.17.1")
        );
        assert_eq!(version_in("Version: 4.1").as_deref(), Some("4.1"));
        assert_eq!(version_in("(00.1) Running on x"), None);
    }

    #[test]
    fn attempts() {
        assert_eq!(attempt("images-2"), Some("2"));
        assert_eq!(attempt("restore-12"), Some("12"));
        assert_eq!(attempt("dump"), None);
        assert_eq!(attempt("dump-x"), None);
    }

    #[test]
    fn error_lines_with_errno() {
        let log = "(00.000546) Version: 3.17.1 (gitid 0)\n\
                   (00.003900) Forking task with 156 pid (flags 0x0)\n\
                   (00.004000) Error (criu/cr-restore.c:1469): Can't fork for 156: File exists\n\
                   (00.004100) Error (criu/cr-restore.c:1480): 1 killed by signal 9\n";
        let mut s = LogScan::default();
        scan_text("../restore-1.log", log, &mut s);
        let e = &s.errors;
        assert_eq!(e.logs, ["../restore-1.log"]);
        assert_eq!(e.errors.len(), 2);
        assert_eq!(e.errors[0].line, 3);
        assert_eq!(e.errors[0].errno.as_deref(), Some("EEXIST"));
        assert_eq!(e.errors[1].errno, None);
        assert_eq!(
            e.first_error.as_deref(),
            Some("Error (criu/cr-restore.c:1469): Can't fork for 156: File exists")
        );
        assert_eq!(e.first_errno.as_deref(), Some("EEXIST"));
        assert_eq!(s.versions[0].version, "3.17.1");
    }
}
