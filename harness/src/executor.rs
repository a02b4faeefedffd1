//! Runs one scenario's steps against a workload with criu: the same code in the guest agent
//! and in `crtest run --host`.
//!
//! The workload protocol (see `workloads/src/protocol.rs`): in its working directory a
//! workload writes `ready` once set up, keeps `progress` (a growing number) up to date, and
//! on SIGTERM checks its own state and writes its verdict to `result`.

use crate::command::{self, Ran};
use crate::criu;
use crate::errno;
use crate::event::Event;
use crate::kmsg::KmsgWindow;
use crate::outcome::{Failure, Outcome, Phases, ScenarioResult, StepRecord};
use crate::proctree;
use crate::scenario::{ready_spec, Backend, ReadySpec, Scenario, StepKind, Target, Variant};
use crtest_workloads::protocol::{Ready, Verdict, PROGRESS_FILE, READY_FILE, RESULT_FILE};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the executor works and what it runs.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Each scenario gets a fresh directory under this one.
    pub work_root: PathBuf,
    /// The run directory: kept files go to `<run_dir>/scenarios/<name>/`.
    pub run_dir: PathBuf,
    /// Where the workload binaries are.
    pub bin_dir: PathBuf,
    /// The criu binary.
    pub criu: String,
    /// Keep the criu images of passing scenarios too (they are always kept on failure).
    pub keep_images: bool,
}

/// How long to wait, after a restore, for the workload to show it works again.
const CONTINUITY_WAIT: Duration = Duration::from_secs(20);

/// The state of one scenario's run, shared by the steps of every backend.
pub(crate) struct Run<'a> {
    pub(crate) cfg: &'a ExecConfig,
    pub(crate) sc: &'a Scenario,
    /// The scenario's working directory.
    pub(crate) work: PathBuf,
    pub(crate) deadline: Instant,
    /// The root of the tree to checkpoint.
    pub(crate) pid: Option<Pid>,
    /// The workload's progress read right before the last checkpoint.
    pub(crate) progress_at_checkpoint: u64,
    /// The workload's verdict text.
    pub(crate) detail: Option<String>,
    /// The container of an `lxc` scenario, once created.
    pub(crate) lxc: Option<crate::lxc::Container>,
    /// Timed parts of the current step (a backend's commands), recorded before the step.
    pub(crate) substeps: Vec<StepRecord>,
    /// The checkpointed root is the init of its own pid namespace.
    pub(crate) ns_init: bool,
    /// A `[vnc]` scenario's screenshots so far.
    pub(crate) screens: Option<crate::outcome::Screens>,
    /// The screenshot taken before the checkpoint, to compare the restored screen with.
    pub(crate) screen_before: Option<crate::frame::Frame>,
    /// The screenshot taken after the restore, to see what typing changes.
    pub(crate) screen_restored: Option<crate::frame::Frame>,
}

