//! Running an external tool with a time limit, keeping what it said.
//!
//! "Could not start" ([`CommandError`]) is kept apart from "ran and failed" (a [`Ran`] whose
//! status is not 0): the first is a missing tool, the second is the tool's verdict.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
#[error("cannot start `{command}`: {source}")]
pub struct CommandError {
    pub command: String,
    pub source: std::io::Error,
}

/// A command that ran.
#[derive(Debug, Clone)]
pub struct Ran {
    pub command: String,
    /// Exit code, or `128 + signal` when a signal ended it.
    pub status: i32,
    /// stdout and stderr, interleaved.
    pub output: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status == 0 && !self.timed_out
    }

    /// The last `n` lines of the output.
    pub fn tail(&self, n: usize) -> Vec<String> {
        tail_lines(&self.output, n)
    }
}

/// The last `n` non-empty lines of a text.
pub fn tail_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// A command line as a person would type it.
pub fn command_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(crtest_vm::command::shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args` with stdin from /dev/null; kills it after `timeout`.
pub fn run(program: &str, args: &[String], timeout: Duration) -> Result<Ran, CommandError> {
    let command = command_line(program, args);
    let start = Instant::now();
    let handle = duct::cmd(program, args)
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .start()
        .map_err(|source| CommandError {
            command: command.clone(),
            source,
        })?;
    let deadline = start + timeout;
    let mut timed_out = false;
    loop {
        match handle.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = handle.kill();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(CommandError { command, source }),
        }
    }
    let elapsed = start.elapsed();
    let output = handle.wait();
    let (status, text) = match output {
        Ok(out) => (
            out.status
                .code()
                .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        Err(e) => (-1, e.to_string()),
    };
    Ok(Ran {
        command,
        status,
        output: text,
        timed_out,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            command_line("criu", &["dump".into(), "a b".into(), "it's".into()]),
            "criu dump 'a b' 'it'\\''s'"
        );
    }

    #[test]
    fn status_output_and_timeout() {
        let r = run(
            "sh",
            &["-c".into(), "echo out; echo err >&2; exit 3".into()],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 3);
        assert!(r.output.contains("out") && r.output.contains("err"));
        let r = run("sleep", &["5".into()], Duration::from_millis(100)).unwrap();
        assert!(r.timed_out && !r.ok());
        let e = run("/nonexistent/tool", &[], Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/tool"));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n", 2), ["b", "c"]);
    }
}
