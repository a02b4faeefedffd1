//! The criu processes that run beside a dump or a restore: a `page-server` taking a dump's
//! pages, a `lazy-pages` daemon serving a lazy restore's pages (and the `page-server
//! --lazy-pages` feeding it in the remote mode). Each is started with `--status-fd`, as
//! zdtm.py starts them, so that the dump or restore begins only once it listens; each must
//! then exit 0 on its own when its work is done.

use crate::diagnose::{criu_log, errno};
use crate::exec::context::StepError;
use crate::model::outcome::Outcome;
use crate::model::scenario::StepKind;
use crtest_vm::command;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A loopback port for the next daemon: a fresh one each time, so that a socket an earlier
/// daemon left in TIME_WAIT never refuses the next.
pub fn next_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    27000 + NEXT.fetch_add(1, Ordering::Relaxed) % 2000
}

/// A running criu daemon.
pub struct Daemon {
    child: Child,
    /// `criu page-server ...` as run.
    pub command: String,
    log: PathBuf,
    step: StepKind,
}

impl Daemon {
    /// Starts `criu ARGS --status-fd N` and waits (at most `limit`) until it says it is
    /// ready; its stdout and stderr go to `out`.
    pub fn start(
        criu: &str,
        args: &[String],
        log: &Path,
        out: &Path,
        step: StepKind,
        limit: Duration,
    ) -> Result<Daemon, StepError> {
        Daemon::start_with_env(criu, args, &[], log, out, step, limit)
    }

    /// [`Daemon::start`] with `env` added to criu's environment.
    pub fn start_with_env(
        criu: &str,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
        out: &Path,
        step: StepKind,
        limit: Duration,
    ) -> Result<Daemon, StepError> {
        let command = command::command_line(criu, args);
        let fail = |message: String| {
            let mut e = StepError::fail(step, message).with_outcome(Outcome::Error);
            e.failure.command = Some(command.clone());
            e
        };
        let (rd, wr) = nix::unistd::pipe().map_err(|e| fail(format!("pipe: {e}")))?;
        let _ = fcntl(rd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        let file = std::fs::File::create(out)
            .map_err(|e| fail(format!("cannot create {}: {e}", out.display())))?;
        let file2 = file
            .try_clone()
            .map_err(|e| fail(format!("cannot dup {}: {e}", out.display())))?;
        let child = Command::new(criu)
            .args(args)
            .args(["--status-fd".to_string(), wr.as_raw_fd().to_string()])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2)
            .spawn()
            .map_err(|e| {
                let mut err = fail(format!("cannot start {command}: {e}"));
                err.failure.errno = e.raw_os_error().and_then(errno::name);
                err
            })?;
        drop(wr);
        let mut d = Daemon {
            child,
            command,
            log: log.to_path_buf(),
            step,
        };
        let mut status = std::fs::File::from(rd);
        let end = Instant::now() + limit;
        loop {
            let mut byte = [1u8];
            match status.read(&mut byte) {
                Ok(1) if byte[0] == 0 => return Ok(d),
                // Closed without the byte, or a failure byte: it did not start.
                Ok(_) => return Err(d.failed("did not start")),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(d.failed(&format!("its status fd: {e}"))),
            }
            if Instant::now() >= end {
                return Err(d.failed(&format!("did not say it was ready in {limit:?}")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (at most `limit`) for it to finish its work and exit; a non-zero exit or a
    /// daemon still running then fails the step, with its log's first error.
    /// Returns when it ended (to within a few milliseconds).
    pub fn finish(mut self, limit: Duration) -> Result<Instant, StepError> {
        match command::wait_child(&mut self.child, limit) {
            Some(s) if s.success() => Ok(Instant::now()),
            Some(s) => Err(self.failed(&format!("exited with {s}"))),
            None => Err(self.failed(&format!("was still running {limit:?} after"))),
        }
    }

    /// The failure of this daemon (killed if it still runs), with its log's first error.
    fn failed(&mut self, what: &str) -> StepError {
        let _ = self.child.kill();
        let status = command::wait_child(&mut self.child, Duration::from_secs(5));
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let first = criu_log::first_error_line(&text);
        let action = self
            .command
            .split(' ')
            .nth(1)
            .unwrap_or("daemon")
            .to_string();
        let mut e = StepError::fail(self.step, format!("criu {action} {what}"));
        e.failure.command = Some(self.command.clone());
        e.failure.exit_status = status.and_then(|s| s.code());
        e.failure.errno = criu_log::errno_of(&text, first.as_deref());
        e.failure.first_error_line = first;
        crate::model::expectation::diagnose(
            &mut e.failure,
            &crate::diagnose::class::error_lines(&text),
        );
        e
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Never left behind: a failed step drops its daemons.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
