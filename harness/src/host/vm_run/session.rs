//! One guest's session: QEMU started (booted or resumed), the agent's events and the console
//! followed until the guest is done or lost, the time limits enforced, and a lost guest
//! judged (the running scenario gets the blame). Results go to the cell's recorder.

use crate::guest::setup::paths;
use crate::host::vm_run::prepare::Cell;
use crate::host::vm_run::recorder::CellRecorder;
use crate::host::vm_run::run_cell::GUEST_DIR;
use crate::model::event::Event;
use crate::model::outcome::{Failure, Outcome, ScenarioResult};
use crate::model::scenario::Scenario;
use crate::report::progress::Progress;
use crate::results::run::ResultsError;
use crtest_vm::console::ConsoleWatch;
use crtest_vm::qemu::{self, Accel, QemuProcess, VmSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A resumed guest that is not ready this long is taken as a resume that failed: the
/// scenarios go to a booted guest. Resumes take 0.4-2.2 s here with two guests busy; a
/// resume that hung once (both guests of a run, not reproduced) cost the 30 s this was.
const RESUME_READY: Duration = Duration::from_secs(15);
/// A KVM boot that prints nothing this long is taken as the silent KVM hang; TCG takes over.
const KVM_SILENCE: Duration = Duration::from_secs(15);
/// Extra time the host gives a scenario beyond its own limit before it kills the guest.
const SCENARIO_GRACE: Duration = Duration::from_secs(30);

/// What ended one boot.
pub(super) enum BootEnd {
    /// The agent said done.
    Done,
    /// QEMU exited before the agent was done.
    Exited(String),
    BootTimeout,
    ScenarioTimeout,
    /// KVM printed nothing: retry with TCG.
    KvmSilent,
    AgentError(String),
    /// A signal asked the run to stop.
    Interrupted(i32),
    /// The guest is no longer a clean base (taint, oops): boot a new one for the rest.
    Restart(String),
    /// A resumed guest did not come up: boot the rest.
    ResumeFailed(String),
}

/// What the host follows of one running guest.
struct Watch {
    started: Instant,
    /// The agent said it is ready.
    ready: bool,
    /// The scenario running, and when the host gives up on it.
    current: Option<(String, Instant)>,
    events_path: PathBuf,
    qemu_log: PathBuf,
}

/// One guest of a cell: how QEMU is started for it (booted, or resumed from a saved state)
/// and the root image it gets.
pub(crate) struct Boot<'a> {
    cell: &'a Cell,
    accel: Accel,
    pub(crate) console_path: PathBuf,
    /// The root image: the cell's userland or one of its variants.
    pub(super) rootfs: PathBuf,
    /// Resume from this saved state instead of booting.
    pub(crate) incoming: Option<PathBuf>,
    /// The network card of a migration's guest.
    pub(crate) link: Option<qemu::Link>,
}

