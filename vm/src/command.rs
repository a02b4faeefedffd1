//! Running external tools: one small builder per invocation, the full command
//! line logged before it runs, the exit status checked here.
//!
//! Every tool the crate calls (apt, dpkg, depmod, mmdebstrap, mke2fs, xz, ...)
//! is described by a [`Cmd`], built by a small function next to the code that
//! needs it. [`Cmd::expression`] gives the `duct` expression; [`Cmd::run`]
//! logs `+ <command line>` through the [log hook](set_log_hook), runs it with
//! standard input from `/dev/null`, captures both outputs and turns a failure
//! into a [`CommandError`] that says whether the tool could not be started at
//! all or ran and failed (with its exit status and the tail of its stderr).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::sync::OnceLock;

/// How many trailing lines of stderr a [`CommandError::Failed`] keeps.
pub const STDERR_TAIL_LINES: usize = 20;

/// An external command: program, arguments, environment additions and
/// working directory. Displayed as a shell-quoted command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
}

/// Why an external command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started (not installed, not executable, ...).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The full command line.
        command: String,
        /// What `exec`/`spawn` reported.
        #[source]
        source: io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}){}", tail_suffix(stderr_tail))]
    Failed {
        /// The full command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last [`STDERR_TAIL_LINES`] lines of its stderr.
        stderr_tail: String,
    },
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{tail}")
    }
}

impl CommandError {
    /// The command line that failed.
    pub fn command(&self) -> &str {
        match self {
            CommandError::Spawn { command, .. } | CommandError::Failed { command, .. } => command,
        }
    }

    /// The stderr tail when the command ran and failed, else `""`.
    pub fn stderr_tail(&self) -> &str {
        match self {
            CommandError::Spawn { .. } => "",
            CommandError::Failed { stderr_tail, .. } => stderr_tail,
        }
    }
}

static LOG_HOOK: OnceLock<fn(&str)> = OnceLock::new();

fn default_log(line: &str) {
    eprintln!("+ {line}");
}

/// Replaces the default logger (`eprintln!("+ {cmd}")`) for command lines.
/// Only the first call has an effect; returns `false` when a hook was already
/// installed.
pub fn set_log_hook(hook: fn(&str)) -> bool {
    LOG_HOOK.set(hook).is_ok()
}

fn log(line: &str) {
    (LOG_HOOK.get().copied().unwrap_or(default_log))(line);
}

impl Cmd {
    /// A command running `program` with no arguments yet.
    pub fn new(program: impl Into<OsString>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
        }
    }

    /// A command for a system tool, found on `PATH` or in `/usr/sbin`,
    /// `/sbin` (which are not on a normal user's `PATH` on Debian). When it is
    /// nowhere, the bare name is kept so that running it reports
    /// [`CommandError::Spawn`].
    pub fn tool(name: &str) -> Self {
        Cmd::new(locate(name).map_or_else(|| OsString::from(name), PathBuf::into_os_string))
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the command in `dir`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The program.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments.
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// The working directory, when set.
    pub fn get_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The `duct` expression for this command: stdin from `/dev/null`, both
    /// outputs captured, status not checked (see [`Cmd::run`]).
    pub fn expression(&self) -> duct::Expression {
        let mut e = duct::cmd(&self.program, &self.args)
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        if let Some(d) = &self.dir {
            e = e.dir(d);
        }
        e
    }

    /// Logs the command line, runs it and checks its exit status.
    /// On success returns the captured output.
    pub fn run(&self) -> Result<Output, CommandError> {
        let line = self.to_string();
        log(&line);
        let out = self
            .expression()
            .run()
            .map_err(|source| CommandError::Spawn {
                command: line.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(CommandError::Failed {
                command: line,
                status: out.status,
                stderr_tail: tail(&String::from_utf8_lossy(&out.stderr), STDERR_TAIL_LINES),
            })
        }
    }

    /// Like [`Cmd::run`], returning stdout as (lossy) UTF-8 text.
    pub fn read(&self) -> Result<String, CommandError> {
        self.run()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

/// Directories searched for tools after `PATH`.
pub const SBIN_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The executable `name` on `PATH` or in [`SBIN_DIRS`].
pub fn locate(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The last `n` lines of `text`, trimmed of trailing whitespace.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Quotes one word for a POSIX shell, leaving plain words alone.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.dir {
            write!(f, "(cd {} && ", shell_quote(&d.to_string_lossy()))?;
        }
        for (k, v) in &self.env {
            write!(
                f,
                "{}={} ",
                k.to_string_lossy(),
                shell_quote(&v.to_string_lossy())
            )?;
        }
        write!(f, "{}", shell_quote(&self.program.to_string_lossy()))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(&a.to_string_lossy()))?;
        }
        if self.dir.is_some() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("plain", "plain")]
    #[case("path-exclude=/usr/share/doc/*", "'path-exclude=/usr/share/doc/*'")]
    #[case("it's", r"'it'\''s'")]
    #[case("", "''")]
    #[case("a b", "'a b'")]
    fn quoting(#[case] word: &str, #[case] quoted: &str) {
        assert_eq!(shell_quote(word), quoted);
    }

    #[test]
    fn display_is_a_shell_line() {
        let c = Cmd::new("apt-get")
            .args(["download", "linux-image-6.1.0-56-amd64=6.1.192-2"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .dir("/tmp/x y");
        assert_eq!(
            c.to_string(),
            "(cd '/tmp/x y' && DEBIAN_FRONTEND=noninteractive apt-get download \
             linux-image-6.1.0-56-amd64=6.1.192-2)"
        );
    }

    #[test]
    fn spawn_failure_is_not_a_run_failure() {
        let err = Cmd::new("/nonexistent/crtest-no-such-tool")
            .run()
            .unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }), "{err:?}");
        assert!(err.to_string().contains("could not start"));
    }

    #[test]
    fn run_failure_keeps_status_and_stderr_tail() {
        let err = Cmd::new("sh")
            .args([
                "-c",
                "for i in $(seq 1 30); do echo line$i >&2; done; exit 3",
            ])
            .run()
            .unwrap_err();
        match &err {
            CommandError::Failed {
                status,
                stderr_tail,
                ..
            } => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr_tail.lines().count(), STDERR_TAIL_LINES);
                assert!(stderr_tail.ends_with("line30"));
                assert!(!stderr_tail.contains("line10\n"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn locate_finds_sbin_tools() {
        assert!(locate("sh").is_some());
        assert!(locate("crtest-no-such-tool").is_none());
        assert_eq!(
            Cmd::tool("crtest-no-such-tool").program(),
            OsStr::new("crtest-no-such-tool")
        );
    }

    #[test]
    fn read_returns_stdout() {
        assert_eq!(Cmd::new("echo").arg("hi").read().unwrap(), "hi\n");
    }
}
