//! Helper processes: children a workload forks to hold part of its state (the other end of
//! a shared file, a process group, a zombie's sibling...), each answering the workload's
//! requests over a socketpair, one line each way.
//!
//! A helper runs `serve(request)` for every request line and answers `ok TEXT` or
//! `err TEXT`. It exits (status 0) when asked `exit` or when the socket closes, so helpers
//! never outlive a workload that died. The protocol only uses a `SOCK_STREAM` socketpair,
//! which every C/R tool handles, so helpers add nothing exotic to what is checkpointed.

use crate::sys;
use nix::libc;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long the workload waits for a helper's answer.
pub const REPLY_LIMIT: Duration = Duration::from_secs(5);

/// The workload's handle on one helper.
#[derive(Debug)]
pub struct Helper {
    /// What the helper is, for messages (`reader child`, `pid 2 in the namespace`...).
    pub name: String,
    /// Its pid as seen by the workload.
    pub pid: Pid,
    sock: OwnedFd,
    pending: Vec<u8>,
}

/// Forks a helper named `name` that answers requests with `serve`.
///
/// Call only while the workload has a single thread.
pub fn spawn(
    name: &str,
    serve: impl FnMut(&str) -> Result<String, String>,
) -> Result<Helper, String> {
    let (mine, theirs) = sys::socketpair(libc::SOCK_STREAM | libc::SOCK_CLOEXEC)
        .map_err(|e| format!("socketpair for {name}: {}", crate::protocol::errno_text(&e)))?;
    let _ = std::io::stdout().flush();
    // SAFETY: the workload is single-threaded when it spawns helpers (documented above),
    // so the child may run any code.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(mine);
            serve_forever(theirs, serve)
        }
        Ok(ForkResult::Parent { child }) => Ok(Helper {
            name: name.to_string(),
            pid: child,
            sock: mine,
            pending: Vec::new(),
        }),
        Err(e) => Err(format!("fork of {name}: {e}")),
    }
}

fn serve_forever(sock: OwnedFd, mut serve: impl FnMut(&str) -> Result<String, String>) -> ! {
    let mut pending = Vec::new();
    loop {
        let Some(line) = read_line(&sock, &mut pending, None).ok().flatten() else {
            // SAFETY: leaving without running the workload's exit path (no result file).
            unsafe { libc::_exit(0) }
        };
        let (reply, bye) = if line == "exit" {
            ("ok bye".to_string(), true)
        } else {
            match serve(&line) {
                Ok(text) => (format!("ok {text}"), false),
                Err(text) => (format!("err {text}"), false),
            }
        };
        let mut bytes = reply.replace('\n', " ").into_bytes();
        bytes.push(b'\n');
        if sys::write_all(sock.as_raw_fd(), &bytes).is_err() || bye {
            // SAFETY: as above.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Reads one line (without the newline) from `sock`; `Ok(None)` at end of file; with a
/// `limit`, gives up with `TimedOut` after it.
fn read_line(
    sock: &OwnedFd,
    pending: &mut Vec<u8>,
    limit: Option<Duration>,
) -> std::io::Result<Option<String>> {
    let start = Instant::now();
    loop {
        if let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            return Ok(Some(
                String::from_utf8_lossy(&line[..line.len() - 1]).into_owned(),
            ));
        }
        if let Some(limit) = limit {
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            if sys::poll_one(sock, libc::POLLIN, left.as_millis().max(1) as i32)? == 0 {
                continue;
            }
        }
        let mut buf = [0u8; 4096];
        match sys::read(sock.as_raw_fd(), &mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Helper {
    /// `NAME (pid P)`.
    pub fn who(&self) -> String {
        format!("{} (pid {})", self.name, self.pid)
    }

    /// Sends `request` and returns the helper's `ok` text; its `err` text, a timeout or a
    /// closed socket become the error, naming the helper.
    pub fn ask(&mut self, request: &str) -> Result<String, String> {
        let mut line = request.as_bytes().to_vec();
        line.push(b'\n');
        sys::write_all(self.sock.as_raw_fd(), &line).map_err(|e| {
            if e.raw_os_error() == Some(libc::EPIPE) {
                self.closed(request)
            } else {
                format!(
                    "{}: cannot send `{request}`: {}",
                    self.who(),
                    crate::protocol::errno_text(&e)
                )
            }
        })?;
        match read_line(&self.sock, &mut self.pending, Some(REPLY_LIMIT)) {
            Ok(Some(reply)) => match reply.split_once(' ') {
                Some(("ok", text)) => Ok(text.to_string()),
                Some(("err", text)) => Err(format!("{}: {text}", self.who())),
                _ => Err(format!(
                    "{}: unexpected reply `{reply}` to `{request}`",
                    self.who()
                )),
            },
            Ok(None) => Err(self.closed(request)),
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => Err(self.closed(request)),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(format!(
                "{}: no answer to `{request}` within {} s",
                self.who(),
                REPLY_LIMIT.as_secs()
            )),
            Err(e) => Err(format!(
                "{}: reading the answer to `{request}`: {}",
                self.who(),
                crate::protocol::errno_text(&e)
            )),
        }
    }

    fn closed(&self, request: &str) -> String {
        format!(
            "{}: connection closed before answering `{request}` (it exited or was killed)",
            self.who()
        )
    }

    /// Asks the helper to exit and reaps it; an exit other than status 0 is an error.
    pub fn finish(mut self) -> Result<(), String> {
        let asked = self.ask("exit");
        let status = waitpid(self.pid, None);
        asked?;
        match status {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(other) => Err(format!("{}: ended with {other:?}", self.who())),
            Err(e) => Err(format!("{}: waitpid: {e}", self.who())),
        }
    }

    /// Kills and reaps the helper (cleanup after a failure).
    pub fn kill(self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_answers_fails_and_exits() {
        let mut counter = 0;
        let mut h = spawn("test helper", move |req| {
            counter += 1;
            match req {
                "count" => Ok(counter.to_string()),
                other => Err(format!("unknown request `{other}`")),
            }
        })
        .unwrap();
        assert_eq!(h.ask("count").unwrap(), "1");
        assert_eq!(h.ask("count").unwrap(), "2");
        let e = h.ask("bogus").unwrap_err();
        assert_eq!(
            e,
            format!("test helper (pid {}): unknown request `bogus`", h.pid)
        );
        h.finish().unwrap();
    }

    #[test]
    fn a_dead_helper_is_named() {
        let mut h = spawn("victim", |_| Ok(String::new())).unwrap();
        nix::sys::signal::kill(h.pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        let e = h.ask("ping").unwrap_err();
        assert!(e.contains("victim (pid"), "{e}");
        assert!(
            e.contains("connection closed before answering `ping`"),
            "{e}"
        );
        let _ = waitpid(h.pid, None);
    }
}
