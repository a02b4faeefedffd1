//! The agent of a migration's guest: the private link's card set up, then the host's
//! commands read from the control port and carried out one at a time, each answered by a
//! `move_done` event (see [`crate::exec::mover`]).

use crate::exec::context::{reap_orphans, ExecConfig};
use crate::exec::mover::{side_scenario, Mover};
use crate::guest::setup::paths;
use crate::model::event::Event;
use crate::model::migration::{MoveCommand, MovePlan, MoveReport, Role, MAX_LINE};
use crate::model::outcome::{Failure, Outcome};
use crate::model::scenario::Scenario;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Why the guest could not take part in the migration.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("the private link: {0}")]
    Link(String),
    #[error("the control port {path}")]
    Control {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Sets the link up, then carries out the host's commands until `move end`.
pub fn serve(
    cfg: &ExecConfig,
    scenarios: &[Scenario],
    plan: &MovePlan,
    send: &mut dyn FnMut(Event),
) -> Result<(), MoveError> {
    link_up(plan.role)?;
    let mut control = Control::open()?;
    send(Event::MoveListening);
    let mut next = None;
    loop {
        let cmd = match next.take() {
            Some(c) => c,
            None => control.next()?,
        };
        let Some(index) = cmd.index() else {
            return Ok(());
        };
        let Some(sc) = scenarios.get(index) else {
            send(refused(cmd, format!("the plan has no scenario {index}")));
            continue;
        };
        next = one_scenario(cfg, sc, plan, cmd, &mut control, send)?;
    }
}

/// One scenario's commands, from `first` to this side's last; returns a command for another
/// scenario that came before that (the host gave this one up: its result goes unsent).
fn one_scenario(
    cfg: &ExecConfig,
    sc: &Scenario,
    plan: &MovePlan,
    first: MoveCommand,
    control: &mut Control,
    send: &mut dyn FnMut(Event),
) -> Result<Option<MoveCommand>, MoveError> {
    let index = first.index().unwrap_or(0);
    let side = side_scenario(sc, plan.role, plan.mode);
    let mut mover = Mover::new(cfg, &side, plan.role, plan.mode, index);
    let mut cmd = first;
    loop {
        let mut report = mover.command(cmd);
        if mover.last(cmd) {
            let mut half = mover.result();
            reap_orphans();
            let leftovers = crate::guest::health::kill_leftovers();
            if !leftovers.is_empty() {
                half.leftovers = leftovers;
            }
            report.half = Some(Box::new(half));
            send(done(report));
            return Ok(None);
        }
        send(done(report));
        cmd = control.next()?;
        if cmd.index() != Some(index) {
            drop(mover.result());
            reap_orphans();
            let _ = crate::guest::health::kill_leftovers();
            return Ok(Some(cmd));
        }
    }
}

fn done(report: MoveReport) -> Event {
    Event::MoveDone {
        report: Box::new(report),
    }
}

/// The answer to a command the guest cannot carry out.
fn refused(cmd: MoveCommand, why: String) -> Event {
    done(MoveReport {
        index: cmd.index().unwrap_or(0),
        verb: cmd.verb().into(),
        ms: 0,
        outcome: Outcome::Error,
        failure: Some(Failure {
            step: cmd.verb().into(),
            message: why,
            ..Failure::default()
        }),
        criu_ms: None,
        handoff_ms: 0,
        link_bytes: 0,
        half: None,
    })
}

/// The link's card: the first network device that is a device (not `lo`, not a bridge),
/// with this side's MAC address and address, up.
fn link_up(role: Role) -> Result<(), MoveError> {
    let card = link_card().ok_or_else(|| {
        MoveError::Link("no network card (is virtio_net loaded? see the guest notes)".into())
    })?;
    let (address, _) = role.addresses();
    let batch = format!(
        "link set dev {card} address {mac}\naddr add {address}/24 dev {card}\nlink set dev {card} up\n",
        mac = role.mac()
    );
    let file = Path::new("/run/crtest/link.ip");
    std::fs::write(file, batch).map_err(|e| MoveError::Link(format!("{}: {e}", file.display())))?;
    let args = vec!["-batch".to_string(), file.display().to_string()];
    match crtest_vm::command::run("ip", &args, Duration::from_secs(10)) {
        Ok(r) if r.ok() => Ok(()),
        Ok(r) => Err(MoveError::Link(format!(
            "{}: {}",
            r.command,
            r.output.trim()
        ))),
        Err(e) => Err(MoveError::Link(e.to_string())),
    }
}

fn link_card() -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .filter(|e| e.path().join("device").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next()
}

/// The control port, read a line at a time.
struct Control {
    port: std::fs::File,
}

impl Control {
    fn open() -> Result<Control, MoveError> {
        let err = |source| MoveError::Control {
            path: paths::CONTROL_TTY.into(),
            source,
        };
        let port = std::fs::File::open(paths::CONTROL_TTY).map_err(err)?;
        if let Ok(mut t) = nix::sys::termios::tcgetattr(&port) {
            nix::sys::termios::cfmakeraw(&mut t);
            let _ = nix::sys::termios::tcsetattr(&port, nix::sys::termios::SetArg::TCSANOW, &t);
        }
        Ok(Control { port })
    }

    /// The next command (other lines are skipped).
    fn next(&mut self) -> Result<MoveCommand, MoveError> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            let n = self
                .port
                .read(&mut byte)
                .map_err(|source| MoveError::Control {
                    path: paths::CONTROL_TTY.into(),
                    source,
                })?;
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if byte[0] != b'\n' {
                if line.len() <= MAX_LINE {
                    line.push(byte[0]);
                }
                continue;
            }
            if let Some(cmd) = MoveCommand::parse(String::from_utf8_lossy(&line).trim()) {
                return Ok(cmd);
            }
            line.clear();
        }
    }
}
