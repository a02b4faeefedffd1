//! What each criu run of a scenario measured (its `stats-dump` / `stats-restore`) and what
//! the harness timed around it, for run.json; and the daemons beside it seen to their end.

use super::daemons::Daemon;
use crate::exec::context::{Run, StepError};
use crate::model::outcome::{CriuMeasure, DumpMeasure, RestoreMeasure, StepRecord};
use crtest_vm::command::Ran;
use std::path::Path;
use std::time::Instant;

/// criu's page size on x86-64.
const PAGE: u64 = 4096;

impl Run<'_> {
    /// After a dump, pre-dump or snapshot into `dir`: its page server seen to its end, and
    /// what criu measured recorded.
    pub(super) fn dumped(
        &mut self,
        action: &str,
        iteration: u32,
        index: u32,
        dir: &Path,
        ran: &Ran,
        server: Option<super::modes::PageServer>,
    ) -> Result<(), StepError> {
        let served = server.is_some();
        if let Some(d) = server.and_then(|s| s.daemon) {
            d.finish(self.step_budget())?;
        }
        let dump = crate::ckpt::dir::dump_stats(dir)
            .ok()
            .flatten()
            .map(DumpMeasure::from);
        let page_server_bytes = served
            .then(|| dump.as_ref().map(|d| d.pages_written * PAGE))
            .flatten();
        self.criu_runs.push(CriuMeasure {
            action: action.into(),
            iteration,
            index,
            ms: ran.elapsed.as_millis() as u64,
            via: self.via().into(),
            dump,
            page_server_bytes,
            ..CriuMeasure::default()
        });
        Ok(())
    }

    /// After a restore from `dir`: the lazy daemons seen to their end (the last page
    /// served), and what criu measured recorded.
    pub(super) fn restored(
        &mut self,
        iteration: u32,
        dir: &Path,
        ran: &Ran,
        lazy: Vec<Daemon>,
    ) -> Result<(), StepError> {
        let lazy_running_ms = (!lazy.is_empty()).then_some(ran.elapsed.as_millis() as u64);
        let restore_start = Instant::now() - ran.elapsed;
        let mut lazy_done_ms = None;
        for d in lazy {
            let ended = d.finish(self.step_budget())?;
            let ms = ended.saturating_duration_since(restore_start).as_millis() as u64;
            lazy_done_ms = Some(lazy_done_ms.unwrap_or(0).max(ms));
        }
        if let Some(ms) = lazy_done_ms {
            self.substeps.push(StepRecord {
                step: "restore:last lazy page".into(),
                iteration,
                ms,
                ok: true,
            });
        }
        let restore = crate::ckpt::dir::restore_stats(dir)
            .ok()
            .flatten()
            .map(RestoreMeasure::from);
        self.criu_runs.push(CriuMeasure {
            action: "restore".into(),
            iteration,
            index: 0,
            ms: ran.elapsed.as_millis() as u64,
            via: self.via().into(),
            restore,
            lazy_running_ms,
            lazy_done_ms,
            lazy_pages: lazy_done_ms.map(|_| self.lazy_pages_copied(dir)),
            ..CriuMeasure::default()
        });
        Ok(())
    }

    /// The pages the lazy-pages daemon of the restore from `dir` copied in (its log).
    fn lazy_pages_copied(&self, dir: &Path) -> u64 {
        let stem = dir.file_name().unwrap_or_default().to_string_lossy();
        let log = self.work.join(format!("lazy-pages-{stem}.log"));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        crate::diagnose::criu_log::lazy_pages_copied(&text)
    }

    /// How criu was given its options.
    fn via(&self) -> &'static str {
        match (self.sc.mode.rpc, self.sc.mode.criu_config) {
            (true, _) => "rpc",
            (_, true) => "config",
            _ => "cli",
        }
    }
}

// criu's statistics as run.json keeps them (here: `model` reads no images).
impl From<crate::ckpt::entries::DumpStats> for DumpMeasure {
    fn from(s: crate::ckpt::entries::DumpStats) -> DumpMeasure {
        DumpMeasure {
            freezing_us: s.freezing_time.into(),
            frozen_us: s.frozen_time.into(),
            memdump_us: s.memdump_time.into(),
            memwrite_us: s.memwrite_time.into(),
            pages_scanned: s.pages_scanned,
            pages_skipped_parent: s.pages_skipped_parent,
            pages_written: s.pages_written,
            pages_lazy: s.pages_lazy,
        }
    }
}

impl From<crate::ckpt::entries::RestoreStats> for RestoreMeasure {
    fn from(s: crate::ckpt::entries::RestoreStats) -> RestoreMeasure {
        RestoreMeasure {
            forking_us: s.forking_time.into(),
            restore_us: s.restore_time.into(),
            pages_compared: s.pages_compared,
            pages_skipped_cow: s.pages_skipped_cow,
            pages_restored: s.pages_restored,
        }
    }
}
