//! `vncdesk`: the linux-cr wiki's VNC desktop. Scenario tag `desktop`.
//!
//! The workload starts the programs of the wiki's `xstartup`: TigerVNC's `Xvnc` on display
//! `:N` with its RFB server on the UNIX socket [`RFB_SOCKET`] of the working directory (no
//! network needed: the harness's VNC client connects there), `xsetroot -solid SteelBlue`,
//! `twm`, and an `xterm` running `vi notes.txt`. It is ready once the X server answers
//! `xsetroot` and `twm` and `xterm` are started. Every tick it checks that its three
//! programs still run; on SIGTERM it checks that once more, ends them, and passes. What the
//! desktop shows is the harness's to check, through the VNC protocol (screenshots before
//! the checkpoint and after the restore, and keys typed into `vi`).
//!
//! The programs' output goes to `xvnc.log`, `twm.log` and `xterm.log` in the working
//! directory, which the harness keeps.

use crate::args::{Args, Opt};
use crate::protocol::{errno_text, Workload};
use crate::steady;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "vncdesk";
/// The RFB server's socket, in the working directory.
pub const RFB_SOCKET: &str = "vnc.sock";
/// The file `vi` edits, in the working directory.
pub const NOTES: &str = "notes.txt";
/// How long the X server has to come up (a TCG guest is slow).
pub const X_START_LIMIT: Duration = Duration::from_secs(60);

const DISPLAY: Opt = Opt {
    name: "display",
    metavar: "N",
    default: 1,
    min: 0,
    max: 99,
    help: "the X display number",
};
const WIDTH: Opt = Opt {
    name: "width",
    metavar: "PX",
    default: 640,
    min: 64,
    max: 4096,
    help: "screen width",
};
const HEIGHT: Opt = Opt {
    name: "height",
    metavar: "PX",
    default: 480,
    min: 64,
    max: 4096,
    help: "screen height",
};

/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    Opt {
        default: 100,
        ..steady::TICK_MS
    },
    DISPLAY,
    WIDTH,
    HEIGHT,
];

/// twm's configuration: place windows where they ask to be (no interactive placement), and
/// only the `fixed` font (xfonts-base has no `variable`, twm's default).
const TWMRC: &str = "RandomPlacement\nUsePPosition \"on\"\nNoGrabServer\n\
TitleFont \"fixed\"\nResizeFont \"fixed\"\nMenuFont \"fixed\"\nIconFont \"fixed\"\n\
IconManagerFont \"fixed\"\n";

/// One program of the desktop.
struct Program {
    name: &'static str,
    /// Its log is `LOG.log` in the working directory.
    log: &'static str,
    child: Child,
}

impl Program {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// `None` while it runs; how it ended otherwise.
    fn ended(&self) -> Option<String> {
        match waitpid(self.pid(), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(WaitStatus::Exited(_, code)) => Some(format!("exited with status {code}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("was killed by {sig}")),
            Ok(other) => Some(format!("changed state: {other:?}")),
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }
}

struct Desktop {
    dir: PathBuf,
    display: String,
    programs: Vec<Program>,
}

impl Desktop {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.dir)
            .env("DISPLAY", &self.display)
            .env("HOME", &self.dir)
            // The C locale: twm and xterm then need only the fonts of xfonts-base.
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        c
    }

    fn log(&self, name: &str) -> Result<(Stdio, Stdio), String> {
        let path = self.dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&path)
            .map_err(|e| format!("create {}: {}", path.display(), errno_text(&e)))?;
        let g = f
            .try_clone()
            .map_err(|e| format!("dup {}: {}", path.display(), errno_text(&e)))?;
        Ok((Stdio::from(f), Stdio::from(g)))
    }

    fn spawn(
        &mut self,
        name: &'static str,
        log: &'static str,
        mut c: Command,
    ) -> Result<(), String> {
        let (out, err) = self.log(log)?;
        let child = c
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {}", errno_text(&e)))?;
        self.programs.push(Program { name, log, child });
        Ok(())
    }

