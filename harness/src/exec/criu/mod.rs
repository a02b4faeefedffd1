//! The criu backend: a workload started as the executor's child, `criu dump` of its tree,
//! `criu restore` from the images, in the scenario's mode: pre-dumps or snapshots before the
//! dump, a page server taking the pages, a lazy restore fed by `criu lazy-pages`, the tree
//! left stopped, the options through a config file.

mod argv;
mod daemons;
mod measure;
mod modes;
mod moves;
pub mod rpc;

pub(crate) use moves::Peer;

pub use argv::{
    as_config, daemon_args, dump_args, dump_mode_args, restore_args, restore_mode_args,
    restore_mode_lead,
};

use crate::diagnose::{criu_log, errno};
use crate::exec::backend::Backend;
use crate::exec::context::{reap, reap_orphans, Run, StepError};
use crate::exec::proctree;
use crate::exec::visible::freeze::{self, TreeCgroup};
use crate::exec::visible::moment::{Moment, Reads};
use crate::exec::visible::Which;
use crate::model::outcome::{Outcome, StepRecord};
use crate::model::scenario::StepKind;
use crtest_vm::command::{self, Ran};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The criu backend: criu driven by its command line around a target started as the
/// executor's child.
pub(crate) struct Criu;

impl Backend for Criu {
    fn step(&mut self, run: &mut Run, kind: StepKind, iteration: u32) -> Result<(), StepError> {
        run.criu_step(kind, iteration)
    }
}

