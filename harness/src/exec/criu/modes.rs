//! The parts of a mode around the dump and the restore: pre-dumps and snapshots, the page
//! server, the lazy-pages daemons, the check that `--leave-stopped` left the tree stopped.

use super::argv::{daemon_args, dump_args, dump_mode_args};
use super::daemons::{next_port, Daemon};
use crate::exec::context::{Run, StepError};
use crate::exec::proctree;
use crate::model::scenario::{Lazy, StepKind};
use nix::unistd::Pid;
use std::path::Path;

impl Run<'_> {
    /// Pre-dump (or snapshot, a dump that leaves the tree running) `k` of `iteration` into
    /// `pre-I-K`, on top of `prev`; returns its folder as the next dump names it (relative to
    /// its images).
    pub(super) fn copy_memory(
        &mut self,
        pid: Pid,
        iteration: u32,
        k: u32,
        extra: &[String],
        prev: Option<&str>,
    ) -> Result<String, StepError> {
        let mode = self.sc.mode;
        let name = format!("pre-{iteration}-{k}");
        let dir = self.work.join(&name);
        self.mkdir(&dir)?;
        let action = if mode.snaps { "snapshot" } else { "pre-dump" };
        let log = self.work.join(format!("{action}-{iteration}-{k}.log"));
        let server = self.page_server(&dir)?;
        let mut args = dump_args(pid.as_raw(), &dir, &log, extra);
        if !mode.snaps {
            args[0] = "pre-dump".into();
        }
        args.extend(dump_mode_args(
            &mode,
            false,
            prev,
            server.as_ref().map(|s| s.1),
        ));
        let ran = self.criu(StepKind::Checkpoint, iteration, &args, &log, &[])?;
        self.dumped(action, iteration, k, &dir, &ran, server)?;
        Ok(format!("../{name}"))
    }

    /// With `page-server`: a `criu page-server` writing into `images`, and its port.
    pub(super) fn page_server(
        &mut self,
        images: &Path,
    ) -> Result<Option<(Daemon, u16)>, StepError> {
        if !self.sc.mode.page_server {
            return Ok(None);
        }
        let port = next_port();
        let d = self.daemon("page-server", images, port, StepKind::Checkpoint)?;
        Ok(Some((d, port)))
    }

    /// With `lazy`: `criu lazy-pages` serving the pages from `images`; with `remote-lazy`,
    /// fed over the loopback by a `criu page-server --lazy-pages` (as the source host's
    /// would). In the order they must finish.
    pub(super) fn lazy_daemons(&mut self, images: &Path) -> Result<Vec<Daemon>, StepError> {
        let mode = self.sc.mode;
        let port = next_port();
        let mut v = Vec::new();
        if mode.lazy == Lazy::Remote {
            v.push(self.daemon("page-server", images, port, StepKind::Restore)?);
        }
        if mode.lazy != Lazy::No {
            v.insert(
                0,
                self.daemon("lazy-pages", images, port, StepKind::Restore)?,
            );
        }
        Ok(v)
    }

    fn daemon(
        &mut self,
        action: &str,
        images: &Path,
        port: u16,
        step: StepKind,
    ) -> Result<Daemon, StepError> {
        let stem = images
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let log = self.work.join(format!("{action}-{stem}.log"));
        let out = self.work.join(format!("{action}-{stem}.out"));
        let args = daemon_args(action, images, &log, port, &self.sc.mode);
        Daemon::start(&self.cfg.criu, &args, &log, &out, step, self.step_budget())
    }

    /// `--leave-stopped` kept its word: every thread of `tree` is stopped.
    pub(super) fn all_stopped(
        &self,
        step: StepKind,
        tree: &[Pid],
        command: &str,
    ) -> Result<(), StepError> {
        match proctree::first_running(tree) {
            None => Ok(()),
            Some(which) => {
                let mut e = StepError::fail(
                    step,
                    format!("criu --leave-stopped, but {which} (every thread should be stopped)"),
                );
                e.failure.command = Some(command.to_string());
                Err(e)
            }
        }
    }
}
