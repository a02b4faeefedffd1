//! Workloads with a real program inside: an interactive `bash` driven through a
//! pseudo-terminal, the cr-tests `bashckpt` idea. Scenario tag `shell`.
//!
//! `bashpty`: the workload opens a pty and starts `/bin/bash --norc --noprofile
//! --noediting -i` on its slave, in a session of its own with the slave as controlling
//! terminal (echo off). Through the master it defines a variable `X`, a function `f` and
//! changes into `shell-dir`. Every tick it sends one command,
//! `echo "R<n>R:$X:$PWD:$$:$(f z)"`, and requires the answer line with the right counter,
//! variable, directory, pid and function output within [`ANSWER_LIMIT`]; progress is the
//! number of answers. On SIGTERM it sends one more such command, then sets a new variable
//! and changes directory back and forth, checks both, and ends the shell with `exit 7`,
//! which must be its exit status. Only bash builtins are used: the guest needs no other
//! program.

use crate::args::{Args, Opt};
use crate::check::show_bytes;
use crate::protocol::{errno_text, Workload};
use crate::tty;
use crate::{steady, sys};
use nix::libc;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "bashpty";
/// The shell.
pub const BASH: &str = "/bin/bash";
/// How long the shell has to answer a command.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(5);
/// Command-line options.
pub const OPTIONS: &[Opt] = &[Opt {
    default: 100,
    ..steady::TICK_MS
}];

struct Shell {
    master: OwnedFd,
    pid: Pid,
    slave: PathBuf,
    /// Output read but not consumed yet.
    pending: Vec<u8>,
    counter: u64,
    var: String,
    dir: PathBuf,
}

