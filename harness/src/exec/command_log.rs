//! A backend's command log in the working directory (`lxc-commands.log`,
//! `oci-commands.log`): each tool's command line, its status and time, its output, and what
//! the harness saw between them (`## ...` lines). Appending never fails a step.

use std::io::Write;
use std::path::Path;

/// Appends a command, what became of it (`status 0, 812 ms`, `started`) and its output.
pub(crate) fn command(log: &Path, line: &str, said: &str, output: &str) {
    append(log, &format!("$ {line}\n# {said}\n{}", output.trim_end()));
}

/// `status S, MS ms` of a command that ran, or `otherwise` for one that did not finish.
pub(crate) fn status_text(status: Option<(i32, u64)>, otherwise: &str) -> String {
    match status {
        Some((s, ms)) => format!("status {s}, {ms} ms"),
        None => otherwise.to_string(),
    }
}

/// Appends what the harness saw.
pub(crate) fn note(log: &Path, text: &str) {
    append(log, &format!("## {text}"));
}

fn append(log: &Path, text: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "{text}");
    }
}
