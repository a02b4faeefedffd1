//! One scenario's part in a migration, on one of its two guests: the host's commands
//! ([`MoveCommand`]) carried out on the scenario's run, which lives from the first command
//! to the last.
//!
//! The source starts the scenario, dumps it (pre-dumps and pages to the target's page
//! servers, or served lazily), leaves the tree stopped, and writes the handoff (its working
//! directory with the images, and what the restore must know: the root's pid, the progress,
//! the tree as the dump saw it) to its share; the host copies it to the target's share. The
//! target puts the handoff in place over what its page servers wrote, restores and verifies.
//! The source then kills its stopped tree (the move held), or lets it go on and has it verify
//! itself (the move failed: nothing is lost).

use crate::exec::context::{reap, ExecConfig, Run, StepError};
use crate::exec::criu::Peer;
use crate::exec::executor::{guest_commands, keep_artifacts, prepare_dir};
use crate::model::migration::{MoveCommand, MoveMode, MoveReport, Role};
use crate::model::outcome::{Failure, Outcome, Phases, ScenarioResult, StepRecord};
use crate::model::scenario::{Lazy, Scenario, StepKind};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The handoff's file of facts, beside its `work/` folder.
const HANDOFF_FILE: &str = "handoff.json";
/// The first pid the source's workloads get: far from the pids the target's own processes
/// (its agent's commands, its criu daemons) take, which a restore must find free.
const SOURCE_PIDS_FROM: u32 = 20000;
/// The most a handoff may hold (files of the working directory, images included).
const MAX_HANDOFF: u64 = 2 << 30;

/// What the target must know of the dumped tree, besides its images.
#[derive(Debug, Serialize, Deserialize)]
struct Handoff {
    pid: i32,
    ns_init: bool,
    progress: u64,
    /// The tree as the dump saw it (the visible state's "before").
    #[serde(default)]
    before: Option<serde_json::Value>,
}

/// The scenario as one side runs it: the side's criu options come from its mode.
pub fn side_scenario(sc: &Scenario, role: Role, mode: MoveMode) -> Scenario {
    let mut s = sc.clone();
    match role {
        Role::Source => {
            s.mode.pre = mode.pre_dumps();
            s.mode.page_server = !mode.page_servers().is_empty();
            s.mode.stop = true;
        }
        Role::Target => {
            if mode == MoveMode::Lazy {
                s.mode.lazy = Lazy::Remote;
            }
        }
    }
    s
}

/// One scenario's part on one guest.
pub struct Mover<'a> {
    run: Run<'a>,
    role: Role,
    mode: MoveMode,
    /// The handoff's folder in this guest's share.
    handoff: PathBuf,
    started: Instant,
    phases: Phases,
    steps: Vec<StepRecord>,
    outcome: Outcome,
    failure: Option<Failure>,
    /// The source's verdict on its own tree at the end (`gone`, `running`, `lost`).
    source: Option<String>,
    /// The source tried to dump the tree (from then on, it is the move's to keep).
    dump_tried: bool,
}

