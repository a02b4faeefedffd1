//! The steps of an OCI scenario: the container started (podman from the base image, runc or
//! crun from a bundle), the workload found inside it, checkpointed and restored by the
//! tool in the scenario's mode and carry (in place, exported archive, checkpoint image),
//! verified, and everything removed.

use super::argv::{self, Carry, Dump};
use super::output::{self, State};
use super::root::{self, OCI_DIR};
use super::state::Container;
use super::tools::{failed, log_command, note, quiet, record, tool};
use crate::exec::context::{Run, StepError};
use crate::exec::nstree;
use crate::exec::visible::{capture, freeze, Which};
use crate::model::outcome::{CriuMeasure, Outcome};
use crate::model::scenario::{Backend, StepKind};
use crate::model::visible::Ignore;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the "after" side of a dump that left the container running is read.
const AS_LEFT: &str = "frozen: criu leaves the container's cgroup as it found it";

/// How long the container may take to reach the state a step expects.
const STATE_WAIT: Duration = Duration::from_secs(30);

/// The container name of a scenario: `crtest-` and its name, `@`, `=` and `+` made `_`.
pub(super) fn container_name(scenario: &str) -> String {
    let tail: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("crtest-{tail}")
}

// ---- start ----

pub(super) fn start(run: &mut Run, slot: &mut Option<Container>) -> Result<(), StepError> {
    let step = StepKind::Start;
    let backend = run.sc.backend;
    let opts = run.sc.oci.clone().unwrap_or_default();
    let runtime = opts.runtime_of(backend);
    if let Some(why) = root::cannot_checkpoint(runtime.as_str()) {
        return Err(StepError::fail(step, why).with_outcome(Outcome::Skip));
    }
    let name = container_name(&run.sc.name);
    let c = slot.insert(Container {
        backend,
        runtime,
        opts,
        name: name.clone(),
        made: vec![name.clone()],
        images_made: Vec::new(),
        bundle: None,
        init: None,
        app: None,
        tree: Vec::new(),
        phase: step.as_str(),
        iteration: 1,
    });
    // Left over from an earlier scenario of this boot with the same name.
    remove(c);
    run.visible.relax.extend(relaxations(backend, &c.opts));
    let (program, args) = run.command();
    let launcher = run.work.join("oci-launch");
    let script = crate::exec::lxc::config::launcher_script(&run.work, &program, &args);
    std::fs::write(&launcher, script).map_err(|e| {
        StepError::fail(step, format!("cannot write {}: {e}", launcher.display()))
            .with_outcome(Outcome::Error)
    })?;
    let command = vec!["/bin/sh".to_string(), launcher.display().to_string()];
    let binds = root::binds(&run.cfg.bin_dir, &run.work);
    let ran = if backend == Backend::Podman {
        root::base_image()
            .map_err(|e| StepError::fail(step, e.to_string()).with_outcome(Outcome::Error))?;
        let args = argv::podman_run(&name, runtime, &c.opts, &binds, &command);
        tool(run, c, step, "podman", &args)?
    } else {
        let bundle = Path::new(OCI_DIR).join(&name);
        let spec = argv::BundleSpec {
            hostname: &name,
            command: &command,
            binds: &binds,
        };
        root::bundle(&bundle, &spec).map_err(|e| {
            StepError::fail(step, format!("cannot write the bundle: {e}"))
                .with_outcome(Outcome::Error)
        })?;
        let args = argv::runtime_run(&name, &bundle, &bundle.join("pid"));
        c.bundle = Some(bundle);
        tool(run, c, step, c.program(), &args)?
    };
    if !ran.ok() {
        return Err(failed(run, step, &ran, None, "start", 1));
    }
    let state = wait_state(run, c, step, true)?;
    c.init = Some(Pid::from_raw(state.pid));
    Ok(())
}

/// Where podman keeps a container's own files, bound into it: a container made again by an
/// import or from a checkpoint image has them (and its root's overlay layers) in its own
/// storage.
const PODMAN_OWN_MOUNTS: &[&str] = &[
    "/",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/run/.containerenv",
];

