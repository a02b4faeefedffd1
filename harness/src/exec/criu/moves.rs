//! The criu backend's part of a migration: the other guest as the steps meet it ([`Peer`]):
//! the target's page servers a dump sends its pages to, the source's lazy dump that serves
//! the pages of a post-copy restore.

use super::daemons::Daemon;
use crate::exec::context::{Run, StepError};
use crate::exec::visible::moment::{Moment, Reads};
use crate::model::migration::PageServerSlot;
use crate::model::outcome::{CriuMeasure, StepRecord};
use crate::model::scenario::StepKind;
use crtest_vm::command::Ran;
use std::path::Path;
use std::time::Instant;

/// The other guest of a migration.
#[derive(Default)]
pub(crate) struct Peer {
    /// Its address on the private link.
    pub(crate) address: String,
    /// Source: the ports of the target's page servers, one per pre-dump, then the dump's.
    pub(crate) page_servers: Vec<u16>,
    /// Source: the dump serves its pages lazily on this port. Target: the source's port the
    /// lazy-pages daemon fetches them from.
    pub(crate) lazy_port: Option<u16>,
    /// Source: the lazy dump, serving until the target has every page.
    serving: Option<Daemon>,
    /// Target: the page servers taking the source's copies.
    servers: Vec<Daemon>,
}

impl Peer {
    pub(crate) fn new(address: &str) -> Peer {
        Peer {
            address: address.into(),
            ..Peer::default()
        }
    }
}

impl Run<'_> {
    /// The target's page servers: one `criu page-server` for each slot (a folder of the
    /// working directory and a port), each listening before this returns.
    pub(crate) fn serve_pages(&mut self, servers: &[PageServerSlot]) -> Result<(), StepError> {
        for slot in servers {
            let images = self.work.join(&slot.dir);
            self.mkdir(&images)?;
            if let Some(parent) = &slot.parent {
                std::os::unix::fs::symlink(parent, images.join("parent")).map_err(|e| {
                    StepError::fail(
                        StepKind::Restore,
                        format!("cannot link {}/parent: {e}", images.display()),
                    )
                    .with_outcome(crate::model::outcome::Outcome::Error)
                })?;
            }
            let d = self.daemon("page-server", &images, ("", slot.port), StepKind::Restore)?;
            if let Some(peer) = self.peer.as_mut() {
                peer.servers.push(d);
            }
        }
        Ok(())
    }

    /// The target's page servers killed (a fault put in a move's way).
    pub(crate) fn kill_page_servers(&mut self) {
        if let Some(p) = self.peer.as_mut() {
            // Each is killed as it is dropped.
            p.servers.clear();
        }
    }

    /// The target's page servers seen to their end: each exits once its dump is done.
    pub(crate) fn page_servers_done(&mut self) -> Result<(), StepError> {
        let servers = self
            .peer
            .as_mut()
            .map(|p| std::mem::take(&mut p.servers))
            .unwrap_or_default();
        let limit = self.step_budget().min(std::time::Duration::from_secs(30));
        for d in servers {
            d.finish(limit)?;
        }
        Ok(())
    }

    /// The source's post-copy dump, `criu dump ARGS --lazy-pages --port PORT`: it returns
    /// once the images are written and it serves the pages; it ends when the target has
    /// every page ([`Run::lazy_dump_done`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dump_serving(
        &mut self,
        iteration: u32,
        images: &Path,
        mut args: Vec<String>,
        log: &Path,
        env: &[(String, String)],
        reads: Option<Reads>,
        port: u16,
    ) -> Result<(), StepError> {
        args.extend(["--lazy-pages".into(), "--port".into(), port.to_string()]);
        let out = log.with_extension("out");
        let started = Instant::now();
        let daemon = Daemon::start_with_env(
            &self.cfg.criu,
            &args,
            env,
            log,
            &out,
            StepKind::Checkpoint,
            self.step_budget(),
        )?;
        let ran = Ran {
            command: daemon.command.clone(),
            status: 0,
            output: String::new(),
            timed_out: false,
            elapsed: started.elapsed(),
        };
        self.substeps.push(StepRecord {
            step: "checkpoint:criu dump".into(),
            iteration,
            ms: ran.elapsed.as_millis() as u64,
            ok: true,
        });
        self.dumped("dump", iteration, 0, images, &ran, None)?;
        if let (Some(r), Some(pid)) = (&reads, self.pid) {
            self.visible_taken(r, Moment::Dumped, pid, iteration);
        }
        if let Some(peer) = self.peer.as_mut() {
            peer.serving = Some(daemon);
        }
        Ok(())
    }

    /// The source's lazy dump seen to its end (the target has every page). Without `wait`
    /// (the move failed) it is stopped at once: it holds the tree until a target that is not
    /// coming has every page. (Its statistics do not count the pages it served, and its
    /// frozen time runs on to its end: the target's lazy-pages daemon counts the pages.)
    /// `Ok` without a lazy dump.
    pub(crate) fn lazy_dump_done(&mut self, wait: bool) -> Result<(), StepError> {
        let Some(daemon) = self.peer.as_mut().and_then(|p| p.serving.take()) else {
            return Ok(());
        };
        if !wait {
            drop(daemon);
            return Ok(());
        }
        daemon.finish(self.step_budget()).map(|_| ())
    }

    /// The measure of the last dump (not a pre-dump).
    pub(crate) fn last_dump_mut(&mut self) -> Option<&mut CriuMeasure> {
        self.criu_runs.iter_mut().rev().find(|m| m.action == "dump")
    }
}