    /// The last lines of a program's log, for a failure message.
    fn log_tail(&self, log: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(format!("{log}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join(" / ")
    }

    fn new(dir: &Path, args: &Args) -> Desktop {
        Desktop {
            dir: dir.to_path_buf(),
            display: format!(":{}", args.get(DISPLAY.name)),
            programs: Vec::new(),
        }
    }

    /// Starts the programs in turn; on failure the ones started are left for `stop`.
    fn start(&mut self, args: &Args) -> Result<(), String> {
        let dir = self.dir.clone();
        let socket = dir.join(RFB_SOCKET);
        let mut xvnc = self.command("Xvnc");
        xvnc.args([
            self.display.as_str(),
            "-geometry",
            &format!("{}x{}", args.get(WIDTH.name), args.get(HEIGHT.name)),
            "-depth",
            "24",
            "-SecurityTypes",
            "None",
            "-rfbunixpath",
        ])
        .arg(&socket)
        .args(["-rfbport", "-1", "-nolisten", "tcp", "-desktop", "cr-tests"]);
        self.spawn("Xvnc", "xvnc", xvnc)?;
        self.wait_for_x(&socket)?;
        let twmrc = dir.join("twmrc");
        std::fs::write(&twmrc, TWMRC)
            .map_err(|e| format!("write {}: {}", twmrc.display(), errno_text(&e)))?;
        let mut twm = self.command("twm");
        twm.arg("-f").arg(&twmrc);
        self.spawn("twm", "twm", twm)?;
        let mut xterm = self.command("xterm");
        xterm.args([
            "-geometry",
            "80x24+20+20",
            "-title",
            "notes",
            "-e",
            "vi",
            NOTES,
        ]);
        self.spawn("xterm", "xterm", xterm)
    }

    /// Waits until the RFB socket exists and the X server paints the root window.
    fn wait_for_x(&self, socket: &Path) -> Result<(), String> {
        let end = Instant::now() + X_START_LIMIT;
        loop {
            if let Some(how) = self.programs[0].ended() {
                return Err(format!(
                    "Xvnc {how} before it was ready: {}",
                    self.log_tail("xvnc")
                ));
            }
            if socket.exists() {
                let status = self
                    .command("xsetroot")
                    .args(["-solid", "SteelBlue"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map_err(|e| format!("cannot run xsetroot: {}", errno_text(&e)))?;
                if status.success() {
                    return Ok(());
                }
            }
            if Instant::now() > end {
                return Err(format!(
                    "Xvnc did not answer within {} s: {}",
                    X_START_LIMIT.as_secs(),
                    self.log_tail("xvnc")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every program still runs.
    fn check(&self) -> Result<(), String> {
        for p in &self.programs {
            if let Some(how) = p.ended() {
                return Err(format!(
                    "{} (pid {}) {how}: {}",
                    p.name,
                    p.pid(),
                    self.log_tail(p.log)
                ));
            }
        }
        Ok(())
    }

    /// Ends the programs: SIGTERM, then SIGKILL after a grace period; reaps them.
    fn stop(&mut self) {
        for p in self.programs.iter().rev() {
            let _ = kill(p.pid(), Signal::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(3);
        for p in &mut self.programs {
            while Instant::now() < end {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    fn pids(&self) -> String {
        self.programs
            .iter()
            .map(|p| format!("{}={}", p.name, p.pid()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut desk = Desktop::new(wl.dir(), args);
    if let Err(e) = desk.start(args) {
        desk.stop();
        wl.setup_failed(&e);
    }
    let detail = format!(
        "{} on {}, RFB on {}, vi editing {}",
        desk.pids(),
        desk.display,
        RFB_SOCKET,
        NOTES
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| desk.check())
        .and_then(|ticks| desk.check().map(|()| ticks));
    let summary = desk.pids();
    desk.stop();
    outcome.map(|ticks| format!("{summary} ran through {ticks} ticks and were ended"))
}
