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
use std::time::{Duration, Instant};

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
    /// The program started, but waiting for it failed.
    #[error("waiting for `{command}`: {source}")]
    Wait {
        /// The full command line.
        command: String,
        /// What `wait` reported.
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
            CommandError::Spawn { command, .. }
            | CommandError::Wait { command, .. }
            | CommandError::Failed { command, .. } => command,
        }
    }

    /// The OS error behind a command that could not be started or waited for.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            CommandError::Spawn { source, .. } | CommandError::Wait { source, .. } => {
                source.raw_os_error()
            }
            CommandError::Failed { .. } => None,
        }
    }

    /// The stderr tail when the command ran and failed, else `""`.
    pub fn stderr_tail(&self) -> &str {
        match self {
            CommandError::Spawn { .. } | CommandError::Wait { .. } => "",
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
        self.base().stdout_capture().stderr_capture().unchecked()
    }

    /// Program, arguments, environment, directory, stdin from `/dev/null`; the status and
    /// the outputs left for the caller to direct (duct's inner redirections win
    /// over outer ones, so they must not be set here).
    fn base(&self) -> duct::Expression {
        self.plain().stdin_null()
    }

    /// [`Cmd::base`] with the caller's stdin (a pipe's right side).
    fn plain(&self) -> duct::Expression {
        let mut e = duct::cmd(&self.program, &self.args);
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
        checked(line, self.expression().run())
    }

    /// Logs `self | next` and runs it: this command's stdout is `next`'s stdin, both
    /// stderrs are captured together. Fails when either side fails (the right side's status
    /// first, as a shell's `pipefail` would say it), with the pipeline as the command line.
    pub fn run_piped(&self, next: &Cmd) -> Result<Output, CommandError> {
        let line = format!("{self} | {next}");
        log(&line);
        let e = self.base().pipe(next.plain());
        checked(line, e.stdout_capture().stderr_capture().unchecked().run())
    }

    /// Runs the command with a time limit, not logged: stdout and stderr interleaved into
    /// `out` (a daemon the command leaves behind must not hold a pipe of ours open) or, when
    /// `None`, captured. It is killed when `timeout` passes. A run that ended, whatever its
    /// status, is a [`Ran`]; only "could not start" and "could not wait" are errors.
    pub fn run_timed(&self, timeout: Duration, out: Option<&Path>) -> Result<Ran, CommandError> {
        let command = self.to_string();
        let start = Instant::now();
        let e = self.base().stderr_to_stdout().unchecked();
        let e = match out {
            Some(path) => e.stdout_path(path),
            None => e.stdout_capture(),
        };
        let handle = e.start().map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
        let wait_err = |source| CommandError::Wait {
            command: command.clone(),
            source,
        };
        let ended = wait_until(start + timeout, || handle.try_wait().map(|o| o.is_some()))
            .map_err(wait_err)?;
        let timed_out = ended.is_none();
        if timed_out {
            let _ = handle.kill();
        }
        let elapsed = start.elapsed();
        let output = handle.wait().map_err(wait_err)?;
        let text = match out {
            Some(path) => read_tail(path, OUTPUT_KEPT).unwrap_or_default(),
            None => output.stdout.clone(),
        };
        Ok(Ran {
            command,
            status: exit_code(output.status),
            output: String::from_utf8_lossy(&text).into_owned(),
            timed_out,
            elapsed,
        })
    }

    /// Like [`Cmd::run`], returning stdout as (lossy) UTF-8 text.
    pub fn read(&self) -> Result<String, CommandError> {
        self.run()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

/// The outcome of a run of the command line `line`: its output when it succeeded, else why
/// not.
fn checked(line: String, ran: io::Result<Output>) -> Result<Output, CommandError> {
    let out = ran.map_err(|source| CommandError::Spawn {
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

/// How much of a timed run's output file [`Ran::output`] keeps: its end.
pub const OUTPUT_KEPT: u64 = 1 << 20;

/// The last `max` bytes of a file.
fn read_tail(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A command that ran to its end or to its time limit ([`Cmd::run_timed`]).
#[derive(Debug, Clone)]
pub struct Ran {
    /// The command line.
    pub command: String,
    /// Exit code, or `128 + signal` when a signal ended it.
    pub status: i32,
    /// stdout and stderr, interleaved (of an output file, its last [`OUTPUT_KEPT`] bytes).
    pub output: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Ran {
    /// Exited 0 within its time.
    pub fn ok(&self) -> bool {
        self.status == 0 && !self.timed_out
    }

    /// The last `n` non-empty lines of the output.
    pub fn tail(&self, n: usize) -> Vec<String> {
        tail_lines(&self.output, n)
    }
}

/// Runs `program args` with a time limit, output captured (see [`Cmd::run_timed`]).
pub fn run(program: &str, args: &[String], timeout: Duration) -> Result<Ran, CommandError> {
    Cmd::new(program).args(args).run_timed(timeout, None)
}

/// An exit status as a number: the exit code, or `128 + signal`.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The one wait with a deadline: polls `done` until it says true (`Ok(Some(()))`) or the
/// deadline passes (`Ok(None)`); an error of `done` ends the wait. For any child process:
/// a duct handle, a `std::process::Child`, a QEMU.
pub fn wait_until(
    deadline: Instant,
    mut done: impl FnMut() -> io::Result<bool>,
) -> io::Result<Option<()>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(Some(()));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Waits for `child` until `limit` passes; kills and collects it then. Its status, when it
/// ended by itself.
pub fn wait_child(child: &mut std::process::Child, limit: Duration) -> Option<ExitStatus> {
    let mut status = None;
    let ended = wait_until(Instant::now() + limit, || {
        status = child.try_wait()?;
        Ok(status.is_some())
    });
    if !matches!(ended, Ok(Some(()))) {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
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
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
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
    fn pipes_fail_on_either_side() {
        let out = Cmd::new("echo")
            .arg("hi")
            .run_piped(&Cmd::new("cat"))
            .unwrap();
        assert_eq!(out.stdout, b"hi\n");
        let left = Cmd::new("sh").args(["-c", "echo left >&2; exit 3"]);
        let e = left.run_piped(&Cmd::new("cat")).unwrap_err();
        assert!(e.to_string().contains("exit 3' | cat` failed"), "{e}");
        assert!(e.stderr_tail().contains("left"), "{e}");
        let right = Cmd::new("sh").args(["-c", "cat; exit 4"]);
        let e = Cmd::new("true").run_piped(&right).unwrap_err();
        assert!(e.to_string().contains("exit status: 4"), "{e}");
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
    fn timed_runs_keep_status_output_and_time_limit() {
        let r = run(
            "sh",
            &["-c".into(), "echo out; echo err >&2; exit 3".into()],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 3);
        assert!(r.output.contains("out") && r.output.contains("err"));
        assert_eq!(r.command, "sh -c 'echo out; echo err >&2; exit 3'");
        let t = Instant::now();
        let r = run("sleep", &["5".into()], Duration::from_millis(100)).unwrap();
        assert!(r.timed_out && !r.ok() && t.elapsed() < Duration::from_secs(4));
        let e = run("/nonexistent/tool", &[], Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, CommandError::Spawn { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/tool"));
        assert_eq!(e.os_error(), Some(2));
    }

    #[test]
    fn timed_runs_write_to_a_file_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let r = Cmd::new("sh")
            .args(["-c", "echo hello; echo there >&2; kill -9 $$"])
            .dir(d.path())
            .run_timed(Duration::from_secs(10), Some(&out))
            .unwrap();
        assert_eq!(r.status, 128 + 9);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello\nthere\n");
        assert_eq!(r.tail(1), ["there"]);
    }

    #[test]
    fn waits_end_at_their_deadline() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let t = Instant::now();
        assert_eq!(wait_child(&mut child, Duration::from_millis(50)), None);
        assert!(t.elapsed() < Duration::from_secs(4));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        assert!(wait_child(&mut child, Duration::from_secs(10)).is_some_and(|s| s.success()));
        assert_eq!(
            wait_until(Instant::now(), || Ok(false)).unwrap(),
            None,
            "a passed deadline still asks once"
        );
    }

    #[test]
    fn tail_keeps_last_non_empty_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(
            command_line("criu", &["dump".into(), "a b".into(), "it's".into()]),
            "criu dump 'a b' 'it'\\''s'"
        );
    }

    #[test]
    fn read_returns_stdout() {
        assert_eq!(Cmd::new("echo").arg("hi").read().unwrap(), "hi\n");
    }
}