impl<'a> Boot<'a> {
    pub(crate) fn new(cell: &'a Cell, accel: Accel, run_dir: &Path) -> Boot<'a> {
        Boot {
            cell,
            accel,
            console_path: run_dir.join("console.log"),
            rootfs: cell.userland.image.clone(),
            incoming: None,
            link: None,
        }
    }

    /// The saved ready state of this boot's guest (found, or saved now).
    pub(crate) fn saved_state(
        &self,
        saved: &crate::host::resume::SavedVms,
        run_dir: &Path,
    ) -> Result<crate::host::resume::State, crate::host::resume::SaveFailed> {
        let sockets = crate::host::resume::sockets_dir().map_err(|e| {
            crate::host::resume::SaveFailed(format!("cannot make a folder for QEMU's sockets: {e}"))
        })?;
        let spec = VmSpec {
            save_mode: true,
            // Saved with its card joined to nothing; joined to its peer when resumed.
            link: self.link.as_ref().map(|_| qemu::Link::Unplugged),
            ..self.spec(
                &run_dir.join(GUEST_DIR),
                &run_dir.join("events-save.jsonl"),
                sockets.path(),
            )
        };
        let version = self.cell.qemu_version.as_deref().unwrap_or("unknown");
        saved.get(&spec, version, run_dir, self.cell.boot_timeout)
    }

    pub(crate) fn spec(&self, share: &Path, events: &Path, sockets: &Path) -> VmSpec {
        VmSpec {
            kernel: self.cell.boot_image.clone(),
            initrd: self.cell.initrd.clone(),
            rootfs: self.rootfs.clone(),
            data_disk: self.cell.zdtm.as_ref().map(|z| z.image()),
            modules_dir: self.cell.modules_share.clone(),
            results_dir: share.to_path_buf(),
            results_tag: paths::RESULTS_TAG.into(),
            modules_tag: paths::MODULES_TAG.into(),
            console_log: self.console_path.clone(),
            events_log: events.to_path_buf(),
            sockets_dir: sockets.to_path_buf(),
            save_mode: self.incoming.is_some(),
            incoming: self.incoming.clone(),
            memory_mib: self.cell.memory_mib,
            cpus: self.cell.cpus,
            accel: self.accel,
            cpu: self.cell.cpu.clone(),
            link: self.link.clone(),
        }
    }

    /// Boots, follows the guest until it is done or lost, and records every result.
    pub(super) fn run(
        &self,
        boot_no: u32,
        remaining: &mut Vec<Scenario>,
        rec: &mut CellRecorder,
    ) -> Result<BootEnd, ResultsError> {
        // Each boot's events go to their own file; QEMU truncates on open.
        let events_path = rec.run.dir.join(format!("events-{boot_no}.jsonl"));
        // Never an earlier guest's events (QEMU empties the file only once it has started).
        let _ = std::fs::remove_file(&events_path);
        let sockets = match crate::host::resume::sockets_dir() {
            Ok(d) => d,
            Err(e) => {
                let message = format!("cannot make a folder for QEMU's sockets: {e}");
                rec.fail_all(remaining, Outcome::Error, "boot", &message, &[])?;
                return Ok(BootEnd::Exited(message));
            }
        };
        let spec = self.spec(&rec.run.dir.join(GUEST_DIR), &events_path, sockets.path());
        let argv = qemu::argv(&spec);
        let command = crtest_vm::command::command_line("qemu-system-x86_64", &argv);
        let _ = std::fs::write(rec.run.dir.join("qemu.cmdline"), format!("{command}\n"));
        rec.progress(&Progress::Booting {
            boot: boot_no,
            resume: self.incoming.is_some(),
            command: command.clone(),
        });
        let mut console = ConsoleWatch::new(&self.console_path);
        let started = Instant::now();
        let qemu_log = rec.run.dir.join(format!("qemu-{boot_no}.log"));
        let mut qemu = match QemuProcess::spawn("qemu-system-x86_64", &argv, &qemu_log) {
            Ok(q) => q,
            Err(e) => {
                rec.fail_all(remaining, Outcome::Error, "boot", &e.to_string(), &[])?;
                return Ok(BootEnd::Exited(e.to_string()));
            }
        };
        // Held open while the guest runs (see `send_on`).
        let mut _control = None;
        if self.incoming.is_some() {
            match crate::host::resume::send_on(&spec) {
                Ok(c) => _control = Some(c),
                Err(e) => {
                    qemu.kill();
                    let why = crate::diagnose::chain::chain(&e);
                    let log = std::fs::read_to_string(&qemu_log).unwrap_or_default();
                    let said = crtest_vm::command::tail_lines(&log, 3).join(" / ");
                    return Ok(BootEnd::ResumeFailed(if said.is_empty() {
                        why
                    } else {
                        format!("{why} (QEMU: {said})")
                    }));
                }
            }
            rec.cell().qemu.resumes += 1;
        }
        let mut watch = Watch {
            started,
            ready: false,
            current: None,
            events_path,
            qemu_log,
        };
        let end = self.follow(&mut qemu, &mut watch, &mut console, remaining, rec)?;
        // Done means every result is on the host (the share has no cache, the disks are
        // throw-away overlays): QEMU goes at once, not after the guest's power-off.
        qemu.kill();
        console.poll(&self.console_path);
        let current = watch.current.map(|c| c.0);
        self.judge_loss(&end, watch.ready, current, remaining, rec, &mut console)?;
        Ok(end)
    }

    /// Follows the guest's events, QEMU and the time limits until something ends the boot.
    fn follow(
        &self,
        qemu: &mut QemuProcess,
        w: &mut Watch,
        console: &mut ConsoleWatch,
        remaining: &mut Vec<Scenario>,
        rec: &mut CellRecorder,
    ) -> Result<BootEnd, ResultsError> {
        let mut events = crate::host::guest_share::EventReader::default();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            console.poll(&self.console_path);
            for ev in events.poll(&w.events_path) {
                if let Some(end) = self.on_event(ev, w, console, remaining, rec)? {
                    return Ok(end);
                }
            }
            if events.flooded {
                let message = format!(
                    "the guest wrote more than {} MiB to its events port; it is not followed any more",
                    crate::host::guest_share::MAX_EVENTS >> 20
                );
                rec.cell().notes.push(message.clone());
                return Ok(BootEnd::AgentError(message));
            }
            if let Some(status) = qemu.try_wait() {
                // Read what the guest said last before judging.
                console.poll(&self.console_path);
                for ev in events.poll(&w.events_path) {
                    if let Event::ScenarioFinished { result } = ev {
                        w.current = None;
                        rec.record(*result, remaining, console)?;
                    }
                }
                return Ok(self.exited(status, w, remaining));
            }
            if let Some(end) = self.overdue(w, console) {
                return Ok(end);
            }
        }
    }

