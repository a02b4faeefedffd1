//! Runs one scenario's steps: the same code in the guest agent and in `crtest run --host`.
//! It prepares the working directory, hands each step to the scenario's backend
//! ([`crate::exec::backend`], with the `[vnc]` viewer around it), which runs the scenario's
//! target ([`crate::exec::target`]), and keeps the artifacts.

use crate::diagnose::errno;
use crate::diagnose::kmsg::KmsgWindow;
use crate::exec::backend::Backend;
use crate::exec::context::{reap, ExecConfig, Run, StepError};
use crate::exec::vnc_steps::Desktop;
use crate::model::event::Event;
use crate::model::outcome::{Failure, Outcome, Phases, ScenarioResult, StepRecord};
use crate::model::scenario::{Scenario, StepKind};
use crtest_vm::command;
use crtest_workloads::protocol::{READY_FILE, RESULT_FILE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `sc` to its end and returns its result; `emit` receives step events as they happen.
pub fn run_scenario(
    cfg: &ExecConfig,
    sc: &Scenario,
    emit: &mut dyn FnMut(Event),
) -> ScenarioResult {
    let started = Instant::now();
    let mut run = Run::new(cfg, sc, None);
    let (work, target) = (run.work.clone(), run.target);
    let mut steps_of = Steps {
        backend: backend_of(sc),
        desktop: sc.vnc.clone().map(Desktop::new),
    };
    let mut phases = Phases::default();
    let mut steps = Vec::new();
    let mut failure = None;
    let mut outcome = Outcome::Pass;

    if let Some(why) = crate::exec::requires::unmet_in_guest(&sc.requires, &cfg.criu) {
        let mut r = ScenarioResult::without_steps(&sc.name, Outcome::Skip, Failure::default());
        r.failure = None;
        r.detail = Some(why);
        r.tags = sc.tags.clone();
        return r;
    }
    if let Some(why) = target.skip_reason() {
        let mut r = ScenarioResult::without_steps(&sc.name, Outcome::Skip, Failure::default());
        r.failure = None;
        r.detail = Some(why);
        r.tags = sc.tags.clone();
        return r;
    }
    if let Err(f) = prepare_dir(&work)
        .and_then(|()| run.copy_inputs())
        .and_then(|()| guest_commands(&sc.before, "before", &[], None))
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
        let res = steps_of.step(&mut run, planned.kind, planned.iteration);
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
    steps_of.backend.cleanup(&mut run);
    run.cleanup();
    if let Err(f) = guest_commands(&sc.after, "after", &[], None) {
        // Putting things back failed: the guest is not as the next scenario expects.
        if failure.is_none() {
            outcome = Outcome::Error;
            failure = Some(*f);
        }
    }
    steps.append(&mut run.substeps);
    if failure.is_none() {
        if let Some(f) = run
            .visible
            .result
            .as_ref()
            .and_then(crate::exec::visible::failure)
        {
            outcome = Outcome::Fail;
            failure = Some(f);
        }
    }
    if outcome == Outcome::Skip {
        // A step found the scenario cannot run here (an option the RPC cannot carry): the
        // reason is the skip's detail, as for a requirement unmet before the start.
        if let Some(f) = failure.take() {
            run.detail = Some(f.message);
        }
    }
    if let Some(f) = failure.as_mut() {
        crate::model::expectation::diagnose(f, &[]);
    }
    let outcome = crate::model::expectation::apply(&sc.expect, outcome, &mut failure);
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
        screens: steps_of.desktop.and_then(Desktop::into_screens),
        tags: sc.tags.clone(),
        attempts: vec![],
        visible_state: run.visible.result,
        criu_runs: run.criu_runs,
        migration: None,
    }
}