/// What an OCI runtime restores otherwise by design, each with why.
fn relaxations(backend: Backend, opts: &crate::model::scenario::OciOptions) -> Vec<Ignore> {
    let masked = "the runtime masks this path with the container's /dev/null and restores the \
                  mask from the host's (runc's external mounts of masked paths): the same null \
                  device, another source";
    let mut v: Vec<Ignore> = argv::MASKED_FILES
        .iter()
        .map(|p| Ignore {
            item: format!("mounts.{p}"),
            reason: masked.into(),
        })
        .collect();
    if backend == Backend::Podman {
        v.push(Ignore {
            item: "mounts./".into(),
            reason: "podman mounts the container's root itself before the restore \
                     (containers/storage), with options of its own (trixie's podman 5 drops \
                     overlay's `uuid=on`): criu takes the root as given"
                .into(),
        });
    }
    if opts.export.is_some() || opts.create_image {
        let cgroup = "an imported container (or one made from a checkpoint image) is a new \
                      container: podman gives it a cgroup of its own id (sid's podman 5.8)";
        v.push(Ignore {
            item: "cgroup".into(),
            reason: cgroup.into(),
        });
        v.push(Ignore {
            item: "mounts./sys/fs/cgroup".into(),
            reason: cgroup.into(),
        });
        v.extend(PODMAN_OWN_MOUNTS.iter().map(|p| {
            Ignore {
                item: format!("mounts.{p}"),
                reason: "an imported container (or one made from a checkpoint image) is a new \
                     container: its root's overlay layers and podman's files for it live in its \
                     own storage"
                    .into(),
            }
        }));
    }
    v.push(Ignore {
        item: "fds.pos".into(),
        reason: "the runtime resumes the restored tree before the harness can read it (criu \
                 runs no action script under the runtime's RPC notifications): a position the \
                 workload moves on its own has moved on"
            .into(),
    });
    v
}

/// The container's state as its tool says it; `None` when the tool cannot tell (the
/// container is gone).
fn state(c: &Container) -> Option<State> {
    let podman = c.backend == Backend::Podman;
    let args = if podman {
        argv::podman_inspect(&c.name)
    } else {
        argv::runtime_state(&c.name)
    };
    let ran = quiet(
        c.program(),
        &args,
        c.runtime.as_str(),
        Duration::from_secs(30),
    )?;
    if !ran.ok() {
        return None;
    }
    if podman {
        output::podman_state(&ran.output)
    } else {
        output::runtime_state(&ran.output)
    }
}