/// Child side: a session of its own, the slave as controlling terminal and stdio, echo
/// off, then bash. Only async-signal-safe calls between fork and exec.
fn exec_bash(slave: &CString, argv: &[CString], envp: &[CString]) -> ! {
    // SAFETY: we are the single-threaded child of a fork; every call here is
    // async-signal-safe, and on any failure the child leaves with _exit.
    unsafe {
        libc::setsid();
        let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
        if fd < 0 {
            libc::_exit(120);
        }
        libc::ioctl(fd, libc::TIOCSCTTY, 0);
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) == 0 {
            t.c_lflag &= !(libc::ECHO | libc::ECHONL);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        for target in 0..3 {
            libc::dup2(fd, target);
        }
        if fd > 2 {
            libc::close(fd);
        }
        let mut args: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        args.push(std::ptr::null());
        let mut env: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
        env.push(std::ptr::null());
        libc::execve(args[0], args.as_ptr(), env.as_ptr());
        libc::_exit(127)
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("no NUL in our strings")
}

impl Shell {
    fn start(dir: &Path) -> Result<Shell, String> {
        if !Path::new(BASH).exists() {
            return Err(format!("{BASH} is not there"));
        }
        let m = tty::open_master()?;
        let shell_dir = dir.join("shell-dir");
        std::fs::create_dir_all(&shell_dir)
            .map_err(|e| format!("mkdir {}: {e}", shell_dir.display()))?;
        let slave = cstring(&m.slave.display().to_string());
        let argv: Vec<CString> = [
            BASH,
            "--norc",
            "--noprofile",
            "--noediting",
            "+o",
            "history",
            "-i",
        ]
        .iter()
        .map(|a| cstring(a))
        .collect();
        let envp: Vec<CString> = [
            "PATH=/usr/bin:/bin".to_string(),
            "TERM=dumb".to_string(),
            "LC_ALL=C".to_string(),
            "PS1=".to_string(),
            "PS2=".to_string(),
            format!("HOME={}", dir.display()),
        ]
        .iter()
        .map(|s| cstring(s))
        .collect();
        crate::ipc::set_nonblocking(&m.fd)?;
        // SAFETY: the workload is single-threaded; the child only runs exec_bash.
        let pid = match unsafe { fork() } {
            Ok(ForkResult::Child) => exec_bash(&slave, &argv, &envp),
            Ok(ForkResult::Parent { child }) => child,
            Err(e) => return Err(format!("fork: {e}")),
        };
        let mut sh = Shell {
            master: m.fd,
            pid,
            slave: m.slave,
            pending: Vec::new(),
            counter: 0,
            var: format!("crtest-{}", std::process::id()),
            dir: shell_dir.clone(),
        };
        let setup = format!(
            "X={}; f() {{ echo \"F$1F\"; }}; cd '{}'",
            sh.var,
            shell_dir.display()
        );
        sh.send(&setup)?;
        sh.probe()
            .map_err(|e| format!("the shell did not come up: {e}"))?;
        Ok(sh)
    }

    fn who(&self) -> String {
        format!("bash (pid {}) on {}", self.pid, self.slave.display())
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        sys::write_all(self.master.as_raw_fd(), &bytes)
            .map_err(|e| format!("{}: writing `{line}`: {}", self.who(), errno_text(&e)))
    }

    /// Why the shell cannot answer, if it is gone.
    fn gone(&self) -> Option<String> {
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => Some(format!("it exited with status {c}")),
            Ok(WaitStatus::Signaled(_, s, _)) => Some(format!("it was killed by {s:?}")),
            _ => None,
        }
    }

    /// Waits for a line starting with `marker` and returns the rest of it.
    fn answer(&mut self, marker: &str, asked: &str) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            if let Some(at) = text.find(marker) {
                if let Some(end) = text[at..].find('\n') {
                    let line = text[at + marker.len()..at + end]
                        .trim_end_matches('\r')
                        .to_string();
                    self.pending.drain(..(at + end + 1).min(self.pending.len()));
                    return Ok(line);
                }
            }
            if start.elapsed() > ANSWER_LIMIT {
                let why = self.gone().map_or(String::new(), |g| format!(" ({g})"));
                return Err(format!(
                    "{}: no answer to `{asked}` within {} s{why}; it wrote {}",
                    self.who(),
                    ANSWER_LIMIT.as_secs(),
                    show_bytes(&self.pending)
                ));
            }
            let _ = sys::poll_one(&self.master, libc::POLLIN, 50);
            let mut buf = [0u8; 4096];
            match sys::read(self.master.as_raw_fd(), &mut buf) {
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    let why = self.gone().map_or(String::new(), |g| format!(" ({g})"));
                    return Err(format!(
                        "{}: reading the answer to `{asked}`: {}{why}",
                        self.who(),
                        errno_text(&e)
                    ));
                }
            }
            if self.pending.len() > 1 << 20 {
                self.pending.drain(..self.pending.len() / 2);
            }
        }
    }

    /// One round: the counter, the variable, the directory, the pid and the function.
    fn probe(&mut self) -> Result<(), String> {
        self.counter += 1;
        let n = 1000 + self.counter;
        let cmd = format!("echo \"R$(({n}))R:$X:$PWD:$$:$(f z)\"");
        self.send(&cmd)?;
        let got = self.answer(&format!("R{n}R:"), &cmd)?;
        let want = format!("{}:{}:{}:FzF", self.var, self.dir.display(), self.pid);
        if got != want {
            return Err(format!(
                "{}: `{cmd}` answered `{got}`, expected `{want}` (X:PWD:$$:f)",
                self.who()
            ));
        }
        Ok(())
    }

    fn exercise(&mut self) -> Result<(), String> {
        self.send("Y=after-restore; cd ..; cd shell-dir")?;
        self.send("echo \"Q$((1))Q:$Y:$PWD\"")?;
        let got = self.answer("Q1Q:", "echo $Y:$PWD")?;
        let want = format!("after-restore:{}", self.dir.display());
        if got != want {
            return Err(format!(
                "{}: after setting Y and cd .. / cd back, it said `{got}`, expected `{want}`",
                self.who()
            ));
        }
        self.send("exit 7")?;
        let start = Instant::now();
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, 7)) => return Ok(()),
                Ok(WaitStatus::StillAlive) if start.elapsed() < ANSWER_LIMIT => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                other => return Err(format!("{}: after `exit 7`: {other:?}", self.who())),
            }
        }
    }

    fn kill(&self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut sh = Shell::start(wl.dir()).unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "bash={} on {} (master fd {}), X={}, cwd {}",
        sh.pid,
        sh.slave.display(),
        sh.master.as_raw_fd(),
        sh.var,
        sh.dir.display()
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| sh.probe())
        .and_then(|_| sh.probe())
        .and_then(|_| sh.exercise());
    match outcome {
        Ok(()) => Ok(format!(
            "bash answered {} commands through the pty with its variable, function, directory and pid intact; new state took, and `exit 7` ended it with status 7",
            sh.counter
        )),
        Err(e) => {
            sh.kill();
            Err(e)
        }
    }
}
