//! `crtest ckptinfo DIR`: what a CRIU image directory holds, read natively (the modern
//! `ckptinfo -ev statefile`): the image format, the criu version that wrote it, the process
//! tree with each command name and state, the dump/restore statistics; with `-e` the errors
//! of the criu logs beside it, with `-v` every file with its image type and size.

use crate::ckpt::dir::{self, Checkpoint, FileInfo, ImageError, Task};
use crate::ckpt::entries::{DumpStats, RestoreStats};
use crate::ckpt::logs::{self, LogErrors, LogScan, LoggedVersion};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What to read of an image directory, and how to show it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The CRIU image directory.
    pub dir: PathBuf,
    /// Only the pids of the checkpointed processes, in tree order.
    pub pids: bool,
    /// Also the errors of the criu logs in the directory and beside it, with their errno.
    pub errors: bool,
    /// Also every file of the directory with its image type and size.
    pub verbose: bool,
    /// As JSON.
    pub json: bool,
}

/// Everything ckptinfo found; sections not asked for are `None`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dir: PathBuf,
    /// With `-p`, only the pids, in tree order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<Vec<u32>>,
    /// The checkpoint (not with `-p`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// The criu version each log names (not with `-p`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criu_versions: Option<Vec<LoggedVersion>>,
    /// The errors of the logs (with `-e`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_errors: Option<LogErrors>,
    /// Every file of the directory (with `-v`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileInfo>>,
}

impl Report {
    fn new(dir: &Path) -> Report {
        Report {
            dir: dir.to_path_buf(),
            pids: None,
            checkpoint: None,
            criu_versions: None,
            log_errors: None,
            files: None,
        }
    }

    /// Whether no section is filled in.
    pub fn is_empty(&self) -> bool {
        self.pids.is_none()
            && self.checkpoint.is_none()
            && self.log_errors.is_none()
            && self.files.is_none()
    }

    /// The files of the listing whose framing is broken.
    pub fn broken_files(&self) -> Vec<&FileInfo> {
        let files = self.files.iter().flatten();
        files.filter(|f| f.problem.is_some()).collect()
    }
}

/// Why a report could not be made whole, and what could be gathered anyway (with `-e`,
/// the log errors, which matter most when the images are broken).
#[derive(Debug)]
pub struct Failure {
    pub partial: Report,
    pub error: ImageError,
}

/// Reads what `args` asks for from the image directory.
pub fn collect(args: &Options) -> Result<Report, Box<Failure>> {
    let dir = &args.dir;
    let mut report = Report::new(dir);
    let fail = |partial, error| Box::new(Failure { partial, error });
    if !dir.is_dir() {
        let error = match std::fs::metadata(dir) {
            Err(source) => ImageError::Io {
                path: dir.clone(),
                source,
            },
            Ok(_) => ImageError::NotADir { path: dir.clone() },
        };
        return Err(fail(report, error));
    }
    // Without -e the logs only name the criu version: one that cannot be read is skipped.
    let scan = match logs::scan(dir) {
        Ok(scan) => scan,
        Err(error) if args.errors => return Err(fail(report, error)),
        Err(_) => LogScan::default(),
    };
    if args.errors {
        report.log_errors = Some(scan.errors);
    }
    match Checkpoint::load(dir) {
        Ok(c) if args.pids => report.pids = Some(c.tasks.iter().map(|t| t.pid).collect()),
        Ok(c) => {
            report.checkpoint = Some(c);
            report.criu_versions = Some(scan.versions);
        }
        Err(error) => return Err(fail(report, error)),
    }
    if args.verbose {
        match dir::list_files(dir) {
            Ok(files) => report.files = Some(files),
            Err(error) => return Err(fail(report, error)),
        }
    }
    Ok(report)
}

/// The report as `args` asks: JSON or text.
pub fn output(args: &Options, report: &Report) -> String {
    if args.json {
        let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
        s.push('\n');
        s
    } else {
        render(report)
    }
}

/// The report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if let Some(pids) = &report.pids {
        for pid in pids {
            let _ = writeln!(out, "{pid}");
        }
    }
    if let Some(c) = &report.checkpoint {
        let versions = report.criu_versions.as_deref().unwrap_or_default();
        summary(&mut out, &report.dir, c, versions);
    }
    if let Some(e) = &report.log_errors {
        errors(&mut out, e);
    }
    if let Some(files) = &report.files {
        listing(&mut out, files);
    }
    out
}

