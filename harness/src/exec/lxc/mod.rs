//! The `lxc` backend: the workload runs in an LXC container; `lxc-checkpoint` (criu
//! underneath) checkpoints and restores the whole container.
//!
//! - **start**: a small rootfs under `/var/lib/lxc/NAME/` (the guest's `/usr` bound
//!   read-only, the workload binaries and the working directory bound at their guest paths),
//!   its `config`, then `lxc-start -d` (PID 1 `init.lxc` or `busybox init` runs the launcher)
//!   or `lxc-execute` (liblxc's own init runs it).
//! - **wait-ready**: the workload's `ready` names its pid *inside* the container; the
//!   harness maps it to the host pid through `/proc` (`NSpid`) below the init `lxc-info -p`
//!   names, and signals only host pids.
//! - **checkpoint**: `lxc-checkpoint -s -D images-N` (without `-s` for `leave-running`;
//!   `-p` then `--predump-dir` for `pre-dump`); the container must be `STOPPED` after.
//! - **restore**: `lxc-checkpoint -r -D images-N`; the container must be `RUNNING` with the
//!   same process tree (pids as seen inside, parents, names); with `pause-after-restore` it
//!   is frozen at once, shown to stand still (`lxc-info`, cgroup2 `cgroup.freeze` and
//!   `cgroup.events`, and its progress), and thawed; then the workload must go on.
//! - **verify**: SIGTERM to the workload's host pid, its verdict, and the container stops
//!   when its application exits.
//! - **cleanup**: `lxc-stop -k`, lxc's own log kept, `lxc-destroy`.
//!
//! Every `lxc-*` command is logged with its output in `lxc-commands.log` and timed as a
//! sub-step (`checkpoint:lxc-checkpoint`, ...) in the scenario's steps.

pub mod config;
pub mod state;
mod tools;

use crate::diagnose::errno;
use crate::exec::backend::Backend;
use crate::exec::context::{Run, StepError};
use crate::exec::lxc::config::{self as conf, Dump, Info};
use crate::exec::lxc::state::Container;
use crate::exec::lxc::tools::{
    keep_log, log_command, note, record, tool, tool_env, tool_failed, tool_quiet, wait_state,
};
use crate::exec::nstree;
use crate::exec::visible::freeze;
use crate::exec::visible::moment::{Moment, Reads};
use crate::exec::visible::Which;
use crate::model::outcome::Outcome;
use crate::model::scenario::{LxcInit, LxcMode, LxcNetwork, LxcOptions, StepKind};
use crtest_vm::command;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the container may take to reach the state a step expects.
const STATE_WAIT: Duration = Duration::from_secs(30);
/// How long a frozen container is watched for progress it must not make.
const FROZEN_WATCH: Duration = Duration::from_millis(1500);
/// Where the guest mounts cgroup2.
const CGROUP2: &str = "/sys/fs/cgroup";

#[derive(Debug, thiserror::Error)]
pub enum LxcError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LxcError + 'a {
    move |source| LxcError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The lxc backend; it owns the scenario's container once `start` made it.
#[derive(Default)]
pub(crate) struct Lxc {
    container: Option<Container>,
}

impl Backend for Lxc {
    fn step(&mut self, run: &mut Run, kind: StepKind, iteration: u32) -> Result<(), StepError> {
        if kind == StepKind::Start {
            return start(run, &mut self.container);
        }
        let Some(c) = self.container.as_mut() else {
            return Err(StepError::fail(
                kind,
                "no container: the scenario's steps do not begin with `start`",
            ));
        };
        c.phase = kind.as_str();
        c.iteration = iteration;
        match kind {
            StepKind::Start => unreachable!("handled above"),
            StepKind::WaitReady => wait_ready(run, c),
            StepKind::Checkpoint => checkpoint(run, c, iteration),
            StepKind::Restore => restore(run, c, iteration),
            StepKind::Verify => verify(run, c),
            StepKind::Run => Err(StepError::fail(kind, "`run` needs an `[external]` test")),
        }
    }

