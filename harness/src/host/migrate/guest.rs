//! One guest of a migration, as the host drives it: QEMU resumed from its cell's saved state
//! (of a guest with a network card) or booted, its card joined to the other guest's by a
//! pair of datagram sockets, its commands written on its control port and its answers read
//! from its events.

use crate::guest::agent::{GuestPlan, PLAN_FILE};
use crate::host::guest_share::EventReader;
use crate::host::vm_run::session::Boot;
use crate::host::vm_run::{Cell, GUEST_DIR};
use crate::model::event::Event;
use crate::model::migration::{MoveCommand, MoveReport, Role};
use crate::model::outcome::Outcome;
use crtest_vm::console::ConsoleWatch;
use crtest_vm::qemu::{self, Link, QemuProcess};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The socket of a guest's end of the link, in its sockets folder.
pub const LINK_SOCKET: &str = "link.sock";

/// Why a guest of a migration was lost, or never came up.
#[derive(Debug, Clone, PartialEq)]
pub struct Lost {
    pub outcome: Outcome,
    pub message: String,
    /// The console lines of that moment (a panic's, or the tail).
    pub lines: Vec<String>,
}

impl Lost {
    fn error(message: String) -> Lost {
        Lost {
            outcome: Outcome::Error,
            message,
            lines: Vec::new(),
        }
    }
}

/// A running guest of a migration.
pub struct MoveGuest {
    pub role: Role,
    /// Its folder of the run (`source/` or `target/`): console, events, QEMU's log, share.
    pub dir: PathBuf,
    qemu: QemuProcess,
    control: Option<UnixStream>,
    control_path: PathBuf,
    events: EventReader,
    events_path: PathBuf,
    console_path: PathBuf,
    pub console: ConsoleWatch,
    qemu_log: PathBuf,
    /// Whether it was resumed from a saved state (else booted), and in how long it was ready.
    pub resumed: bool,
    pub ready_ms: Option<u64>,
    pub kernel_release: Option<String>,
    pub notes: Vec<String>,
    /// Its CPU's flags (`/proc/cpuinfo`), from the plan's probe.
    pub cpu_flags: Vec<String>,
    /// QEMU's sockets (removed with the guest).
    _sockets: Option<tempfile::TempDir>,
}

impl MoveGuest {
    /// Starts the guest of `cell` in `dir` with `plan`, its QEMU sockets in `sockets` and its
    /// card sending to `peer_sockets`'s: resumed from the cell's saved guest (with a card),
    /// or booted when there is none or the resume fails (said in its notes).
    pub fn start(
        cell: &Cell,
        role: Role,
        dir: &Path,
        plan: &GuestPlan,
        sockets_dir: tempfile::TempDir,
        peer_sockets: &Path,
    ) -> Result<MoveGuest, Lost> {
        let share = dir.join(GUEST_DIR);
        std::fs::create_dir_all(&share)
            .map_err(|e| Lost::error(format!("cannot make {}: {e}", share.display())))?;
        let text = serde_json::to_string_pretty(plan).expect("plan serialises");
        std::fs::write(share.join(PLAN_FILE), text).map_err(|e| {
            Lost::error(format!(
                "cannot write the plan into {}: {e}",
                share.display()
            ))
        })?;
        let mut boot = Boot::new(cell, cell.accel.accel, dir);
        boot.link = Some(Link::Unplugged);
        let mut notes = Vec::new();
        if let Some(saved) = &cell.saved_vms {
            match boot.saved_state(saved, dir) {
                Ok(state) => boot.incoming = Some(state.path),
                Err(e) => notes.push(format!("the {} boots: no saved guest ({e})", role.as_str())),
            }
        }
        boot.link = Some(Link::Peer {
            local: sockets_dir.path().join(LINK_SOCKET),
            remote: peer_sockets.join(LINK_SOCKET),
        });
        match MoveGuest::spawn(&boot, role, dir, sockets_dir.path()) {
            Ok(mut g) => {
                g.notes = notes;
                g._sockets = Some(sockets_dir);
                Ok(g)
            }
            Err(why) if boot.incoming.is_some() => {
                // As a cell's guests do: a resume that fails is a boot.
                boot.incoming = None;
                let mut g = MoveGuest::spawn(&boot, role, dir, sockets_dir.path())
                    .map_err(|e| Lost::error(e.message))?;
                notes.push(format!(
                    "the {} boots: its resume failed ({})",
                    role.as_str(),
                    why.message
                ));
                g.notes = notes;
                g._sockets = Some(sockets_dir);
                Ok(g)
            }
            Err(lost) => Err(lost),
        }
    }

    /// QEMU started as `boot` says (sent on when resumed).
    fn spawn(boot: &Boot, role: Role, dir: &Path, sockets: &Path) -> Result<MoveGuest, Lost> {
        let share = dir.join(GUEST_DIR);
        let events_path = dir.join("events.jsonl");
        let _ = std::fs::remove_file(&events_path);
        // A QEMU before this one (a resume that failed) bound these.
        for sock in [LINK_SOCKET, "control.sock", "qmp.sock"] {
            let _ = std::fs::remove_file(sockets.join(sock));
        }
        let spec = boot.spec(&share, &events_path, sockets);
        let argv = qemu::argv(&spec);
        let command = crtest_vm::command::command_line("qemu-system-x86_64", &argv);
        let _ = std::fs::write(dir.join("qemu.cmdline"), format!("{command}\n"));
        let qemu_log = dir.join("qemu.log");
        let qemu = QemuProcess::spawn("qemu-system-x86_64", &argv, &qemu_log)
            .map_err(|e| Lost::error(e.to_string()))?;
        let mut g = MoveGuest {
            role,
            dir: dir.to_path_buf(),
            qemu,
            control: None,
            control_path: spec.control_socket(),
            events: EventReader::default(),
            events_path,
            console: ConsoleWatch::new(&boot.console_path),
            console_path: boot.console_path.clone(),
            qemu_log,
            resumed: boot.incoming.is_some(),
            ready_ms: None,
            kernel_release: None,
            notes: Vec::new(),
            cpu_flags: Vec::new(),
            _sockets: None,
        };
        if g.resumed {
            match crate::host::resume::send_on(&spec) {
                Ok(c) => g.control = Some(c),
                Err(e) => {
                    g.qemu.kill();
                    return Err(Lost::error(crate::diagnose::chain::chain(&e)));
                }
            }
        }
        Ok(g)
    }