    /// One event of the agent; `Some` when it ends the boot.
    fn on_event(
        &self,
        ev: Event,
        w: &mut Watch,
        console: &mut ConsoleWatch,
        remaining: &mut Vec<Scenario>,
        rec: &mut CellRecorder,
    ) -> Result<Option<BootEnd>, ResultsError> {
        match ev {
            Event::AgentReady {
                kernel_release,
                notes,
                marks,
                uptime_ms,
            } => {
                w.ready = true;
                self.agent_ready(w.started, kernel_release, notes, marks, uptime_ms, rec)?;
            }
            Event::ScenarioStarted { name } => {
                let limit = remaining.iter().find(|s| s.name == name).map_or(
                    Duration::from_secs(crate::model::scenario::DEFAULT_TIMEOUT_S),
                    |s| Duration::from_secs(s.timeout_s),
                );
                w.current = Some((name.clone(), Instant::now() + limit + SCENARIO_GRACE));
                rec.progress(&Progress::ScenarioStarted { name });
            }
            Event::StepStarted { .. } => {}
            Event::SaveReady { .. } | Event::MoveDone { .. } | Event::MoveListening => {
                // Only the host's own save boot is saved, and only a migration's guests move:
                // from any other guest this is noise.
            }
            Event::ProbeResult {
                command,
                status,
                output,
            } => {
                rec.cell()
                    .probes
                    .push(crate::diagnose::doctor::ProbeOutput {
                        command,
                        status,
                        output,
                    });
                rec.save()?;
            }
            Event::StepFinished {
                scenario,
                step,
                iteration,
                ms,
                ok,
            } => rec.progress(&Progress::Step {
                scenario,
                step,
                iteration,
                ms,
                ok,
            }),
            Event::ScenarioFinished { result } => {
                w.current = None;
                let name = result.name.clone();
                if rec.record(*result, remaining, console)? {
                    return Ok(Some(BootEnd::Restart(format!(
                        "the kernel reported trouble (see the console) during {name}"
                    ))));
                }
            }
            Event::RestartRequested { reason } => return Ok(Some(BootEnd::Restart(reason))),
            Event::AgentError { message } => {
                rec.cell().notes.push(format!("agent error: {message}"));
                return Ok(Some(BootEnd::AgentError(message)));
            }
            Event::Done => return Ok(Some(BootEnd::Done)),
        }
        Ok(None)
    }

    /// The agent is ready: the boot's (or resume's) time and marks, its notes.
    fn agent_ready(
        &self,
        started: Instant,
        kernel: String,
        notes: Vec<String>,
        marks: Vec<(String, u64)>,
        uptime_ms: u64,
        rec: &mut CellRecorder,
    ) -> Result<(), ResultsError> {
        let ms = started.elapsed().as_millis() as u64;
        let cell = rec.cell();
        if self.incoming.is_some() {
            cell.resume_ms.get_or_insert(ms);
        } else if cell.boot_ms.is_none() {
            cell.boot_ms = Some(ms);
            cell.boot_marks = marks;
            cell.boot_marks.push(("ready".into(), uptime_ms));
        }
        let criu = cell.userland.criu.clone();
        for n in notes {
            if !rec.cell().notes.contains(&n) {
                rec.guest_note(n);
            }
        }
        rec.progress(&Progress::AgentReady {
            ms,
            resumed: self.incoming.is_some(),
            kernel,
            criu,
        });
        rec.save()
    }