    /// Stops and destroys the container; the workload's pid was the container's.
    fn cleanup(&mut self, run: &mut Run) {
        if let Some(mut c) = self.container.take() {
            cleanup(run, &mut c);
        }
    }
}

// ---- start ----

fn start(run: &mut Run, slot: &mut Option<Container>) -> Result<(), StepError> {
    let opts = run.sc.lxc.clone().unwrap_or_default();
    let name = conf::container_name(&run.sc.name);
    let dir = Path::new(conf::LXC_PATH).join(&name);
    let log = dir.join("lxc.log");
    let t = Instant::now();
    if dir.exists() {
        // Left over from an earlier scenario of this boot with the same container name.
        let _ = tool_quiet("lxc-stop", &conf::stop_args(&name));
        let _ = tool_quiet("lxc-destroy", &conf::name_args(&name));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (program, args) = run.command();
    let made = create(run, &name, &dir, &log, &opts, &program, &args);
    let c = slot.insert(Container {
        name: name.clone(),
        dir,
        log,
        opts: opts.clone(),
        execute: None,
        init: None,
        app: None,
        tree: Vec::new(),
        phase: StepKind::Start.as_str(),
        iteration: 1,
    });
    record(run, c, "create", t, made.is_ok());
    made.map_err(|e| {
        StepError::fail(
            StepKind::Start,
            format!("cannot create container {name}: {e}"),
        )
        .with_outcome(Outcome::Error)
    })?;
    match opts.mode {
        LxcMode::Start => {
            let ran = tool(
                run,
                c,
                StepKind::Start,
                "lxc-start",
                &conf::start_args(&name),
            )?;
            if !ran.ok() {
                return Err(tool_failed(c, StepKind::Start, &ran, None));
            }
        }
        LxcMode::Execute => {
            let out = run.work.join("lxc-execute.log");
            let file = std::fs::File::create(&out).map_err(|e| {
                StepError::fail(
                    StepKind::Start,
                    format!("cannot create {}: {e}", out.display()),
                )
                .with_outcome(Outcome::Error)
            })?;
            let args = conf::execute_args(&name);
            let line = command::command_line("lxc-execute", &args);
            log_command(run, &line, None, "(runs until the container stops)");
            let child = std::process::Command::new("lxc-execute")
                .args(&args)
                .stdin(std::process::Stdio::null())
                .stdout(file.try_clone().expect("dup of a fresh file"))
                .stderr(file)
                .spawn()
                .map_err(|e| {
                    let mut err =
                        StepError::fail(StepKind::Start, format!("cannot start `{line}`: {e}"))
                            .with_outcome(Outcome::Error);
                    err.failure.command = Some(line.clone());
                    err.failure.errno = e.raw_os_error().and_then(errno::name);
                    err
                })?;
            c.execute = Some(child);
        }
    }
    let info = wait_state(run, c, StepKind::Start, "RUNNING")?;
    c.init = info.pid.map(Pid::from_raw);
    check_address(c, StepKind::Start, &info)
}

/// A veth container holds its address on `eth0` (lxc-info lists it).
fn check_address(c: &mut Container, step: StepKind, info: &Info) -> Result<(), StepError> {
    if c.opts.network != LxcNetwork::Veth || info.ips.iter().any(|ip| ip == conf::container_ip()) {
        return Ok(());
    }
    Err(StepError::fail(
        step,
        format!(
            "the container's veth has no address {} (lxc-info shows {})",
            conf::container_ip(),
            if info.ips.is_empty() {
                "none".to_string()
            } else {
                info.ips.join(", ")
            }
        ),
    ))
}

/// Writes the container's rootfs, launcher and config.
fn create(
    run: &Run,
    name: &str,
    dir: &Path,
    log: &Path,
    opts: &LxcOptions,
    program: &Path,
    args: &[String],
) -> Result<(), LxcError> {
    let rootfs = dir.join("rootfs");
    for d in conf::ROOTFS_DIRS {
        let p = rootfs.join(d);
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
    }
    for (link, to) in conf::ROOTFS_LINKS {
        let p = rootfs.join(link);
        std::os::unix::fs::symlink(to, &p).map_err(io("create the link", &p))?;
    }
    for f in conf::ETC_FILES {
        let (from, to) = (Path::new("/etc").join(f), rootfs.join("etc").join(f));
        if from.exists() {
            std::fs::copy(&from, &to).map_err(io("copy to", &to))?;
        }
    }
    let launcher = rootfs.join(conf::LAUNCHER.trim_start_matches('/'));
    write(
        &launcher,
        &conf::launcher_script(&run.work, program, args),
        0o755,
    )?;
    if opts.pid1() == LxcInit::Busybox {
        write(&rootfs.join("etc/inittab"), &conf::inittab(), 0o644)?;
    }
    let text = conf::config_text(&conf::ConfigSpec {
        name,
        scenario: &run.sc.name,
        rootfs: &rootfs,
        bin_dir: &run.cfg.bin_dir,
        work: &run.work,
        log_file: log,
        init: opts.pid1(),
        network: opts.network,
    });
    write(&dir.join("config"), &text, 0o644)?;
    // The config is worth keeping with the results.
    write(&run.work.join("lxc-config.log"), &text, 0o644)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), LxcError> {
    std::fs::write(path, text).map_err(io("write", path))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(io("chmod", path))
}

// ---- wait-ready ----

fn wait_ready(run: &mut Run, c: &mut Container) -> Result<(), StepError> {
    if let Some(ready) = run.target.ready_file(run)? {
        run.wait_for_file(&ready, |run| {
            (!container_alive(c))
                .then(|| died(run, c, StepKind::WaitReady, "before the workload was ready"))
        })?;
    }
    if !container_alive(c) {
        return Err(died(
            run,
            c,
            StepKind::WaitReady,
            "before the workload was ready",
        ));
    }
    wait_state(run, c, StepKind::WaitReady, "RUNNING")?;
    let init = c.init.expect("a running container has an init");
    // The workload names its pid as it sees it: inside the container.
    // A target that names no root (a program) is the init's child.
    let named = run.target.named_root(run);
    let (app, host, holds) = nstree::find_workload(init, named, 1)
        .map_err(|e| StepError::fail(StepKind::WaitReady, e.to_string()))?;
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

/// Whether the container's init still runs (and `lxc-execute`, in that mode).
fn container_alive(c: &mut Container) -> bool {
    if let Some(child) = c.execute.as_mut() {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
    }
    c.init.is_some_and(|p| kill(p, None).is_ok())
}

/// The container stopped when it should not have: its init, lxc's log and the workload's
/// log say why.
fn died(run: &mut Run, c: &mut Container, step: StepKind, when: &str) -> StepError {
    let log = std::fs::read_to_string(run.work.join("workload.log")).unwrap_or_default();
    let lxc_log = std::fs::read_to_string(&c.log).unwrap_or_default();
    let line = command::tail_lines(&log, 1)
        .pop()
        .or_else(|| conf::first_log_error(&lxc_log));
    let mut e = StepError::fail(step, format!("the container stopped {when}"));
    e.failure.errno = line.as_deref().and_then(errno::find);
    e.failure.first_error_line = line;
    e
}

fn check_tree(run: &mut Run, c: &mut Container, step: StepKind) -> Result<(), StepError> {
    let init = c.init.expect("a running container has an init");
    let now = nstree::same_tree(&c.tree, init).map_err(|e| StepError::fail(step, e.to_string()))?;
    note(run, &format!("after the restore: {now}"));
    Ok(())
}

// ---- checkpoint and restore ----

fn checkpoint(run: &mut Run, c: &mut Container, iteration: u32) -> Result<(), StepError> {
    let step = StepKind::Checkpoint;
    let images = run.work.join(format!("images-{iteration}"));
    run.mkdir(&images)?;
    let (init, tree, seen) = nstree::before_checkpoint(run, c.init)?;
    note(run, &seen);
    c.tree = tree;
    // The modes lxc-checkpoint has (`Mode::lxc_can`): plain, leave-running, one pre-dump.
    let mode = run.sc.mode;
    match (mode.leave_running, mode.pre) {
        (false, 0) => dump_read(run, c, iteration, init, &images, Dump::Stop)?,
        (true, _) => {
            dump_frozen(run, c, iteration, init, &images)?;
            let info = wait_state(run, c, step, "RUNNING")?;
            if info.pid != Some(init.as_raw()) {
                return Err(StepError::fail(
                    step,
                    format!(
                        "the container's init was {init} before the dump and is {:?} after it",
                        info.pid
                    ),
                ));
            }
            check_tree(run, c, step)?;
            // The container goes on: its workload must not have noticed the dump.
            return run.continuity(step);
        }
        (false, _) => {
            let pre = run.work.join(format!("pre-{iteration}"));
            run.mkdir(&pre)?;
            dump(run, c, iteration, &pre, Dump::PreDump, &[])?;
            wait_state(run, c, step, "RUNNING")?;
            let rel = format!("../pre-{iteration}");
            dump_read(
                run,
                c,
                iteration,
                init,
                &images,
                Dump::StopAfterPreDump(&rel),
            )?;
        }
    }
    wait_state(run, c, step, "STOPPED")?;
    // Every process of the container is gone: its pids are free for the restore.
    c.init = None;
    if let Some(mut child) = c.execute.take() {
        command::wait_child(&mut child, Duration::from_secs(10));
    }
    run.pid = None;
    Ok(())
}

/// A dump that stops the container, with the container's tree read inside criu at its
/// `post-dump` (criu, started by `lxc-checkpoint`, finds the action script in the file
/// `CRIU_CONFIG_FILE` names); read running before the dump when that cannot be.
fn dump_read(
    run: &mut Run,
    c: &mut Container,
    iteration: u32,
    init: Pid,
    dir: &Path,
    how: Dump,
) -> Result<(), StepError> {
    let reads = run.visible_reads("dump", iteration);
    let (reads, env) = through_config(run, reads);
    if reads.is_none() {
        run.visible_running(Which::Before, init, iteration);
    }
    dump(run, c, iteration, dir, how, &env)?;
    if let Some(r) = &reads {
        run.visible_taken(r, Moment::Dumped, init, iteration);
    }
    Ok(())
}

/// The environment that has `lxc-checkpoint`'s criu run the action script of `reads`
/// (through criu's configuration file), and the reads themselves; none when there are no
/// reads or the file cannot be written (said beside the comparison).
fn through_config(run: &mut Run, reads: Option<Reads>) -> (Option<Reads>, Vec<(String, String)>) {
    match reads.as_ref().map(Reads::env_through_config) {
        Some(Ok(env)) => (reads, env),
        Some(Err(e)) => {
            run.note_visible(format!("cannot write criu's configuration file: {e}"));
            (None, Vec::new())
        }
        None => (None, Vec::new()),
    }
}

/// A dump that leaves the container running: the container read inside criu at its
/// `post-dump`, where the action script also freezes the container's cgroup, so that it
/// stops as criu lets it go; read again, frozen, and thawed (see `visible::freeze`).
fn dump_frozen(
    run: &mut Run,
    c: &mut Container,
    iteration: u32,
    init: Pid,
    dir: &Path,
) -> Result<(), StepError> {
    let cg = freeze::cgroup_of(init.as_raw());
    let reads = cg
        .clone()
        .and_then(|cg| Some(run.visible_reads("dump", iteration)?.freezing(cg)));
    let (reads, env) = through_config(run, reads);
    if reads.is_none() {
        run.visible_running(Which::Before, init, iteration);
    }
    let _thaw = cg.as_deref().map(freeze::thaw_on_drop);
    dump(run, c, iteration, dir, Dump::LeaveRunning, &env)?;
    run.visible_left_running(reads.as_ref(), cg.as_deref(), init, iteration);
    Ok(())
}

/// One `lxc-checkpoint` dump into `dir` (`env` for its criu); its criu log is kept as
/// `dump-N.log` (`pre-dump-N.log`).
fn dump(
    run: &mut Run,
    c: &mut Container,
    iteration: u32,
    dir: &Path,
    how: Dump,
    env: &[(String, String)],
) -> Result<(), StepError> {
    let name = c.name.clone();
    let ran = tool_env(
        run,
        c,
        StepKind::Checkpoint,
        "lxc-checkpoint",
        &conf::checkpoint_args(&name, dir, how),
        env,
    )?;
    let log_name = if how == Dump::PreDump {
        "pre-dump"
    } else {
        "dump"
    };
    let log = keep_log(run, dir, log_name, iteration);
    if ran.ok() {
        Ok(())
    } else {
        Err(tool_failed(c, StepKind::Checkpoint, &ran, log.as_deref()))
    }
}

fn restore(run: &mut Run, c: &mut Container, iteration: u32) -> Result<(), StepError> {
    let step = StepKind::Restore;
    let images = run.work.join(format!("images-{iteration}"));
    let name = c.name.clone();
    run.between(&images)?;
    // The restored tree, read inside criu before it runs again.
    let reads = run.visible_reads("restore", iteration);
    let (reads, env) = through_config(run, reads);
    let ran = tool_env(
        run,
        c,
        step,
        "lxc-checkpoint",
        &conf::restore_args(&name, &images),
        &env,
    )?;
    let log = keep_log(run, &images, "restore", iteration);
    if !ran.ok() {
        return Err(tool_failed(c, step, &ran, log.as_deref()));
    }
    let info = wait_state(run, c, step, "RUNNING")?;
    let Some(init) = info.pid.map(Pid::from_raw) else {
        return Err(StepError::fail(
            step,
            "lxc-info names no init pid for the restored container",
        ));
    };
    c.init = Some(init);
    match &reads {
        Some(r) => run.visible_taken(r, Moment::Restored, init, iteration),
        None => run.visible_running(Which::After, init, iteration),
    }
    check_address(c, step, &info)?;
    let app = c.app.expect("ready before checkpoint");
    let host =
        nstree::workload_back(init, app).map_err(|e| StepError::fail(step, e.to_string()))?;
    // The restored processes have new host pids; their pids inside are the old ones.
    note(
        run,
        &format!("restored: the workload (pid {app} inside) is host pid {host}"),
    );
    run.pid = Some(host);
    if c.opts.pause_after_restore {
        pause(run, c, iteration)?;
    } else {
        check_tree(run, c, step)?;
    }
    run.continuity(step)
}

/// The wiki's `lxc-restart --pause` then `lxc-unfreeze`: freeze at once, show the container
/// stands still, thaw it.
fn pause(run: &mut Run, c: &mut Container, iteration: u32) -> Result<(), StepError> {
    let step = StepKind::Restore;
    let name = c.name.clone();
    let ran = tool(run, c, step, "lxc-freeze", &conf::name_args(&name))?;
    if !ran.ok() {
        return Err(tool_failed(c, step, &ran, None));
    }
    let t = Instant::now();
    wait_state(run, c, step, "FROZEN")?;
    let cgroup = payload_cgroup(c)?;
    let read = |f: &str| std::fs::read_to_string(cgroup.join(f)).unwrap_or_default();
    let (freeze, events) = (read("cgroup.freeze"), read("cgroup.events"));
    note(
        run,
        &format!(
            "frozen: {}/cgroup.freeze = {}, cgroup.events: {}",
            cgroup.display(),
            freeze.trim(),
            events.trim().replace('\n', ", ")
        ),
    );
    if freeze.trim() != "1" || conf::events_frozen(&events) != Some(true) {
        record(run, c, "frozen", t, false);
        return Err(StepError::fail(
            step,
            format!(
                "lxc-info says FROZEN but {} has cgroup.freeze `{}` and cgroup.events `{}`",
                cgroup.display(),
                freeze.trim(),
                events.trim().replace('\n', ", ")
            ),
        ));
    }
    // The tree is still while frozen: the moment to compare it.
    check_tree(run, c, step)?;
    let watched = if run.target.has_progress() {
        let before = run.progress();
        std::thread::sleep(FROZEN_WATCH);
        let after = run.progress();
        note(
            run,
            &format!(
                "frozen: progress {before:?}, {after:?} {} ms later",
                FROZEN_WATCH.as_millis()
            ),
        );
        if before != after {
            record(run, c, "frozen", t, false);
            return Err(StepError::fail(
                step,
                format!(
                    "the frozen container made progress: {before:?} then {after:?} within {} ms",
                    FROZEN_WATCH.as_millis()
                ),
            ));
        }
        after
    } else {
        None
    };
    crate::exec::vnc_steps::frozen_probe(run, iteration)?;
    record(run, c, "frozen", t, true);
    if let Some(p) = watched {
        if p < run.progress_at_checkpoint {
            return Err(StepError::fail(
                step,
                format!(
                    "progress went back from {} to {p}: the workload lost its state",
                    run.progress_at_checkpoint
                ),
            ));
        }
        // From here it must move on from where it stood while frozen.
        run.progress_at_checkpoint = p;
    }
    let ran = tool(run, c, step, "lxc-unfreeze", &conf::name_args(&name))?;
    if !ran.ok() {
        return Err(tool_failed(c, step, &ran, None));
    }
    wait_state(run, c, step, "RUNNING")?;
    let end = Instant::now() + Duration::from_secs(10);
    while conf::events_frozen(&read("cgroup.events")) != Some(false) {
        if Instant::now() >= end {
            return Err(StepError::fail(
                step,
                format!(
                    "lxc-unfreeze returned but {}/cgroup.events still says frozen",
                    cgroup.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The container's cgroup2 directory, from its init's `/proc/PID/cgroup`.
fn payload_cgroup(c: &mut Container) -> Result<PathBuf, StepError> {
    let init = c.init.expect("a running container has an init");
    std::fs::read_to_string(format!("/proc/{init}/cgroup"))
        .ok()
        .and_then(|t| conf::cgroup2_dir(&t, Path::new(CGROUP2)))
        .ok_or_else(|| {
            StepError::fail(
                StepKind::Restore,
                format!("cannot read the cgroup2 path of the container's init {init}"),
            )
        })
}

// ---- verify ----

fn verify(run: &mut Run, c: &mut Container) -> Result<(), StepError> {
    let step = StepKind::Verify;
    if run.pid.is_none() {
        return Err(StepError::fail(
            step,
            "no workload to verify: the checkpoint stopped the container and nothing restored it",
        ));
    }
    // The target's check, with the workload's host pid (a program's runs on the guest
    // with CRTEST_PID = that pid).
    let target = run.target;
    target.verify(run)?;
    if !target.ends_at_verify() {
        wait_state(run, c, step, "RUNNING")?;
        return Ok(());
    }
    // An application container ends with its application; a system container runs on.
    let want = match c.opts.pid1() {
        LxcInit::Busybox => "RUNNING",
        LxcInit::LxcInit | LxcInit::Liblxc => "STOPPED",
    };
    wait_state(run, c, step, want)?;
    Ok(())
}

// ---- cleanup ----

/// Stops and destroys the container and keeps lxc's log; never fails.
fn cleanup(run: &mut Run, c: &mut Container) {
    let name = c.name.clone();
    // Cleanup's commands are not part of a scenario step: they get their own name.
    c.phase = "cleanup";
    let step = StepKind::Verify;
    let state = tool(run, c, step, "lxc-info", &conf::name_args(&name))
        .ok()
        .map(|r| conf::parse_info(&r.output).state);
    if state != Some(Some("STOPPED".into())) {
        let _ = tool(run, c, step, "lxc-stop", &conf::stop_args(&name));
        let _ = wait_state(run, c, step, "STOPPED");
    }
    if let Some(mut child) = c.execute.take() {
        command::wait_child(&mut child, Duration::from_secs(10));
    }
    let (log, dir) = (c.log.clone(), c.dir.clone());
    let _ = std::fs::copy(&log, run.work.join("lxc.log"));
    let destroyed =
        tool(run, c, step, "lxc-destroy", &conf::name_args(&name)).is_ok_and(|r| r.ok());
    if !destroyed {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // The container's pids are not ours to signal any more.
    run.pid = None;
}