/// Runs `sc` to its end and returns its result; `emit` receives step events as they happen.
pub fn run_scenario(
    cfg: &ExecConfig,
    sc: &Scenario,
    emit: &mut dyn FnMut(Event),
) -> ScenarioResult {
    let started = Instant::now();
    let work = cfg.work_root.join(&sc.name);
    let mut run = Run {
        cfg,
        sc,
        work: work.clone(),
        deadline: started + Duration::from_secs(sc.timeout_s),
        pid: None,
        progress_at_checkpoint: 0,
        detail: None,
        lxc: None,
        substeps: Vec::new(),
        ns_init: false,
        screens: None,
        screen_before: None,
        screen_restored: None,
    };
    let mut phases = Phases::default();
    let mut steps = Vec::new();
    let mut failure = None;
    let mut outcome = Outcome::Pass;

    if let Some(why) = crate::requirements::unmet_in_guest(&sc.requires, &cfg.criu) {
        let mut r = ScenarioResult::without_steps(&sc.name, Outcome::Skip, Failure::default());
        r.failure = None;
        r.detail = Some(why);
        return r;
    }
    if let Err(f) = prepare_dir(&work)
        .and_then(|()| run.copy_inputs())
        .and_then(|()| guest_commands(&sc.before, "before"))
    {
        failure = Some(*f);
        outcome = Outcome::Error;
    }
    for planned in &sc.steps {
        if failure.is_some() {
            break;
        }
        let step = planned.kind.as_str().to_string();
        emit(Event::StepStarted {
            scenario: sc.name.clone(),
            step: step.clone(),
            iteration: planned.iteration,
        });
        let mut kmsg = KmsgWindow::open();
        let t = Instant::now();
        let res = run.step(planned.kind, planned.iteration);
        let ms = t.elapsed().as_millis() as u64;
        phases.add(planned.kind, ms);
        steps.append(&mut run.substeps);
        steps.push(StepRecord {
            step: step.clone(),
            iteration: planned.iteration,
            ms,
            ok: res.is_ok(),
        });
        emit(Event::StepFinished {
            scenario: sc.name.clone(),
            step,
            iteration: planned.iteration,
            ms,
            ok: res.is_ok(),
        });
        if let Err(StepError {
            outcome: o,
            failure: mut f,
        }) = res
        {
            f.dmesg = kmsg.drain();
            outcome = o;
            failure = Some(*f);
        }
    }
    run.cleanup();
    if let Err(f) = guest_commands(&sc.after, "after") {
        // Putting things back failed: the guest is not as the next scenario expects.
        if failure.is_none() {
            outcome = Outcome::Error;
            failure = Some(*f);
        }
    }
    steps.append(&mut run.substeps);
    if let Some(f) = failure.as_mut() {
        crate::expectation::diagnose(f, &[]);
    }
    let outcome = crate::expectation::apply(&sc.expect, outcome, &mut failure);
    let artifacts = keep_artifacts(cfg, sc, &work, failure.is_some() || cfg.keep_images);
    let _ = std::fs::remove_dir_all(&work);
    ScenarioResult {
        name: sc.name.clone(),
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
        phases,
        steps,
        detail: run.detail,
        failure,
        artifacts,
        leftovers: Vec::new(),
        screens: run.screens,
    }
}

/// A failed step: the outcome it leads to and the failure report.
pub(crate) struct StepError {
    pub(crate) outcome: Outcome,
    pub(crate) failure: Box<Failure>,
}

impl StepError {
    pub(crate) fn fail(step: StepKind, message: impl Into<String>) -> StepError {
        StepError {
            outcome: Outcome::Fail,
            failure: Box::new(Failure {
                step: step.as_str().into(),
                message: message.into(),
                ..Failure::default()
            }),
        }
    }
    pub(crate) fn with_outcome(mut self, outcome: Outcome) -> StepError {
        self.outcome = outcome;
        self
    }
}

/// Runs a scenario's `before` or `after` guest commands; the first failure stops them.
fn guest_commands(commands: &[Vec<String>], which: &str) -> Result<(), Box<Failure>> {
    for argv in commands {
        let Some((program, args)) = argv.split_first() else {
            continue;
        };
        let failed = |message: String, status: Option<i32>, line: Option<String>| {
            Box::new(Failure {
                step: which.into(),
                command: Some(command::command_line(program, args)),
                exit_status: status,
                first_error_line: line,
                message,
                ..Failure::default()
            })
        };
        match command::run(program, args, Duration::from_secs(60)) {
            Ok(r) if r.ok() => {}
            Ok(r) => {
                return Err(failed(
                    format!("a `{which}` command failed with status {}", r.status),
                    Some(r.status),
                    r.tail(1).pop(),
                ))
            }
            Err(e) => return Err(failed(e.to_string(), None, None)),
        }
    }
    Ok(())
}

fn prepare_dir(work: &Path) -> Result<(), Box<Failure>> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).map_err(|e| {
        Box::new(Failure {
            step: "start".into(),
            message: format!("cannot create working directory {}: {e}", work.display()),
            errno: e.raw_os_error().and_then(errno::name),
            ..Failure::default()
        })
    })
}

