//! The parts of a mode around the dump and the restore: pre-dumps and snapshots, the page
//! server, the lazy-pages daemons, the check that `--leave-stopped` left the tree stopped.

use super::argv::{daemon_args, dump_args, dump_mode_args};
use super::daemons::{next_port, Daemon};
use crate::exec::context::{Run, StepError};
use crate::exec::proctree;
use crate::model::outcome::Outcome;
use crate::model::scenario::{Lazy, StepKind};
use nix::unistd::Pid;
use std::path::Path;

/// The loopback address of the page servers of a move in place.
const LOOPBACK: &str = "127.0.0.1";

/// The page server a dump sends its pages to: ours (a daemon to see to its end), or the
/// migration target's.
pub(super) struct PageServer {
    pub(super) daemon: Option<Daemon>,
    pub(super) address: String,
    pub(super) port: u16,
}

impl PageServer {
    /// Its address and port, as `dump_mode_args` takes them.
    pub(super) fn at(&self) -> (&str, u16) {
        (&self.address, self.port)
    }
}

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
        let server = self.page_server(&dir, k)?;
        let mut args = dump_args(pid.as_raw(), &dir, &log, extra);
        if !mode.snaps {
            args[0] = "pre-dump".into();
        }
        args.extend(dump_mode_args(
            &mode,
            false,
            prev,
            server.as_ref().map(PageServer::at),
        ));
        let ran = self.criu(StepKind::Checkpoint, iteration, &args, &log, &[])?;
        self.dumped(action, iteration, k, &dir, &ran, server)?;
        Ok(format!("../{name}"))
    }

    /// With `page-server`: a `criu page-server` writing into `images`, for copy `k` of the
    /// memory (0: the dump); in a migration, the target's, already listening.
    pub(super) fn page_server(
        &mut self,
        images: &Path,
        k: u32,
    ) -> Result<Option<PageServer>, StepError> {
        if !self.sc.mode.page_server {
            return Ok(None);
        }
        if let Some(peer) = &self.peer {
            // The target's servers: one per pre-dump, then the dump's (see MoveMode).
            let ports = &peer.page_servers;
            let port = match k {
                0 => ports.last(),
                k => ports.get(k as usize - 1),
            };
            let Some(port) = port else {
                return Err(StepError::fail(
                    StepKind::Checkpoint,
                    format!("the target has no page server for copy {k} of the memory"),
                )
                .with_outcome(Outcome::Error));
            };
            return Ok(Some(PageServer {
                daemon: None,
                address: peer.address.clone(),
                port: *port,
            }));
        }
        let port = next_port();
        let d = self.daemon(
            "page-server",
            images,
            (LOOPBACK, port),
            StepKind::Checkpoint,
        )?;
        Ok(Some(PageServer {
            daemon: Some(d),
            address: LOOPBACK.into(),
            port,
        }))
    }

    /// With `lazy`: `criu lazy-pages` serving the pages from `images`; with `remote-lazy`,
    /// fed over the loopback by a `criu page-server --lazy-pages` (as the source host's
    /// would). In the order they must finish.
    /// In a migration, the page server is the source's lazy dump.
    pub(super) fn lazy_daemons(&mut self, images: &Path) -> Result<Vec<Daemon>, StepError> {
        let mode = self.sc.mode;
        let (address, port) = match &self.peer {
            Some(p) => (p.address.clone(), p.lazy_port.unwrap_or(0)),
            None => (LOOPBACK.to_string(), next_port()),
        };
        let mut v = Vec::new();
        if mode.lazy == Lazy::Remote && self.peer.is_none() {
            v.push(self.daemon("page-server", images, (&address, port), StepKind::Restore)?);
        }
        if mode.lazy != Lazy::No {
            v.insert(
                0,
                self.daemon("lazy-pages", images, (&address, port), StepKind::Restore)?,
            );
        }
        Ok(v)
    }

    pub(super) fn daemon(
        &mut self,
        action: &str,
        images: &Path,
        server: (&str, u16),
        step: StepKind,
    ) -> Result<Daemon, StepError> {
        let stem = images
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let log = self.work.join(format!("{action}-{stem}.log"));
        let out = self.work.join(format!("{action}-{stem}.out"));
        let args = daemon_args(action, images, &log, server, &self.sc.mode);
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