    /// Waits (at most `limit`) until the agent is ready and listens for commands.
    pub fn wait_ready(&mut self, started: Instant, limit: Duration) -> Result<(), Lost> {
        let end = Instant::now() + limit;
        loop {
            for ev in self.poll() {
                match ev {
                    Event::AgentReady {
                        kernel_release,
                        notes,
                        ..
                    } => {
                        self.ready_ms = Some(started.elapsed().as_millis() as u64);
                        self.kernel_release = Some(kernel_release);
                        self.notes.extend(notes);
                    }
                    Event::ProbeResult { output, .. } => {
                        self.cpu_flags = crate::model::migration::cpu_flags(&output);
                    }
                    Event::MoveListening => return Ok(()),
                    Event::AgentError { message } => {
                        return Err(self.lost(format!("its agent failed: {message}")))
                    }
                    _ => {}
                }
            }
            self.alive(end, "to be ready")?;
        }
    }

    /// Writes `cmd` on the control port (its answer is read with [`MoveGuest::answer`]).
    pub fn send(&mut self, cmd: MoveCommand) -> Result<(), Lost> {
        if self.control.is_none() {
            // A booted guest: its control socket is QEMU's, there from its start.
            let c = UnixStream::connect(&self.control_path).map_err(|e| {
                Lost::error(format!(
                    "the {}'s control socket {}: {e}",
                    self.role.as_str(),
                    self.control_path.display()
                ))
            })?;
            self.control = Some(c);
        }
        let line = format!("{}\n", cmd.line());
        let stream = self.control.as_mut().expect("connected above");
        stream
            .write_all(line.as_bytes())
            .map_err(|e| Lost::error(format!("the {}'s control socket: {e}", self.role.as_str())))
    }

    /// Waits (at most `limit`) for the answer to `cmd`.
    pub fn answer(&mut self, cmd: MoveCommand, limit: Duration) -> Result<MoveReport, Lost> {
        let end = Instant::now() + limit;
        loop {
            for ev in self.poll() {
                match ev {
                    Event::MoveDone { report }
                        if Some(report.index) == cmd.index() && report.verb == cmd.verb() =>
                    {
                        return Ok(*report)
                    }
                    Event::AgentError { message } => {
                        return Err(self.lost(format!("its agent failed: {message}")))
                    }
                    _ => {}
                }
            }
            self.alive(end, &format!("to answer `{}`", cmd.line()))?;
        }
    }

    /// Cuts (`false`) or mends the card's link (QMP `set_link`).
    pub fn set_link(&mut self, up: bool) -> Result<(), crtest_vm::qmp::QmpError> {
        let sock = self.control_path.with_file_name("qmp.sock");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut q = crtest_vm::qmp::Qmp::connect(&sock, deadline)?;
        let args = serde_json::json!({"name": qemu::LINK_NETDEV, "up": up});
        q.execute("set_link", Some(args)).map(|_| ())
    }

    /// Tells the agent there is nothing more and stops QEMU.
    pub fn end(mut self) {
        let _ = self.send(MoveCommand::End);
        let end = Instant::now() + Duration::from_secs(5);
        while self.qemu.try_wait().is_none() && Instant::now() < end {
            if self.poll().contains(&Event::Done) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.qemu.kill();
        self.console.poll(&self.console_path);
    }

    fn poll(&mut self) -> Vec<Event> {
        std::thread::sleep(Duration::from_millis(10));
        self.console.poll(&self.console_path);
        self.events.poll(&self.events_path)
    }

    /// `Ok` while QEMU runs, the time limit is not past and no signal asked the run to stop.
    fn alive(&mut self, end: Instant, waiting: &str) -> Result<(), Lost> {
        if let Some(status) = self.qemu.try_wait() {
            let log = std::fs::read_to_string(&self.qemu_log).unwrap_or_default();
            let said = crtest_vm::command::tail_lines(&log, 3).join(" / ");
            let said = match said.is_empty() {
                true => String::new(),
                false => format!(": {said}"),
            };
            return Err(self.lost(format!("QEMU exited ({status}){said}")));
        }
        if let Some(sig) = crate::host::interrupt::requested() {
            let mut l = self.lost(format!(
                "interrupted by {}",
                crate::host::interrupt::name(sig)
            ));
            l.outcome = Outcome::Error;
            return Err(l);
        }
        if Instant::now() >= end {
            let mut l = self.lost(format!("it did not finish in time waiting {waiting}"));
            if l.outcome == Outcome::Error {
                l.outcome = Outcome::Timeout;
            }
            return Err(l);
        }
        Ok(())
    }

    /// This guest's loss: a panic when the console shows one, with its lines.
    fn lost(&mut self, message: String) -> Lost {
        self.console.poll(&self.console_path);
        let message = format!("the {}: {message}", self.role.as_str());
        match self.console.panic_lines() {
            Some(lines) => Lost {
                outcome: Outcome::Panic,
                message: format!("{message}; its kernel panicked"),
                lines,
            },
            None => Lost {
                outcome: Outcome::Error,
                message,
                lines: self.console.tail(20),
            },
        }
    }
}