fn section_gap(out: &mut String) {
    if !out.is_empty() {
        out.push('\n');
    }
}

fn summary(out: &mut String, dir: &Path, c: &Checkpoint, versions: &[LoggedVersion]) {
    let inv = &c.inventory;
    let arch = c.tasks.first().map(|t| t.arch.as_str()).unwrap_or("?");
    let _ = writeln!(out, "image directory  {}", dir.display());
    let _ = writeln!(
        out,
        "image format     {} (img_version {}), {arch}",
        inv.format_name(),
        inv.img_version
    );
    let _ = writeln!(out, "criu             {}", criu_version(versions));
    if let Some(lsm) = inv.lsmtype {
        let _ = writeln!(out, "lsm              {}", lsm.name());
    }
    if let Some(lock) = inv.network_lock_name() {
        let _ = writeln!(out, "network lock     {lock}");
    }
    if inv.tcp_close == Some(true) {
        let _ = writeln!(out, "tcp              closed at dump (--tcp-close)");
    }
    let threads = c.thread_count();
    let plural = if threads == 1 { "" } else { "s" };
    let _ = writeln!(
        out,
        "processes        {} ({threads} thread{plural})",
        c.tasks.len()
    );
    out.push('\n');
    tree(out, c);
    if let Some(s) = &c.dump_stats {
        out.push('\n');
        dump_stats(out, s);
    }
    if let Some(s) = &c.restore_stats {
        out.push('\n');
        restore_stats(out, s);
    }
}

/// `3.17.1 (from ../dump-1.log, ../restore-1.log)`, or each version with its logs when
/// the logs disagree (a restore by another criu than the dump's).
fn criu_version(versions: &[LoggedVersion]) -> String {
    if versions.is_empty() {
        return "unknown: the images do not record it and no criu log names it".into();
    }
    let mut distinct: Vec<&str> = Vec::new();
    for v in versions {
        if !distinct.contains(&v.version.as_str()) {
            distinct.push(&v.version);
        }
    }
    let parts: Vec<String> = distinct
        .iter()
        .map(|d| {
            let from: Vec<&str> = versions
                .iter()
                .filter(|v| v.version == *d)
                .map(|v| v.log.as_str())
                .collect();
            format!("{d} (from {})", from.join(", "))
        })
        .collect();
    parts.join("; ")
}

fn state(t: &Task) -> String {
    match t.state.as_str() {
        "dead" | "zombie" => format!("{} ({})", t.state, t.exit_code),
        _ => t.state.clone(),
    }
}

fn tree(out: &mut String, c: &Checkpoint) {
    let _ = writeln!(
        out,
        "{:>7} {:>7} {:>7} {:>7} {:>7}  {:<8} COMMAND",
        "PID", "PPID", "PGID", "SID", "THREADS", "STATE"
    );
    for root in c.roots() {
        if let Some(t) = c.tasks.iter().find(|t| t.pid == root) {
            tree_row(out, c, t, "", None);
        }
    }
}

/// One row, then its children; `last` is None for a root, else whether it is the last child.
fn tree_row(out: &mut String, c: &Checkpoint, t: &Task, prefix: &str, last: Option<bool>) {
    let branch = match last {
        None => "",
        Some(false) => "├─ ",
        Some(true) => "└─ ",
    };
    let _ = writeln!(
        out,
        "{:>7} {:>7} {:>7} {:>7} {:>7}  {:<8} {prefix}{branch}{}",
        t.pid,
        t.ppid,
        t.pgid,
        t.sid,
        t.threads.len().max(1),
        state(t),
        t.comm
    );
    let child_prefix = match last {
        None => prefix.to_string(),
        Some(false) => format!("{prefix}│  "),
        Some(true) => format!("{prefix}   "),
    };
    let children: Vec<&Task> = c.children(t.pid).filter(|ch| ch.pid != t.pid).collect();
    for (i, child) in children.iter().enumerate() {
        tree_row(out, c, child, &child_prefix, Some(i + 1 == children.len()));
    }
}

/// Microseconds as milliseconds: `19.297 ms`.
fn micros(us: u64) -> String {
    format!("{}.{:03} ms", us / 1000, us % 1000)
}

fn stat_rows(out: &mut String, rows: &[(&str, String)]) {
    for (name, value) in rows {
        let _ = writeln!(out, "  {name:<24}{value:>14}");
    }
}