    /// QEMU exited: done when nothing is left, else lost with what QEMU said last.
    fn exited(
        &self,
        status: std::process::ExitStatus,
        w: &Watch,
        remaining: &[Scenario],
    ) -> BootEnd {
        if remaining.is_empty() {
            return BootEnd::Done;
        }
        let log = std::fs::read_to_string(&w.qemu_log).unwrap_or_default();
        let said = crtest_vm::command::tail_lines(&log, 3).join(" / ");
        BootEnd::Exited(if said.is_empty() {
            format!("QEMU exited ({status}) before the agent was done")
        } else {
            format!("QEMU exited ({status}) before the agent was done: {said}")
        })
    }

    /// A time limit passed (resume, boot, KVM's silence, the running scenario's), or a signal
    /// asked the run to stop.
    fn overdue(&self, w: &Watch, console: &ConsoleWatch) -> Option<BootEnd> {
        let waited = w.started.elapsed();
        if !w.ready && self.incoming.is_some() && waited > RESUME_READY {
            return Some(BootEnd::ResumeFailed(format!(
                "the resumed guest was not ready within {} s",
                RESUME_READY.as_secs()
            )));
        }
        if !w.ready && self.accel == Accel::Kvm && console.bytes == 0 && waited > KVM_SILENCE {
            return Some(BootEnd::KvmSilent);
        }
        if !w.ready && waited > self.cell.boot_timeout {
            return Some(BootEnd::BootTimeout);
        }
        if w.current.as_ref().is_some_and(|(_, d)| Instant::now() > *d) {
            return Some(BootEnd::ScenarioTimeout);
        }
        crate::host::interrupt::requested().map(BootEnd::Interrupted)
    }

    /// After a boot that did not finish: the running scenario gets the blame, the others wait
    /// for the next boot (or all fail when the guest never came up).
    fn judge_loss(
        &self,
        end: &BootEnd,
        ready: bool,
        current: Option<String>,
        remaining: &mut Vec<Scenario>,
        rec: &mut CellRecorder,
        console: &mut ConsoleWatch,
    ) -> Result<(), ResultsError> {
        let (outcome, message) = match end {
            BootEnd::Done => return Ok(()),
            BootEnd::KvmSilent | BootEnd::ResumeFailed(_) => return Ok(()),
            BootEnd::Restart(reason) => {
                rec.cell().notes.push(format!("guest rebooted: {reason}"));
                rec.progress(&Progress::GuestLost {
                    reason: reason.clone(),
                });
                return Ok(());
            }
            BootEnd::Exited(m) => (Outcome::Error, m.clone()),
            BootEnd::AgentError(m) => (Outcome::Error, format!("the guest agent failed: {m}")),
            BootEnd::BootTimeout => (
                Outcome::Timeout,
                format!(
                    "the guest did not become ready within {} s",
                    self.cell.boot_timeout.as_secs()
                ),
            ),
            BootEnd::ScenarioTimeout => (
                Outcome::Timeout,
                "the guest stopped answering: scenario time limit passed".into(),
            ),
            BootEnd::Interrupted(sig) => {
                let message = format!(
                    "interrupted by {} before it finished",
                    crate::host::interrupt::name(*sig)
                );
                if let Some(name) = current {
                    remaining.sort_by_key(|s| s.name != name);
                }
                return rec.fail_all(
                    remaining,
                    Outcome::Error,
                    "interrupted",
                    &message,
                    &console.tail(10),
                );
            }
        };
        let (outcome, message, lines) = match console.panic_lines() {
            Some(lines) => (
                Outcome::Panic,
                "the guest kernel panicked".to_string(),
                lines,
            ),
            None => (outcome, message, console.tail(30)),
        };
        rec.progress(&Progress::GuestLost {
            reason: message.clone(),
        });
        match (ready, current) {
            (true, Some(name)) => {
                let mut result = ScenarioResult::without_steps(
                    &name,
                    outcome,
                    Failure {
                        step: "scenario".into(),
                        message,
                        console_tail: lines,
                        ..Failure::default()
                    },
                );
                result.artifacts.push("console.log".into());
                rec.record(result, remaining, console).map(|_| ())
            }
            (true, None) if !remaining.is_empty() && !matches!(end, BootEnd::AgentError(_)) => {
                // Lost between scenarios: try the rest on a new boot once more.
                Ok(())
            }
            _ => rec.fail_all(remaining, outcome, "boot", &message, &lines),
        }
    }
}