/// Polls the container until it runs (`running`) or has stopped (not), one sub-step for
/// the wait; a container that stops when it should run fails the step with the workload's
/// own verdict or log line.
fn wait_state(
    run: &mut Run,
    c: &mut Container,
    step: StepKind,
    running: bool,
) -> Result<State, StepError> {
    let t = Instant::now();
    let limit = t + STATE_WAIT.min(run.step_budget().max(Duration::from_secs(5)));
    loop {
        let now = state(c);
        let reached = match &now {
            Some(s) => s.running() == running,
            // A container the runtime no longer knows has stopped.
            None => !running,
        };
        let stopped = running
            && now
                .as_ref()
                .is_some_and(|s| s.status != "running" && s.status != "created");
        if reached || stopped || Instant::now() >= limit {
            record(run, c, "state", t, reached);
            let seen = now.as_ref().map_or("gone".to_string(), |s| {
                format!("{} (pid {})", s.status, s.pid)
            });
            log_command(
                run,
                &format!("{} state {}", c.program(), c.name),
                Some((0, t.elapsed().as_millis() as u64)),
                &format!(
                    "{seen} (waited for {})",
                    if running { "running" } else { "stopped" }
                ),
            );
            if reached {
                return Ok(now.unwrap_or(State {
                    status: "gone".into(),
                    pid: 0,
                }));
            }
            let mut e = StepError::fail(
                step,
                format!(
                    "the container is {seen} where {} was expected",
                    if running { "running" } else { "stopped" }
                ),
            );
            if let Some(v) = run.verdict().filter(|v| !v.ok) {
                e.failure.message = format!(
                    "the container stopped: the workload's check failed: {}",
                    v.detail
                );
                e.failure.first_error_line = Some(v.detail);
            } else {
                let log =
                    std::fs::read_to_string(run.work.join("workload.log")).unwrap_or_default();
                e.failure.first_error_line = crtest_vm::command::tail_lines(&log, 1).pop();
                e.failure.errno = e
                    .failure
                    .first_error_line
                    .as_deref()
                    .and_then(crate::diagnose::errno::find);
            }
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alive(c: &Container) -> bool {
    c.init.is_some_and(|p| kill(p, None).is_ok())
}

// ---- wait-ready ----

pub(super) fn wait_ready(run: &mut Run, c: &mut Container) -> Result<(), StepError> {
    let step = StepKind::WaitReady;
    if let Some(ready) = run.target.ready_file(run)? {
        let gone = !alive(c);
        run.wait_for_file(&ready, |_| {
            (gone || !alive(c)).then(|| {
                StepError::fail(step, "the container stopped before the workload was ready")
            })
        })?;
    }
    let state = wait_state(run, c, step, true)?;
    let init = Pid::from_raw(state.pid);
    c.init = Some(init);
    // The workload names its pid as it sees it: inside the container. A target that names
    // no root (a program) is the container's init, or its child under `--init`.
    let named = run.target.named_root(run);
    let parent = if c.opts.init { 1 } else { 0 };
    let (app, host, holds) = nstree::find_workload(init, named, parent)
        .map_err(|e| StepError::fail(step, e.to_string()))?;
    note(
        run,
        &format!(
            "workload: pid {app} inside the container is host pid {host}; the container: {holds}"
        ),
    );
    c.app = Some(app);
    run.pid = Some(host);
    Ok(())
}

fn check_tree(run: &mut Run, c: &mut Container, step: StepKind) -> Result<(), StepError> {
    let init = c.init.expect("a running container has an init");
    let now = nstree::same_tree(&c.tree, init).map_err(|e| StepError::fail(step, e.to_string()))?;
    note(run, &format!("after the restore: {now}"));
    Ok(())
}

// ---- checkpoint ----

/// Where a podman checkpoint of `iteration` goes besides podman's storage.
enum Carried {
    InPlace,
    Export(PathBuf),
    Image(String),
}

impl Carried {
    fn of(c: &Container, run: &Run, iteration: u32) -> Carried {
        if let Some(comp) = c.opts.export {
            Carried::Export(
                run.work
                    .join(format!("checkpoint-{iteration}.{}", comp.extension())),
            )
        } else if c.opts.create_image {
            Carried::Image(format!("localhost/{}-checkpoint:{iteration}", c.made[0]))
        } else {
            Carried::InPlace
        }
    }

    fn carry(&self) -> Carry<'_> {
        match self {
            Carried::InPlace => Carry::InPlace,
            Carried::Export(p) => Carry::Export(p),
            Carried::Image(i) => Carry::Image(i),
        }
    }
}

pub(super) fn checkpoint(
    run: &mut Run,
    c: &mut Container,
    iteration: u32,
) -> Result<(), StepError> {
    let step = StepKind::Checkpoint;
    let (init, tree, seen) = nstree::before_checkpoint(run, c.init)?;
    note(run, &seen);
    c.tree = tree;
    let images = run.work.join(format!("images-{iteration}"));
    run.mkdir(&images)?;
    let mode = run.sc.mode;
    if mode.leave_running {
        // Read frozen; criu leaves a cgroup it found frozen so: read again, then thawed.
        let cg = freeze::cgroup_of(init.as_raw());
        let _thaw = cg.as_deref().map(freeze::thaw_on_drop);
        read_before(run, cg.as_deref(), init, iteration);
        dump(run, c, iteration, &images, Dump::LeaveRunning)?;
        let still = cg.as_deref().map(freeze::wait_frozen);
        let after = match still {
            Some(Ok(())) => capture::frozen(init, AS_LEFT),
            _ => {
                run.note_visible("criu did not leave the container frozen".into());
                capture::running_against_frozen(init)
            }
        };
        run.visible_side(Which::After, after, iteration);
        drop(_thaw);
        let s = wait_state(run, c, step, true)?;
        if s.pid != init.as_raw() {
            return Err(StepError::fail(
                step,
                format!(
                    "the container's init was {init} before the dump and is {} after it",
                    s.pid
                ),
            ));
        }
        check_tree(run, c, step)?;
        return run.continuity(step);
    }
    let parent = format!("../pre-{iteration}");
    let how = if mode.pre > 0 {
        let pre = run.work.join(format!("pre-{iteration}"));
        run.mkdir(&pre)?;
        dump(run, c, iteration, &pre, Dump::PreDump)?;
        wait_state(run, c, step, true)?;
        Dump::AfterPreDump(&parent)
    } else {
        Dump::Stop
    };
    let cg = freeze::cgroup_of(init.as_raw());
    // Thawed whatever happens: a failed dump leaves the container running.
    let _thaw = cg.as_deref().map(freeze::thaw_on_drop);
    read_before(run, cg.as_deref(), init, iteration);
    dump(run, c, iteration, &images, how)?;
    stopped(run, c, step)
}

/// The "before" side: the container frozen in its cgroup and read as criu will find it
/// (criu freezes a runtime's container through that cgroup, and leaves one it found frozen
/// as it was); read running where there is no cgroup to freeze.
fn read_before(run: &mut Run, cg: Option<&Path>, init: Pid, iteration: u32) {
    match cg {
        Some(cg) => run.visible_frozen_in(cg, init, iteration),
        None => {
            run.note_visible("the container has no cgroup of its own to freeze".into());
            run.visible_running(Which::Before, init, iteration)
        }
    }
}

/// After a dump that stops the container: it has stopped, its pids are free; a carried
/// checkpoint leaves no container behind (removed, as a move does), unless the restore
/// makes a copy beside it.
fn stopped(run: &mut Run, c: &mut Container, step: StepKind) -> Result<(), StepError> {
    wait_state(run, c, step, false)?;
    c.init = None;
    run.pid = None;
    let carried = c.opts.export.is_some() || c.opts.create_image;
    if c.backend == Backend::Podman && carried && !c.opts.new_name {
        let args = argv::podman_rm(&c.name);
        let ran = tool(run, c, step, "podman", &args)?;
        if !ran.ok() {
            return Err(failed(run, step, &ran, None, "rm", c.iteration));
        }
    }
    Ok(())
}

/// One checkpoint by the container's tool: podman into its storage (and the carry), runc
/// or crun into `dir`. criu's figures go to run.json.
fn dump(
    run: &mut Run,
    c: &mut Container,
    iteration: u32,
    dir: &Path,
    how: Dump,
) -> Result<(), StepError> {
    let step = StepKind::Checkpoint;
    let carried = Carried::of(c, run, iteration);
    let args = match c.backend {
        Backend::Podman => argv::podman_checkpoint(&c.name, &c.opts, how, carried.carry()),
        _ => argv::runtime_checkpoint(&c.name, &c.opts, dir, how),
    };
    let ran = tool(run, c, step, c.program(), &args)?;
    let action = if how == Dump::PreDump {
        "pre-dump"
    } else {
        "dump"
    };
    if !ran.ok() {
        let log = criu_log(c, dir, action);
        return Err(failed(run, step, &ran, log.as_deref(), action, iteration));
    }
    if let Carried::Image(i) = &carried {
        c.images_made.push(i.clone());
    }
    if let Carried::Export(f) = &carried {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        note(run, &format!("exported {} ({size} bytes)", f.display()));
        if size == 0 {
            return Err(StepError::fail(
                step,
                format!(
                    "{} said it exported {} but the file is missing or empty",
                    c.program(),
                    f.display()
                ),
            ));
        }
    }
    let _ = std::fs::copy(
        dir.join(format!("{action}.log")),
        run.work.join(format!("{action}-{iteration}.log")),
    );
    measure(run, c, action, iteration, dir, &ran);
    Ok(())
}

/// What the checkpoint or restore measured: podman's `--print-stats`, or criu's own
/// statistics file in the images of a runtime run alone.
fn measure(
    run: &mut Run,
    c: &Container,
    action: &str,
    iteration: u32,
    dir: &Path,
    ran: &crtest_vm::command::Ran,
) {
    let mut m = CriuMeasure {
        action: action.into(),
        iteration,
        ms: ran.elapsed.as_millis() as u64,
        via: c.via(),
        ..CriuMeasure::default()
    };
    if c.backend == Backend::Podman {
        if let Some(s) = output::podman_stats(&ran.output) {
            m.dump = s.dump;
            m.restore = s.restore;
            m.engine_us = s.engine_us;
            m.runtime_us = s.runtime_us;
        }
    } else if action == "restore" {
        m.restore = crate::ckpt::dir::restore_stats(dir)
            .ok()
            .flatten()
            .map(Into::into);
    } else {
        m.dump = crate::ckpt::dir::dump_stats(dir)
            .ok()
            .flatten()
            .map(Into::into);
    }
    run.criu_runs.push(m);
}

/// Where criu's log of `action` is: in the images of a runtime run alone, in podman's
/// storage for the container (`userdata/`, which newer runtimes do not name in their error).
fn criu_log(c: &Container, dir: &Path, action: &str) -> Option<PathBuf> {
    let file = format!("{action}.log");
    if c.backend != Backend::Podman {
        return Some(dir.join(file));
    }
    let args = [
        "inspect".to_string(),
        "--type".into(),
        "container".into(),
        "--format".into(),
        "{{.StaticDir}}".into(),
        c.name.clone(),
    ];
    quiet("podman", &args, c.runtime.as_str(), Duration::from_secs(30))
        .filter(|r| r.ok())
        .map(|r| PathBuf::from(r.output.trim()).join(file))
}

// ---- restore ----

pub(super) fn restore(run: &mut Run, c: &mut Container, iteration: u32) -> Result<(), StepError> {
    let step = StepKind::Restore;
    let images = run.work.join(format!("images-{iteration}"));
    let carried = Carried::of(c, run, iteration);
    let args = match c.backend {
        Backend::Podman => {
            let new_name = match &carried {
                Carried::Export(_) if c.opts.new_name => {
                    Some(format!("{}-copy{iteration}", c.made[0]))
                }
                Carried::Image(_) => Some(c.name.clone()),
                _ => None,
            };
            if let Some(n) = new_name.as_ref().filter(|n| **n != c.name) {
                c.name = n.clone();
                c.made.push(n.clone());
            }
            argv::podman_restore(&c.name, &c.opts, carried.carry(), new_name.as_deref())
        }
        _ => {
            let bundle = c.bundle.clone().expect("a runtime alone has a bundle");
            argv::runtime_restore(&c.name, &c.opts, &bundle, &images, &bundle.join("pid"))
        }
    };
    let ran = tool(run, c, step, c.program(), &args)?;
    if !ran.ok() {
        return Err(failed(
            run,
            step,
            &ran,
            criu_log(c, &images, "restore").as_deref(),
            "restore",
            iteration,
        ));
    }
    let _ = std::fs::copy(
        images.join("restore.log"),
        run.work.join(format!("restore-{iteration}.log")),
    );
    measure(run, c, "restore", iteration, &images, &ran);
    let state = wait_state(run, c, step, true)?;
    let init = Pid::from_raw(state.pid);
    c.init = Some(init);
    // The runtime resumes the tree before it returns: read running, states folded as the
    // frozen "before" side's.
    let after = capture::running_against_frozen(init);
    run.visible_side(Which::After, after, iteration);
    let app = c.app.expect("ready before checkpoint");
    let host =
        nstree::workload_back(init, app).map_err(|e| StepError::fail(step, e.to_string()))?;
    note(
        run,
        &format!("restored: the workload (pid {app} inside) is host pid {host}"),
    );
    run.pid = Some(host);
    check_tree(run, c, step)?;
    if c.opts.keep && c.backend == Backend::Podman {
        kept(run, c, step)?;
    }
    run.continuity(step)
}

/// With `--keep`, criu's files are still in the container's storage after the restore.
fn kept(run: &mut Run, c: &Container, step: StepKind) -> Result<(), StepError> {
    let Some(restore_log) = criu_log(c, Path::new(""), "restore") else {
        return Ok(());
    };
    let there = restore_log.exists();
    note(
        run,
        &format!(
            "--keep: {} {}",
            restore_log.display(),
            if there { "kept" } else { "missing" }
        ),
    );
    if there {
        Ok(())
    } else {
        Err(StepError::fail(
            step,
            format!(
                "podman restored with --keep but criu's log {} is gone",
                restore_log.display()
            ),
        ))
    }
}

// ---- verify ----

pub(super) fn verify(run: &mut Run, c: &mut Container) -> Result<(), StepError> {
    let step = StepKind::Verify;
    if run.pid.is_none() {
        return Err(StepError::fail(
            step,
            "no workload to verify: the checkpoint stopped the container and nothing restored it",
        ));
    }
    let target = run.target;
    target.verify(run)?;
    if target.ends_at_verify() && !c.opts.init {
        // The container ends with its application.
        wait_state(run, c, step, false)?;
    }
    Ok(())
}

// ---- cleanup ----

/// Removes every container and image the scenario made, and the bundle; never fails.
pub(super) fn cleanup(run: &mut Run, c: &mut Container) {
    c.phase = "cleanup";
    let t = Instant::now();
    remove(c);
    record(run, c, "remove", t, true);
    // The container's pids are not ours to signal any more.
    run.pid = None;
}

fn remove(c: &Container) {
    let limit = Duration::from_secs(60);
    match c.backend {
        Backend::Podman => {
            for n in &c.made {
                let _ = quiet("podman", &argv::podman_rm(n), c.runtime.as_str(), limit);
            }
            for i in &c.images_made {
                let _ = quiet(
                    "podman",
                    &["rmi".into(), "-f".into(), i.clone()],
                    c.runtime.as_str(),
                    limit,
                );
            }
        }
        _ => {
            let _ = quiet(
                c.program(),
                &argv::runtime_delete(&c.name),
                c.runtime.as_str(),
                limit,
            );
            if let Some(b) = &c.bundle {
                let _ = std::fs::remove_dir_all(b);
            }
        }
    }
}