fn dump_stats(out: &mut String, s: &DumpStats) {
    let _ = writeln!(out, "dump statistics (stats-dump)");
    let mut rows = vec![
        ("freezing time", micros(s.freezing_time.into())),
        ("frozen time", micros(s.frozen_time.into())),
        ("memory dump time", micros(s.memdump_time.into())),
        ("memory write time", micros(s.memwrite_time.into())),
        ("pages scanned", s.pages_scanned.to_string()),
        ("pages skipped (parent)", s.pages_skipped_parent.to_string()),
        ("pages written", s.pages_written.to_string()),
        ("pages lazy", s.pages_lazy.to_string()),
    ];
    let optional = [
        (
            "irmap resolve time",
            s.irmap_resolve.map(|v| micros(v.into())),
        ),
        ("page pipes", s.page_pipes.map(|v| v.to_string())),
        ("page pipe buffers", s.page_pipe_bufs.map(|v| v.to_string())),
        (
            "shmem pages scanned",
            s.shpages_scanned.map(|v| v.to_string()),
        ),
        (
            "shmem pages skipped",
            s.shpages_skipped_parent.map(|v| v.to_string()),
        ),
        (
            "shmem pages written",
            s.shpages_written.map(|v| v.to_string()),
        ),
    ];
    rows.extend(optional.into_iter().filter_map(|(n, v)| Some((n, v?))));
    stat_rows(out, &rows);
}

fn restore_stats(out: &mut String, s: &RestoreStats) {
    let _ = writeln!(out, "restore statistics (stats-restore)");
    let mut rows = vec![
        ("forking time", micros(s.forking_time.into())),
        ("restore time", micros(s.restore_time.into())),
        ("pages compared", s.pages_compared.to_string()),
        ("pages skipped (COW)", s.pages_skipped_cow.to_string()),
    ];
    if let Some(p) = s.pages_restored {
        rows.push(("pages restored", p.to_string()));
    }
    stat_rows(out, &rows);
}

fn errors(out: &mut String, logs: &LogErrors) {
    section_gap(out);
    if logs.logs.is_empty() {
        let _ = writeln!(
            out,
            "errors in logs: no *.log file in the directory or beside it"
        );
        return;
    }
    let read = logs.logs.join(", ");
    if logs.errors.is_empty() {
        let _ = writeln!(out, "errors in logs: none ({read})");
        return;
    }
    let _ = writeln!(out, "errors in logs ({read}):");
    for e in &logs.errors {
        let errno = e
            .errno
            .as_deref()
            .map(|n| format!("  [{n}]"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {}:{}: {}{errno}", e.log, e.line, e.text.trim());
    }
    if let Some(first) = &logs.first_error {
        let errno = logs
            .first_errno
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let _ = writeln!(out, "first error: {first}{errno}");
    }
}

fn listing(out: &mut String, files: &[FileInfo]) {
    section_gap(out);
    let total: u64 = files.iter().map(|f| f.size).sum();
    let _ = writeln!(out, "files ({}, {total} bytes):", files.len());
    let width = files.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in files {
        let problem = f
            .problem
            .as_deref()
            .map(|p| format!("; BROKEN: {p}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<width$} {:>10}  {}{problem}",
            f.name,
            f.size,
            f.kind.describe()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(log: &str, version: &str) -> LoggedVersion {
        LoggedVersion {
            log: log.into(),
            version: version.into(),
        }
    }

    #[test]
    fn criu_versions_agreeing_and_not() {
        let same = [
            logged("../dump-1.log", "3.17.1"),
            logged("../restore-1.log", "3.17.1"),
        ];
        assert_eq!(
            criu_version(&same),
            "3.17.1 (from ../dump-1.log, ../restore-1.log)"
        );
        let mixed = [
            logged("../dump-1.log", "3.17.1"),
            logged("../restore-1.log", "4.1"),
        ];
        assert_eq!(
            criu_version(&mixed),
            "3.17.1 (from ../dump-1.log); 4.1 (from ../restore-1.log)"
        );
        assert!(criu_version(&[]).starts_with("unknown"));
    }

    #[test]
    fn times_are_microseconds() {
        assert_eq!(micros(19297), "19.297 ms");
        assert_eq!(micros(7), "0.007 ms");
    }
}