impl Run<'_> {
    fn step(&mut self, kind: StepKind, iteration: u32) -> Result<(), StepError> {
        if Instant::now() >= self.deadline {
            return Err(StepError::fail(
                kind,
                format!("scenario time limit of {} s reached", self.sc.timeout_s),
            )
            .with_outcome(Outcome::Timeout));
        }
        if let Target::External(_) = self.sc.target {
            return crate::external::run(self, kind);
        }
        crate::vnc_steps::before_step(self, kind, iteration)?;
        if self.sc.backend == Backend::Lxc {
            crate::lxc::step(self, kind, iteration)?;
        } else {
            self.backend_step(kind, iteration)?;
        }
        crate::vnc_steps::after_step(self, kind, iteration)
    }

    /// One step with criu.
    fn backend_step(&mut self, kind: StepKind, iteration: u32) -> Result<(), StepError> {
        match kind {
            StepKind::Start => self.start(),
            StepKind::WaitReady => self.wait_ready(),
            StepKind::Checkpoint => self.checkpoint(iteration),
            StepKind::Restore => self.restore(iteration),
            StepKind::Verify => self.verify(),
            StepKind::Run => Err(StepError::fail(kind, "`run` needs an `[external]` test")),
        }
    }

    /// The time this step may take: the step limit, cut by what is left of the scenario's.
    pub(crate) fn step_budget(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        left.min(Duration::from_secs(self.sc.step_timeout_s))
    }

    /// Copies a user program's files into the working directory. The host puts them in
    /// `<run_dir>/inputs/<scenario>/` for the guest; on the host they are read in place.
    fn copy_inputs(&self) -> Result<(), Box<Failure>> {
        for f in self.sc.target.files() {
            let name = f.file_name().unwrap_or_default();
            let staged = self
                .cfg
                .run_dir
                .join("inputs")
                .join(&self.sc.name)
                .join(name);
            let src = if staged.exists() { staged } else { f.clone() };
            let dest = self.work.join(name);
            std::fs::copy(&src, &dest).map_err(|e| {
                Box::new(Failure {
                    step: "start".into(),
                    message: format!(
                        "cannot copy {} into the working directory: {e}",
                        src.display()
                    ),
                    errno: e.raw_os_error().and_then(errno::name),
                    ..Failure::default()
                })
            })?;
            let _ = std::fs::set_permissions(
                &dest,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            );
        }
        Ok(())
    }

    /// The program and arguments to start.
    pub(crate) fn command(&self) -> (PathBuf, Vec<String>) {
        let command = match &self.sc.target {
            Target::Workload { name, args } => return (self.cfg.bin_dir.join(name), args.clone()),
            Target::Program(p) => &p.command,
            Target::External(e) => &e.command,
        };
        let first = PathBuf::from(&command[0]);
        let local = self.work.join(&first);
        let program = if first.is_relative() && local.exists() {
            local
        } else {
            first
        };
        (program, command[1..].to_vec())
    }

    pub(crate) fn start(&mut self) -> Result<(), StepError> {
        let (program, args) = self.command();
        let log = std::fs::File::create(self.work.join("workload.log")).map_err(|e| {
            StepError::fail(StepKind::Start, format!("cannot create workload.log: {e}"))
                .with_outcome(Outcome::Error)
        })?;
        let log2 = log.try_clone().expect("dup of a fresh file");
        let mut cmd = std::process::Command::new(&program);
        cmd.args(&args)
            .current_dir(&self.work)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: setsid is async-signal-safe; the workload becomes a session and process
        // group leader, so criu can dump its tree without a shell job and we can kill it whole.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(Into::into));
        }
        let child = cmd.spawn().map_err(|e| {
            let mut err = StepError::fail(
                StepKind::Start,
                format!("cannot start workload {}: {e}", program.display()),
            )
            .with_outcome(Outcome::Error);
            err.failure.command =
                Some(command::command_line(&program.display().to_string(), &args));
            err.failure.errno = e.raw_os_error().and_then(errno::name);
            err
        })?;
        // The child is waited for with waitpid (it may be restored later under the same pid).
        self.pid = Some(Pid::from_raw(child.id() as i32));
        Ok(())
    }

    /// The file whose appearance means the target is ready, or `None` when it has none (an
    /// external test; a program ready after a delay, which is slept here).
    pub(crate) fn ready_file(&self) -> Result<Option<PathBuf>, StepError> {
        let name = match &self.sc.target {
            Target::Workload { .. } => READY_FILE.to_string(),
            Target::Program(p) => match ready_spec(&p.ready) {
                Ok(ReadySpec::File(f)) => f,
                Ok(ReadySpec::DelayMs(ms)) => {
                    std::thread::sleep(Duration::from_millis(ms).min(self.step_budget()));
                    return Ok(None);
                }
                Err(e) => return Err(StepError::fail(StepKind::WaitReady, e)),
            },
            // An external test has no readiness (it runs as one `run` step).
            Target::External(_) => return Ok(None),
        };
        Ok(Some(self.work.join(name)))
    }

    /// Waits until `ready` exists, within the step's budget; `gone` returns the step's
    /// failure once the workload has ended without it.
    pub(crate) fn wait_for_file(
        &mut self,
        ready: &Path,
        mut gone: impl FnMut(&mut Self) -> Option<StepError>,
    ) -> Result<(), StepError> {
        let limit = Instant::now() + self.step_budget();
        while !ready.exists() {
            if let Some(e) = gone(self) {
                return Err(e);
            }
            if Instant::now() >= limit {
                return Err(StepError::fail(
                    StepKind::WaitReady,
                    "the workload did not become ready in time",
                )
                .with_outcome(Outcome::Timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// `gone` for [`Run::wait_for_file`] when the workload is the executor's child.
    fn workload_gone(&mut self) -> Option<StepError> {
        let status = self.exited()?;
        Some(self.workload_died(StepKind::WaitReady, status))
    }

    pub(crate) fn wait_ready(&mut self) -> Result<(), StepError> {
        let Some(ready) = self.ready_file()? else {
            return self.workload_gone().map_or(Ok(()), Err);
        };
        self.wait_for_file(&ready, Run::workload_gone)?;
        // The process to checkpoint is the one `ready` names: a workload may start its real
        // tree elsewhere (in a new pid namespace, say) and let the starter exit.
        let named = std::fs::read_to_string(&ready)
            .ok()
            .filter(|_| matches!(self.sc.target, Target::Workload { .. }))
            .and_then(|t| serde_json::from_str::<Ready>(&t).ok())
            .map(|r| Pid::from_raw(r.pid as i32));
        if let Some(named) = named.filter(|n| Some(*n) != self.pid) {
            if let Some(starter) = self.pid.replace(named) {
                reap(starter, Duration::from_secs(10));
            }
        }
        Ok(())
    }

    pub(crate) fn mkdir(&self, dir: &Path) -> Result<(), StepError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StepError::fail(
                StepKind::Checkpoint,
                format!("cannot create {}: {e}", dir.display()),
            )
            .with_outcome(Outcome::Error)
        })
    }

    fn checkpoint(&mut self, iteration: u32) -> Result<(), StepError> {
        let pid = self.pid.expect("started before checkpoint");
        let images = self.work.join(format!("images-{iteration}"));
        self.mkdir(&images)?;
        let mut extra = self.sc.dump_args.clone();
        if self.sc.variant == Variant::PreDump {
            // A pre-dump copies memory while the tree runs; the dump then writes only what
            // changed since, on top of it.
            let pre = self.work.join(format!("pre-{iteration}"));
            self.mkdir(&pre)?;
            let log = self.work.join(format!("pre-dump-{iteration}.log"));
            let mut args = criu::dump_args(pid.as_raw(), &pre, &log, &extra);
            args[0] = "pre-dump".into();
            args.push("--track-mem".into());
            self.criu(StepKind::Checkpoint, iteration, &args, &log)?;
            extra.extend([
                "--track-mem".into(),
                "--prev-images-dir".into(),
                format!("../pre-{iteration}"),
            ]);
        }
        if self.sc.variant == Variant::LeaveRunning {
            extra.push("--leave-running".into());
        }
        self.progress_at_checkpoint = self.progress().unwrap_or(0);
        let log = self.work.join(format!("dump-{iteration}.log"));
        let tree = proctree::tree(pid);
        self.ns_init = proctree::is_pid_ns_init(pid);
        let args = criu::dump_args(pid.as_raw(), &images, &log, &extra);
        let ran = self.criu(StepKind::Checkpoint, iteration, &args, &log)?;
        if self.sc.variant == Variant::LeaveRunning {
            // The tree goes on: it must not have noticed the dump.
            return self.continuity(StepKind::Checkpoint);
        }
        if self.sc.dump_args.iter().any(|a| a == "--leave-running") {
            // Asked for by the scenario itself: the original goes on, and the restore that
            // follows meets it (the pid-collision reproducer).
            return Ok(());
        }
        // The dump killed the tree. Collect the root, and the children re-parented to us,
        // so that every pid is free again for the restore.
        let _ = reap(pid, Duration::from_secs(10));
        let mut tree = tree;
        if !self.ns_init {
            // The tree as criu saw it (children born after the walk above, a shell's
            // short-lived ones say), read from the dump's own pstree.
            if let Ok(dumped) = crate::ckpt_dir::Checkpoint::load(&images) {
                tree.extend(dumped.tasks.iter().map(|t| Pid::from_raw(t.pid as i32)));
            }
            tree.retain(|p| p.as_raw() > 1 && *p != Pid::this());
        }
        let end = Instant::now() + Duration::from_secs(10);
        while let Some(left) = tree.iter().find(|p| proctree::exists(**p)) {
            if Instant::now() >= end {
                let mut e = StepError::fail(
                    StepKind::Checkpoint,
                    format!("criu dump succeeded but process {left} of the tree is still there"),
                );
                e.failure.command = Some(ran.command);
                return Err(e);
            }
            reap_orphans();
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn restore(&mut self, iteration: u32) -> Result<(), StepError> {
        let images = self.work.join(format!("images-{iteration}"));
        let log = self.work.join(format!("restore-{iteration}.log"));
        let pidfile = self.work.join(format!("restore-{iteration}.pid"));
        let args = criu::restore_args(&images, &log, &pidfile, &self.sc.restore_args);
        let ran = self.criu(StepKind::Restore, iteration, &args, &log)?;
        let restored = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let old = self.pid.expect("started before restore");
        match restored {
            Some(p) if p == old.as_raw() => {}
            // The init of a pid namespace keeps its pid inside the namespace (1) but gets a
            // new one outside: the workload checks the inside pids itself.
            Some(p) if self.ns_init => self.pid = Some(Pid::from_raw(p)),
            other => {
                let mut e = StepError::fail(
                    StepKind::Restore,
                    format!("criu restored pid {other:?}, but the workload's pid was {old}"),
                );
                e.failure.command = Some(ran.command);
                return Err(e);
            }
        }
        self.continuity(StepKind::Restore)
    }

    /// After a restore the workload must go on from where it was: its progress never goes
    /// back below the value read before the checkpoint, and it grows again.
    pub(crate) fn continuity(&mut self, step: StepKind) -> Result<(), StepError> {
        if let Target::Program(_) = self.sc.target {
            // A user's program has no progress file: it must at least be alive.
            return match self.exited() {
                Some(gone) => Err(self.workload_died(step, gone)),
                None => Ok(()),
            };
        }
        let before = self.progress_at_checkpoint;
        let limit = Instant::now() + self.step_budget().min(CONTINUITY_WAIT);
        loop {
            let now = self.progress();
            match now {
                Some(p) if p < before => {
                    return Err(StepError::fail(
                        step,
                        format!(
                            "progress went back from {before} to {p}: the workload lost its state"
                        ),
                    ))
                }
                Some(p) if p > before => return Ok(()),
                _ => {}
            }
            if let Some(gone) = self.exited() {
                return Err(self.workload_died(step, gone));
            }
            if Instant::now() >= limit {
                return Err(StepError::fail(
                    step,
                    format!(
                        "the restored workload made no progress (stuck at {}, was {before} at the checkpoint)",
                        now.map_or("nothing".to_string(), |p| p.to_string())
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn verify(&mut self) -> Result<(), StepError> {
        let pid = self.pid.expect("started before verify");
        if let Target::Program(p) = &self.sc.target {
            return self.program_check(pid, &p.check.clone());
        }
        let _ = kill(pid, Signal::SIGTERM);
        let limit = Instant::now() + self.step_budget();
        let status = loop {
            if let Some(s) = self.exited() {
                break s;
            }
            if Instant::now() >= limit {
                return Err(StepError::fail(
                    StepKind::Verify,
                    "the workload did not finish its check in time",
                )
                .with_outcome(Outcome::Timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let verdict = self
            .verdict()
            .ok_or_else(|| self.workload_died(StepKind::Verify, status))?;
        self.detail = Some(verdict.detail.clone());
        if !verdict.ok || status != 0 {
            let mut e = StepError::fail(
                StepKind::Verify,
                format!("the workload's check failed: {}", verdict.detail),
            );
            e.failure.exit_status = Some(status);
            e.failure.first_error_line = Some(verdict.detail);
            return Err(e);
        }
        if verdict.progress < self.progress_at_checkpoint {
            return Err(StepError::fail(
                StepKind::Verify,
                format!(
                    "final progress {} is below {} seen at the last checkpoint",
                    verdict.progress, self.progress_at_checkpoint
                ),
            ));
        }
        Ok(())
    }

    /// A user program's check: run in the working directory; exit 0 = pass.
    fn program_check(&mut self, pid: Pid, check: &[String]) -> Result<(), StepError> {
        if let Some(gone) = self.exited() {
            return Err(self.workload_died(StepKind::Verify, gone));
        }
        let ran = duct::cmd(&check[0], &check[1..])
            .dir(&self.work)
            .env("CRTEST_PID", pid.to_string())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run();
        let line = command::command_line(&check[0], &check[1..]);
        match ran {
            Ok(out) if out.status.success() => {
                self.detail = Some(format!("`{line}` passed"));
                Ok(())
            }
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let mut e = StepError::fail(StepKind::Verify, "the program's check failed");
                e.failure.command = Some(line);
                e.failure.exit_status = out.status.code();
                e.failure.first_error_line = command::tail_lines(&text, 1).pop();
                Err(e)
            }
            Err(err) => {
                let mut e =
                    StepError::fail(StepKind::Verify, format!("cannot run the check: {err}"))
                        .with_outcome(Outcome::Error);
                e.failure.command = Some(line);
                Err(e)
            }
        }
    }

    /// Runs criu; a failure carries the command, status, first error line and errno.
    /// The command's own time is recorded as a substep (`criu dump`, ...), so the harness's
    /// overhead around it can be told apart.
    pub(crate) fn criu(
        &mut self,
        step: StepKind,
        iteration: u32,
        args: &[String],
        log: &Path,
    ) -> Result<Ran, StepError> {
        let ran = command::run(&self.cfg.criu, args, self.step_budget()).map_err(|e| {
            let mut err = StepError::fail(step, e.to_string()).with_outcome(Outcome::Error);
            err.failure.command = Some(e.command.clone());
            err.failure.errno = e.source.raw_os_error().and_then(errno::name);
            err
        })?;
        self.substeps.push(StepRecord {
            step: format!("{}:criu {}", step.as_str(), args[0]),
            iteration,
            ms: ran.elapsed.as_millis() as u64,
            ok: ran.ok(),
        });
        if ran.ok() {
            return Ok(ran);
        }
        let log_text = std::fs::read_to_string(log).unwrap_or_default();
        let first = criu::first_error_line(&log_text).or_else(|| ran.tail(1).pop());
        let errno = first
            .as_deref()
            .and_then(errno::find)
            .or_else(|| errno::find_in(log_text.lines().filter(|l| l.contains("Error"))))
            // What the tools criu runs said on stderr (lines without criu's timestamp).
            .or_else(|| errno::find_in(log_text.lines().filter(|l| !l.starts_with('('))));
        let mut e = StepError::fail(
            step,
            if ran.timed_out {
                format!("criu {} did not finish in time", args[0])
            } else {
                format!("criu {} exited with status {}", args[0], ran.status)
            },
        );
        if ran.timed_out {
            e.outcome = Outcome::Timeout;
        }
        e.failure.command = Some(ran.command.clone());
        e.failure.exit_status = Some(ran.status);
        e.failure.first_error_line = first;
        e.failure.errno = errno;
        crate::expectation::diagnose(&mut e.failure, &crate::diagnose::error_lines(&log_text));
        Err(e)
    }

    pub(crate) fn progress(&self) -> Option<u64> {
        std::fs::read_to_string(self.work.join(PROGRESS_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub(crate) fn verdict(&self) -> Option<Verdict> {
        let text = std::fs::read_to_string(self.work.join(RESULT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The workload's exit status when it has exited (and was collected), else None.
    pub(crate) fn exited(&mut self) -> Option<i32> {
        let pid = self.pid?;
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => {
                self.pid = None;
                Some(code)
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                self.pid = None;
                Some(128 + sig as i32)
            }
            Ok(_) => None,
            // Not our child (any more): it is gone if kill(0) says so.
            Err(_) => kill(pid, None).is_err().then(|| {
                self.pid = None;
                -1
            }),
        }
    }

    pub(crate) fn workload_died(&self, step: StepKind, status: i32) -> StepError {
        let (detail, from) = match self.verdict() {
            Some(v) => (v.detail, "its verdict"),
            None => {
                let log =
                    std::fs::read_to_string(self.work.join("workload.log")).unwrap_or_default();
                (
                    command::tail_lines(&log, 1).pop().unwrap_or_default(),
                    "its log",
                )
            }
        };
        let mut e = StepError::fail(
            step,
            format!("the workload exited with status {status}; {from}: {detail}"),
        );
        e.failure.exit_status = Some(status);
        e.failure.errno = errno::find(&detail);
        e.failure.first_error_line = (!detail.is_empty()).then_some(detail);
        e
    }

    /// Kills whatever is left of the workload's process group and collects it.
    pub(crate) fn cleanup(&mut self) {
        if self.lxc.is_some() {
            // Stops and destroys the container; the workload's pid was the container's.
            crate::lxc::cleanup(self);
        }
        if let Some(pid) = self.pid.take() {
            let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
            let _ = kill(pid, Signal::SIGKILL);
            reap(pid, Duration::from_secs(5));
        }
    }
}

/// Waits for `pid` to exit and collects it; true when it is gone.
pub(crate) fn reap(pid: Pid, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return true,
            Err(_) => return kill(pid, None).is_err(),
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Collects every exited child (orphans re-parented to us). Call between scenarios only,
/// when no command of ours is running.
pub fn reap_orphans() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Copies the scenario's logs (and, when it failed, its images) into the run directory.
fn keep_artifacts(cfg: &ExecConfig, sc: &Scenario, work: &Path, images: bool) -> Vec<String> {
    let rel = Path::new("scenarios").join(&sc.name);
    let dest = cfg.run_dir.join(&rel);
    if std::fs::create_dir_all(&dest).is_err() {
        return Vec::new();
    }
    let mut kept = Vec::new();
    let Ok(entries) = std::fs::read_dir(work) else {
        return kept;
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let n = name.to_string_lossy();
        let src = work.join(&name);
        let wanted =
            n.ends_with(".log") || n.ends_with(".png") || n == RESULT_FILE || n == READY_FILE;
        let images = (n.starts_with("images-") || n.starts_with("pre-")) && images;
        let copied = (wanted && std::fs::copy(&src, dest.join(&name)).is_ok())
            || (images && copy_dir(&src, &dest.join(&name)).is_ok());
        if copied {
            kept.push(rel.join(&name).display().to_string());
        }
    }
    kept
}

fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name()))?;
        }
    }
    Ok(())
}