/// Runs a scenario's `before`, `after` or `between` guest commands (with `env`, in `dir`
/// when given); the first failure stops them.
pub(crate) fn guest_commands(
    commands: &[Vec<String>],
    which: &str,
    env: &[(&str, &Path)],
    dir: Option<&Path>,
) -> Result<(), Box<Failure>> {
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
        let mut cmd = command::Cmd::new(program).args(args);
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        if let Some(d) = dir {
            cmd = cmd.dir(d);
        }
        match cmd.run_timed(Duration::from_secs(60), None) {
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

pub(crate) fn prepare_dir(work: &Path) -> Result<(), Box<Failure>> {
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

/// The backend that carries out `sc`'s steps.
fn backend_of(sc: &Scenario) -> Box<dyn Backend> {
    use crate::model::scenario::{Backend as Named, Target};
    match (&sc.target, sc.backend) {
        (Target::External(e), _) => Box::new(crate::exec::external::ExternalRun(e.clone())),
        (Target::Zdtm(z), _) if z.via_zdtm_py => Box::new(crate::exec::zdtm_py::ZdtmPy(z.clone())),
        (_, Named::Lxc) => Box::new(crate::exec::lxc::Lxc::default()),
        (_, Named::Podman | Named::Runc | Named::Crun) => {
            Box::new(crate::exec::oci::Oci::default())
        }
        (_, Named::Criu) => Box::new(crate::exec::criu::Criu),
    }
}

/// What carries out a scenario's steps: its backend, and the viewer of a `[vnc]` scenario
/// around it.
struct Steps {
    backend: Box<dyn Backend>,
    desktop: Option<Desktop>,
}

impl Steps {
    fn step(&mut self, run: &mut Run, kind: StepKind, iteration: u32) -> Result<(), StepError> {
        if Instant::now() >= run.deadline {
            return Err(StepError::fail(
                kind,
                format!("scenario time limit of {} s reached", run.sc.timeout_s),
            )
            .with_outcome(Outcome::Timeout));
        }
        if let Some(d) = self.desktop.as_mut() {
            d.before_step(run, kind, iteration)?;
        }
        self.backend.step(run, kind, iteration)?;
        match self.desktop.as_mut() {
            Some(d) => d.after_step(run, kind, iteration),
            None => Ok(()),
        }
    }
}

impl Run<'_> {
    /// The scenario's `between` commands, before a restore from `images`: in the working
    /// directory, with `CRTEST_IMAGES` set; a failure is the restore step's.
    pub(crate) fn between(&self, images: &Path) -> Result<(), StepError> {
        let env = [("CRTEST_IMAGES", images)];
        guest_commands(&self.sc.between, "between", &env, Some(&self.work)).map_err(|mut f| {
            f.step = StepKind::Restore.as_str().into();
            StepError {
                outcome: Outcome::Fail,
                failure: f,
            }
        })
    }

    /// Copies a user program's files into the working directory. The host puts them in
    /// `<run_dir>/inputs/<scenario>/` for the guest; on the host they are read in place.
    pub(crate) fn copy_inputs(&self) -> Result<(), Box<Failure>> {
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
            crate::model::confine::copy_nofollow(&src, &dest).map_err(|e| {
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

    /// Puts back what the target changed and kills whatever is left of the workload's
    /// process group and collects it (after the backend's own cleanup).
    pub(crate) fn cleanup(&mut self) {
        let target = self.target;
        target.cleanup(self);
        if let Some(pid) = self.pid.take() {
            let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
            let _ = kill(pid, Signal::SIGKILL);
            reap(pid, Duration::from_secs(5));
        }
        if let Some(cg) = self.visible.cgroup.take() {
            cg.remove();
        }
    }
}

/// Copies the scenario's logs (and, when it failed, its images) into the run directory:
/// regular files only, no symlink followed.
pub(crate) fn keep_artifacts(
    cfg: &ExecConfig,
    sc: &Scenario,
    work: &Path,
    images: bool,
) -> Vec<String> {
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
        let wanted = n.ends_with(".log")
            || n.ends_with(".png")
            || n.ends_with(".out")
            || n == RESULT_FILE
            || n == READY_FILE;
        let images = (n.starts_with("images-") || n.starts_with("pre-")) && images;
        // Never through a symlink: what a workload links to is not its own file to keep.
        let copied = (wanted
            && crate::model::confine::copy_nofollow(&src, &dest.join(&name)).is_ok())
            || (images && copy_dir(&src, &dest.join(&name)).is_ok());
        if copied {
            kept.push(rel.join(&name).display().to_string());
        }
    }
    kept
}

/// Copies the regular files of the directory `src` (itself not a symlink) into `dest`.
fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    if !std::fs::symlink_metadata(src)?.is_dir() {
        return Err(std::io::Error::from_raw_os_error(nix::libc::ENOTDIR));
    }
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Runs the scenario of file `NAME.toml` holding `toml` on the host, in a fresh temporary
/// directory (`work/` for the working directories, `run/` for the kept files).
#[cfg(test)]
pub(crate) fn run_on_host(name: &str, toml: &str) -> (ScenarioResult, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sc = Scenario::parse(&dir.path().join(format!("{name}.toml")), toml)
        .unwrap()
        .remove(0);
    let cfg = ExecConfig {
        work_root: dir.path().join("work"),
        run_dir: dir.path().join("run"),
        bin_dir: dir.path().into(),
        criu: "criu".into(),
        keep_images: false,
    };
    (run_scenario(&cfg, &sc, &mut |_| {}), dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::context::CHECK_LOG;

    /// A `[program]` scenario without a checkpoint, on the host: start, ready, check.
    fn program(check: &str) -> (ScenarioResult, tempfile::TempDir) {
        let toml = format!(
            "description = \"d\"\nsteps = [\"start\", \"wait-ready\", \"verify\"]\n\
             [program]\ncommand = [\"sh\", \"-c\", \"touch up; exec sleep 30\"]\n\
             ready = \"file:up\"\ncheck = [\"sh\", \"-c\", {check:?}]\n"
        );
        run_on_host("prog", &toml)
    }

    #[test]
    fn a_program_check_keeps_its_output_and_shows_its_last_line() {
        let (r, dir) = program("echo checking; echo all 3 files match");
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert!(
            r.detail
                .as_deref()
                .unwrap()
                .ends_with("passed: all 3 files match"),
            "{r:?}"
        );
        let kept = dir.path().join("run/scenarios/prog").join(CHECK_LOG);
        assert_eq!(
            std::fs::read_to_string(kept).unwrap(),
            "checking\nall 3 files match\n"
        );
        assert!(r.artifacts.iter().any(|a| a.ends_with(CHECK_LOG)));
    }

    #[test]
    fn a_failing_program_check_names_its_last_line() {
        let (r, dir) = program("echo file b differs >&2; exit 4");
        assert_eq!(r.outcome, Outcome::Fail, "{r:?}");
        let f = r.failure.unwrap();
        assert_eq!(f.exit_status, Some(4));
        assert_eq!(f.first_error_line.as_deref(), Some("file b differs"));
        assert!(dir
            .path()
            .join("run/scenarios/prog")
            .join(CHECK_LOG)
            .exists());
    }
}