impl<'a> Mover<'a> {
    /// `sc` is the side's scenario ([`side_scenario`]); `index` its place in the plan.
    pub fn new(
        cfg: &'a ExecConfig,
        sc: &'a Scenario,
        role: Role,
        mode: MoveMode,
        index: usize,
    ) -> Mover<'a> {
        let (_, other) = role.addresses();
        let mut peer = Peer::new(other);
        peer.page_servers = mode.page_servers().iter().map(|s| s.port).collect();
        peer.lazy_port = mode.lazy_port();
        let started = Instant::now();
        let run = Run::new(cfg, sc, Some(peer));
        Mover {
            run,
            role,
            mode,
            handoff: cfg
                .run_dir
                .join(crate::model::migration::handoff_dir(index)),
            started,
            phases: Phases::default(),
            steps: Vec::new(),
            outcome: Outcome::Pass,
            failure: None,
            source: None,
            dump_tried: false,
        }
    }

    /// Carries out `cmd`; the report says how it went (with this side's result at its last
    /// command).
    pub fn command(&mut self, cmd: MoveCommand) -> MoveReport {
        let t = Instant::now();
        let mut report = MoveReport {
            index: cmd.index().unwrap_or(0),
            verb: cmd.verb().into(),
            ms: 0,
            outcome: Outcome::Pass,
            failure: None,
            criu_ms: None,
            handoff_ms: 0,
            link_bytes: 0,
            half: None,
        };
        let res = match cmd {
            MoveCommand::Serve { .. } => self.serve(),
            MoveCommand::Start { .. } => self.start(),
            MoveCommand::Dump { .. } => self.dump(&mut report),
            MoveCommand::Restore { .. } => self.restore(),
            MoveCommand::KillServers { .. } => {
                self.run.kill_page_servers();
                Ok(())
            }
            MoveCommand::Finish { keep, .. } => self.finish(keep),
            MoveCommand::End => Ok(()),
        };
        if let Err(e) = res {
            report.outcome = e.outcome;
            report.failure = Some((*e.failure).clone());
            if self.failure.is_none() {
                self.outcome = e.outcome;
                self.failure = Some(*e.failure);
            }
        }
        report.ms = t.elapsed().as_millis() as u64;
        report
    }

    /// Whether this side is done with the scenario after `cmd` (its result is due): the
    /// target's restore, or either side's finish (the target's gives its part up).
    pub fn last(&self, cmd: MoveCommand) -> bool {
        matches!(
            (self.role, cmd),
            (Role::Target, MoveCommand::Restore { .. }) | (_, MoveCommand::Finish { .. })
        )
    }

    /// One step of the criu backend, timed and recorded.
    fn step(&mut self, kind: StepKind) -> Result<(), StepError> {
        if self.failure.is_some() {
            return Err(StepError::fail(kind, "an earlier step of this side failed"));
        }
        let mut kmsg = crate::diagnose::kmsg::KmsgWindow::open();
        let t = Instant::now();
        let res = self.run.criu_step(kind, 1);
        let ms = t.elapsed().as_millis() as u64;
        self.phases.add(kind, ms);
        self.steps.append(&mut self.run.substeps);
        self.steps.push(StepRecord {
            step: kind.as_str().into(),
            iteration: 1,
            ms,
            ok: res.is_ok(),
        });
        res.map_err(|mut e| {
            e.failure.dmesg = kmsg.drain();
            e
        })
    }

    /// Unmet requirements on this guest: the scenario is a skip here.
    fn requirements(&self) -> Result<(), StepError> {
        match crate::exec::requires::unmet_in_guest(&self.run.sc.requires, &self.run.cfg.criu) {
            None => Ok(()),
            Some(why) => Err(StepError::fail(StepKind::Start, why).with_outcome(Outcome::Skip)),
        }
    }

    /// Target: the working directory made, the page servers listening.
    fn serve(&mut self) -> Result<(), StepError> {
        self.requirements()?;
        prepare_dir(&self.run.work).map_err(boxed(Outcome::Error))?;
        self.run.serve_pages(&self.mode.page_servers())
    }

    /// Source: the scenario started (its pids far from the target's) and ready.
    fn start(&mut self) -> Result<(), StepError> {
        self.requirements()?;
        let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", SOURCE_PIDS_FROM.to_string());
        prepare_dir(&self.run.work)
            .and_then(|()| self.run.copy_inputs())
            .and_then(|()| guest_commands(&self.run.sc.before, "before", &[], None))
            .map_err(boxed(Outcome::Error))?;
        self.step(StepKind::Start)?;
        self.step(StepKind::WaitReady)
    }

    /// Source: the copies and the dump (the tree left stopped), then the handoff written.
    fn dump(&mut self, report: &mut MoveReport) -> Result<(), StepError> {
        self.dump_tried = self.failure.is_none();
        self.step(StepKind::Checkpoint)?;
        let dump = self.run.last_dump_mut().cloned();
        report.criu_ms = dump.as_ref().map(|m| m.ms);
        report.link_bytes = self
            .run
            .criu_runs
            .iter()
            .filter_map(|m| m.dump.as_ref())
            .map(|d| {
                let pages = if self.mode == MoveMode::Lazy {
                    d.pages_lazy
                } else if self.run.sc.mode.page_server {
                    d.pages_written
                } else {
                    0
                };
                pages * 4096
            })
            .sum();
        let t = Instant::now();
        let written = self.write_handoff();
        report.handoff_ms = t.elapsed().as_millis() as u64;
        written.map_err(|e| {
            StepError::fail(StepKind::Checkpoint, format!("the handoff: {e}"))
                .with_outcome(Outcome::Error)
        })
    }

    fn write_handoff(&self) -> std::io::Result<()> {
        let _ = std::fs::remove_dir_all(&self.handoff);
        std::fs::create_dir_all(&self.handoff)?;
        let mut budget = MAX_HANDOFF;
        copy_tree(
            &self.run.work,
            &self.handoff.join("work"),
            false,
            &mut budget,
        )?;
        let h = Handoff {
            pid: self.run.pid.map_or(0, Pid::as_raw),
            ns_init: self.run.ns_init,
            progress: self.run.progress_at_checkpoint,
            before: self
                .run
                .visible
                .before()
                .map(crate::exec::visible::moment::side_to_json),
        };
        let text = serde_json::to_string(&h).map_err(std::io::Error::other)?;
        std::fs::write(self.handoff.join(HANDOFF_FILE), text)
    }

    /// Target: the handoff put in place (what the page servers wrote stays), the tree
    /// restored and verified.
    fn restore(&mut self) -> Result<(), StepError> {
        let res = self
            .requirements()
            .and_then(|()| self.run.page_servers_done())
            .and_then(|()| self.take_handoff());
        if let Err(e) = res {
            self.failure.get_or_insert(*e.failure.clone());
            return Err(e);
        }
        self.step(StepKind::Restore)?;
        self.step(StepKind::Verify)
    }

    fn take_handoff(&mut self) -> Result<(), StepError> {
        let fail = |what: String| {
            StepError::fail(StepKind::Restore, format!("the handoff: {what}"))
                .with_outcome(Outcome::Error)
        };
        let path = self.handoff.join(HANDOFF_FILE);
        let text = read_bounded(&path, 64 << 20)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        let h: Handoff = serde_json::from_str(&text)
            .map_err(|e| fail(format!("{} is not one: {e}", path.display())))?;
        if h.pid <= 1 {
            return Err(fail(format!(
                "no pid of the dumped tree in {}",
                path.display()
            )));
        }
        let mut budget = MAX_HANDOFF;
        copy_tree(
            &self.handoff.join("work"),
            &self.run.work,
            true,
            &mut budget,
        )
        .map_err(|e| {
            fail(format!(
                "cannot put it into {}: {e}",
                self.run.work.display()
            ))
        })?;
        let _ = std::fs::remove_dir_all(&self.handoff);
        self.run.pid = Some(Pid::from_raw(h.pid));
        self.run.ns_init = h.ns_init;
        self.run.progress_at_checkpoint = h.progress;
        if let Some(side) = h
            .before
            .and_then(crate::exec::visible::moment::side_from_json)
        {
            self.run.visible.set_before(side);
        }
        Ok(())
    }

    /// Source: the lazy dump seen to its end; the stopped tree killed (`keep` false), or let
    /// go on, checked alive and verified by itself (`keep`).
    fn finish(&mut self, keep: bool) -> Result<(), StepError> {
        if self.role == Role::Target {
            // The move ended before the restore: the page servers go with the run.
            return Ok(());
        }
        let served = self.run.lazy_dump_done(!keep);
        let Some(pid) = self.run.pid.filter(|_| self.dump_tried) else {
            self.source = Some("never dumped".into());
            return served;
        };
        let tree = crate::exec::proctree::tree(pid);
        if !keep {
            for p in &tree {
                let _ = kill(*p, Signal::SIGKILL);
            }
            let _ = reap(pid, Duration::from_secs(10));
            self.run.pid = None;
            self.source = Some("gone".into());
            return served;
        }
        for p in &tree {
            let _ = kill(*p, Signal::SIGCONT);
        }
        if !crate::exec::proctree::exists(pid) {
            self.source = Some("lost".into());
            let e = StepError::fail(
                StepKind::Restore,
                format!("the move failed and the source's tree (root {pid}) did not survive it"),
            );
            return Err(e);
        }
        // Only the source's own verdict counts now: the failure that ended the move is
        // the target's, already reported.
        let earlier = self.failure.take();
        let outcome = std::mem::replace(&mut self.outcome, Outcome::Pass);
        let verified = self.step(StepKind::Verify);
        self.source = Some(match &verified {
            Ok(()) => "running".into(),
            Err(_) => "lost".into(),
        });
        if verified.is_ok() {
            self.failure = earlier;
            self.outcome = outcome;
        }
        verified.and(served)
    }

    /// This side's part of the scenario's result.
    pub fn result(mut self) -> ScenarioResult {
        let sc = self.run.sc;
        self.run.cleanup();
        if let Some(f) = self.failure.as_mut() {
            crate::model::expectation::diagnose(f, &[]);
        }
        let failed = self.failure.is_some() || self.run.cfg.keep_images;
        let artifacts = keep_artifacts(self.run.cfg, sc, &self.run.work, failed);
        let _ = std::fs::remove_dir_all(&self.run.work);
        let detail = match (&self.source, self.role) {
            (Some(s), Role::Source) => Some(format!("the source's tree: {s}")),
            _ => self.run.detail.take(),
        };
        ScenarioResult {
            name: sc.name.clone(),
            outcome: self.outcome,
            duration_ms: self.started.elapsed().as_millis() as u64,
            phases: self.phases,
            steps: self.steps,
            detail,
            failure: self.failure,
            artifacts,
            leftovers: Vec::new(),
            screens: None,
            tags: sc.tags.clone(),
            attempts: Vec::new(),
            visible_state: self.run.visible.result.take(),
            criu_runs: std::mem::take(&mut self.run.criu_runs),
            migration: self
                .source
                .map(|source| crate::model::outcome::MoveMeasure {
                    mode: self.mode.to_string(),
                    source,
                    ..Default::default()
                }),
        }
    }
}