impl Run<'_> {
    /// One step of the criu backend.
    pub(crate) fn criu_step(&mut self, kind: StepKind, iteration: u32) -> Result<(), StepError> {
        match kind {
            StepKind::Start => {
                if let Some(why) = self.rpc_cannot_say() {
                    // Known before anything runs: the scenario is a skip, its tree untouched.
                    return Err(
                        StepError::fail(kind, format!("rpc: {why}")).with_outcome(Outcome::Skip)
                    );
                }
                self.start()
            }
            StepKind::WaitReady => {
                let target = self.target;
                target.wait_ready(self)
            }
            StepKind::Checkpoint => self.checkpoint(iteration),
            StepKind::Restore => self.restore(iteration),
            StepKind::Verify => {
                let target = self.target;
                target.verify(self)
            }
            StepKind::Run => Err(StepError::fail(kind, "`run` needs an `[external]` test")),
        }
    }

    pub(crate) fn start(&mut self) -> Result<(), StepError> {
        let (program, args) = self.command();
        let log = std::fs::File::create(self.work.join("workload.log")).map_err(|e| {
            StepError::fail(StepKind::Start, format!("cannot create workload.log: {e}"))
                .with_outcome(Outcome::Error)
        })?;
        let log2 = log.try_clone().expect("dup of a fresh file");
        let mut cmd = std::process::Command::new(&program);
        let target = self.target;
        target.prepare_start(self, &mut cmd)?;
        cmd.args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: setsid is async-signal-safe; the workload becomes a session and process
        // group leader, so criu can dump its tree without a shell job and we can kill it whole.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(Into::into));
        }
        if self.sc.mode.leave_running {
            // A cgroup of its own, to hold the tree still around a dump that leaves it
            // running; where there is none, the sides are read running.
            match TreeCgroup::make(&self.sc.name) {
                Ok(cg) => {
                    // SAFETY: the joiner only opens and writes a path made before the fork.
                    unsafe {
                        cmd.pre_exec(cg.joiner());
                    }
                    self.visible.cgroup = Some(cg);
                }
                Err(e) => self.note_visible(format!("no cgroup of its own for the tree: {e}")),
            }
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
        target.started(self)
    }

    fn checkpoint(&mut self, iteration: u32) -> Result<(), StepError> {
        let pid = self.pid.expect("started before checkpoint");
        let mode = self.sc.mode;
        let images = self.work.join(format!("images-{iteration}"));
        self.mkdir(&images)?;
        let mut extra = self.dump_options();
        // Memory copied while the tree runs (pre-dumps, or snapshots), each on top of the
        // last; the dump then writes only what changed since.
        let mut prev = None;
        for k in 1..=mode.pre {
            prev = Some(self.copy_memory(pid, iteration, k, &extra, prev.as_deref())?);
        }
        self.progress_at_checkpoint = self.progress().unwrap_or(0);
        let target = self.target;
        target.before_dump(self)?;
        let server = self.page_server(&images, 0)?;
        let at = server.as_ref().map(modes::PageServer::at);
        extra.extend(dump_mode_args(&mode, true, prev.as_deref(), at));
        let log = self.work.join(format!("dump-{iteration}.log"));
        let tree = proctree::tree(pid);
        self.ns_init = proctree::is_pid_ns_init(pid);
        if mode.leave_running {
            // The tree goes on: it must not have noticed the dump, nor show it.
            let ran = self.dump_leaving_running(pid, iteration, &images, &log, extra)?;
            self.dumped("dump", iteration, 0, &images, &ran, server)?;
            return self.continuity(StepKind::Checkpoint);
        }
        let own_leave_running = self.leaves_running();
        let mut args = dump_args(pid.as_raw(), &images, &log, &extra);
        // The tree as criu dumps it, read inside criu (unless the scenario's own
        // --leave-running makes the restore meet the original: nothing to compare).
        let reads = (!own_leave_running)
            .then(|| self.visible_reads("dump", iteration))
            .flatten();
        if let Some(r) = &reads {
            args.extend(r.criu_args());
        } else if !own_leave_running {
            self.visible_running(Which::Before, pid, iteration);
        }
        let env = reads.as_ref().map(Reads::env).unwrap_or_default();
        if let Some(port) = self.peer.as_ref().and_then(|p| p.lazy_port) {
            // A migration's post-copy: the dump goes on serving the pages to the target.
            return self.dump_serving(iteration, &images, args, &log, &env, reads, port);
        }
        let ran = self.criu(StepKind::Checkpoint, iteration, &args, &log, &env)?;
        self.dumped("dump", iteration, 0, &images, &ran, server)?;
        if let Some(r) = &reads {
            self.visible_taken(r, Moment::Dumped, pid, iteration);
        }
        if mode.stop {
            // `--leave-stopped`: the tree, read again now that it stands still (a child
            // born after the walk above is in it), must be stopped; then it goes, as a
            // dump that kills it would have left it (a migration's source keeps it until
            // the target has it).
            let stopped = proctree::tree(pid);
            self.all_stopped(StepKind::Checkpoint, &stopped, &ran.command)?;
            if self.peer.is_some() {
                return Ok(());
            }
            for p in &stopped {
                let _ = kill(*p, Signal::SIGKILL);
            }
        }
        if own_leave_running {
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
            if let Ok(dumped) = crate::ckpt::dir::Checkpoint::load(&images) {
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

    /// The scenario's own dump options leave the tree running (a reproducer's restore
    /// meets the original).
    fn leaves_running(&self) -> bool {
        self.sc.dump_args.iter().any(|a| a == "--leave-running")
    }

    /// `criu dump --leave-running`: the tree read inside criu at `post-dump`, where the
    /// action script also freezes the tree's own cgroup, so that it stops as criu lets it
    /// go; read again, frozen, and thawed (see `visible::freeze`). Without a cgroup of its
    /// own (no cgroup v2 freezer) both sides are read running, and the report says so.
    fn dump_leaving_running(
        &mut self,
        pid: Pid,
        iteration: u32,
        images: &Path,
        log: &Path,
        extra: Vec<String>,
    ) -> Result<Ran, StepError> {
        let cg = self.visible.cgroup.as_ref().map(|c| c.path().to_path_buf());
        let reads = cg
            .clone()
            .and_then(|cg| Some(self.visible_reads("dump", iteration)?.freezing(cg)));
        let mut args = dump_args(pid.as_raw(), images, log, &extra);
        match &reads {
            Some(r) => args.extend(r.criu_args()),
            None => self.visible_running(Which::Before, pid, iteration),
        }
        let env = reads.as_ref().map(Reads::env).unwrap_or_default();
        let _thaw = cg.as_deref().map(freeze::thaw_on_drop);
        let ran = self.criu(StepKind::Checkpoint, iteration, &args, log, &env)?;
        self.visible_left_running(reads.as_ref(), cg.as_deref(), pid, iteration);
        Ok(ran)
    }

    fn restore(&mut self, iteration: u32) -> Result<(), StepError> {
        let mode = self.sc.mode;
        let images = self.work.join(format!("images-{iteration}"));
        let log = self.work.join(format!("restore-{iteration}.log"));
        let pidfile = self.work.join(format!("restore-{iteration}.pid"));
        let mut args = restore_args(&images, &log, &pidfile, &self.restore_options());
        let target = self.target;
        target.before_restore(self, &images)?;
        self.between(&images)?;
        let lazy = self.lazy_daemons(&images)?;
        // The restored tree, read inside criu before it runs again.
        let reads = self.visible_reads("restore", iteration);
        if let Some(r) = &reads {
            args.extend(r.criu_args());
        }
        let env = reads.as_ref().map(Reads::env).unwrap_or_default();
        let ran = self.criu(StepKind::Restore, iteration, &args, &log, &env)?;
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
        if mode.stop {
            // `--leave-stopped`: every thread stopped, then let go.
            let tree = proctree::tree(self.pid.expect("restored"));
            self.all_stopped(StepKind::Restore, &tree, &ran.command)?;
            for p in &tree {
                let _ = kill(*p, Signal::SIGCONT);
            }
        }
        self.restored(iteration, &images, &ran, lazy)?;
        target.after_restore(self, &images)?;
        let root = self.pid.expect("restored");
        match &reads {
            Some(r) => self.visible_taken(r, Moment::Restored, root, iteration),
            None => self.visible_running(Which::After, root, iteration),
        }
        self.continuity(StepKind::Restore)
    }

    /// The target's and the scenario's own `criu dump` options (a mode adds its own per dump).
    fn dump_options(&self) -> Vec<String> {
        let mut v = self.target.dump_options();
        v.extend(self.sc.dump_args.iter().cloned());
        v
    }

    /// Every `criu restore` option but the command line's own: the mode's lead, the
    /// target's and the scenario's, the mode's.
    fn restore_options(&self) -> Vec<String> {
        let mode = self.sc.mode;
        let mut v = restore_mode_lead(&mode);
        v.extend(self.target.restore_options());
        v.extend(self.sc.restore_args.iter().cloned());
        v.extend(restore_mode_args(&mode));
        v
    }

    /// In the `rpc` mode, an option of the scenario's dump or restore that criu's RPC has no
    /// field for (the same argv the steps will give, with placeholder paths).
    fn rpc_cannot_say(&self) -> Option<String> {
        if !self.sc.mode.rpc {
            return None;
        }
        let mut dump = self.dump_options();
        dump.extend(dump_mode_args(&self.sc.mode, true, None, None));
        let restore = self.restore_options();
        let (images, log) = (self.work.join("images"), self.work.join("criu.log"));
        rpc::plan(&dump_args(1, &images, &log, &dump))
            .and_then(|_| rpc::plan(&restore_args(&images, &log, &log, &restore)))
            .err()
            .map(|e| e.to_string())
    }

    /// `criu ARGS` as an RPC request to `criu swrk` (see [`rpc`]); the restored root's pid
    /// written to the command line's `--pidfile`.
    fn criu_rpc(
        &mut self,
        step: StepKind,
        args: &[String],
        log: &Path,
        env: &[(String, String)],
    ) -> Result<(Ran, rpc::Answer), StepError> {
        let error = |m: rpc::RpcError| {
            // Not the tool's failure: the scenario cannot be said over the RPC (a skip), or
            // the service could not be had (an error, with its errno).
            let outcome = match &m {
                rpc::RpcError::Unsayable(_) => Outcome::Skip,
                rpc::RpcError::Setup { .. } => Outcome::Error,
            };
            let mut e = StepError::fail(step, format!("rpc: {m}")).with_outcome(outcome);
            if let rpc::RpcError::Setup { source, .. } = &m {
                e.failure.errno = source.raw_os_error().and_then(errno::name);
            }
            e.failure.command = Some(command::command_line("criu", args));
            e
        };
        let plan = rpc::plan(args).map_err(error)?;
        let out = log.with_extension("swrk.out");
        let answer =
            rpc::run(&self.cfg.criu, &plan, env, &out, self.step_budget()).map_err(error)?;
        if let (Some(pid), Some(file)) = (answer.restored_pid, &plan.pidfile) {
            std::fs::write(file, format!("{pid}\n")).map_err(|source| {
                error(rpc::RpcError::Setup {
                    what: format!("cannot write {}", file.display()),
                    source,
                })
            })?;
        }
        Ok((answer.ran.clone(), answer))
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
        env: &[(String, String)],
    ) -> Result<Ran, StepError> {
        let config;
        let args = if self.sc.mode.criu_config {
            // zdtm.py's --criu-config: the options through a file beside the log.
            let file = log.with_extension("conf");
            let (argv, text) = as_config(args, &file);
            std::fs::write(&file, text).map_err(|e| {
                StepError::fail(step, format!("cannot write {}: {e}", file.display()))
                    .with_outcome(Outcome::Error)
            })?;
            config = argv;
            &config[..]
        } else {
            args
        };
        let (ran, answer) = if self.sc.mode.rpc && rpc::REQUESTS.contains(&args[0].as_str()) {
            let (ran, answer) = self.criu_rpc(step, args, log, env)?;
            (ran, Some(answer))
        } else {
            let mut cmd = command::Cmd::new(&self.cfg.criu).args(args);
            for (k, v) in env {
                cmd = cmd.env(k, v);
            }
            let ran = cmd.run_timed(self.step_budget(), None).map_err(|e| {
                let mut err = StepError::fail(step, e.to_string()).with_outcome(Outcome::Error);
                err.failure.command = Some(e.command().to_string());
                err.failure.errno = e.os_error().and_then(errno::name);
                err
            })?;
            (ran, None)
        };
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
        let (rpc_errno, rpc_msg) = answer.map(|a| (a.errno, a.errmsg)).unwrap_or_default();
        let first = criu_log::first_error_line(&log_text)
            .or_else(|| criu_log::usage_error_line(&ran.output))
            .or(rpc_msg)
            .or_else(|| ran.tail(1).pop());
        let errno = criu_log::errno_of(&log_text, first.as_deref()).or(rpc_errno);
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
        crate::model::expectation::diagnose(
            &mut e.failure,
            &crate::diagnose::class::error_lines(&log_text),
        );
        Err(e)
    }
}