/// A failure of the executor's helpers as a step error with `outcome`.
fn boxed(outcome: Outcome) -> impl Fn(Box<Failure>) -> StepError {
    move |failure| StepError { outcome, failure }
}

/// Reads at most `cap` bytes of `path`.
fn read_bounded(path: &Path, cap: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)?
        .take(cap)
        .read_to_string(&mut s)?;
    Ok(s)
}

/// Copies the folders and regular files under `src` into `dest` (never through a link,
/// nothing else), at most `budget` bytes in all; with `keep`, a file already in `dest` stays
/// (what a page server wrote).
pub(crate) fn copy_tree(
    src: &Path,
    dest: &Path,
    keep: bool,
    budget: &mut u64,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let to = dest.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &to, keep, budget)?;
        } else if kind.is_file() {
            if keep && std::fs::symlink_metadata(&to).is_ok() {
                continue;
            }
            let size = entry.metadata()?.len();
            *budget = budget.checked_sub(size).ok_or_else(|| {
                std::io::Error::other(format!(
                    "more than {} MiB to copy (at {})",
                    MAX_HANDOFF >> 20,
                    entry.path().display()
                ))
            })?;
            crate::model::confine::copy_nofollow(&entry.path(), &to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_runs_the_mode_its_own_way() {
        let sc = Scenario::parse(
            Path::new("/s/w.toml"),
            "description = \"d\"\nworkload = \"counterloop\"\n",
        )
        .unwrap()
        .remove(0);
        let src = side_scenario(&sc, Role::Source, MoveMode::PreDump(2));
        assert_eq!(
            (src.mode.pre, src.mode.page_server, src.mode.stop),
            (2, true, true)
        );
        let src = side_scenario(&sc, Role::Source, MoveMode::Images);
        assert_eq!(
            (src.mode.pre, src.mode.page_server, src.mode.stop),
            (0, false, true)
        );
        let dst = side_scenario(&sc, Role::Target, MoveMode::Lazy);
        assert_eq!(dst.mode.lazy, Lazy::Remote);
        assert!(!dst.mode.stop);
    }

    #[test]
    fn a_handoff_copies_folders_and_files_only_and_keeps_what_is_there() {
        let d = tempfile::tempdir().unwrap();
        let (src, dest) = (d.path().join("src"), d.path().join("dest"));
        std::fs::create_dir_all(src.join("images-1")).unwrap();
        std::fs::write(src.join("images-1/core-1.img"), "core").unwrap();
        std::fs::write(src.join("images-1/pages-1.img"), "source").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        std::fs::create_dir_all(dest.join("images-1")).unwrap();
        std::fs::write(dest.join("images-1/pages-1.img"), "page server").unwrap();
        let mut budget = 1 << 20;
        copy_tree(&src, &dest, true, &mut budget).unwrap();
        let read = |p: &str| std::fs::read_to_string(dest.join(p)).unwrap();
        assert_eq!(read("images-1/core-1.img"), "core");
        assert_eq!(read("images-1/pages-1.img"), "page server");
        assert!(std::fs::symlink_metadata(dest.join("link")).is_err());
        assert_eq!(budget, (1 << 20) - 4);
        let mut small = 3;
        let e = copy_tree(&src, &d.path().join("x"), false, &mut small).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }
}
