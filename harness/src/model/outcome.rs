//! What one scenario came to: its outcome, phase timings and, when it failed, why.
//!
//! These types are produced by the executor (in the guest or on the host), travel to the
//! host as events, and are written into `run.json` unchanged.

use serde::{Deserialize, Serialize};

/// The vocabulary of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    Xfail,
    Xpass,
    /// Infrastructure: boot failed, a tool is missing, the harness could not run the step.
    Error,
    Timeout,
    Panic,
    /// Run several times (`--repeat`, the VM trials' retry): passed on some attempts and did
    /// not on others. Not bad (the scenario can pass), but named, with every attempt kept.
    Flaky,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::Xfail => "xfail",
            Outcome::Xpass => "xpass",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Panic => "panic",
            Outcome::Flaky => "flaky",
        }
    }

    /// Outcomes that make `crtest run` exit 1.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            Outcome::Fail | Outcome::Xpass | Outcome::Error | Outcome::Timeout | Outcome::Panic
        )
    }

    /// Outcomes where the scenario did what it should (at least once, for `flaky`).
    pub fn is_good(self) -> bool {
        matches!(self, Outcome::Pass | Outcome::Xfail | Outcome::Flaky)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time spent in each phase, in milliseconds. Checkpoint and restore add up over iterations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phases {
    /// From starting the workload to its `ready` file.
    pub ready_ms: Option<u64>,
    pub checkpoint_ms: Option<u64>,
    pub restore_ms: Option<u64>,
    pub verify_ms: Option<u64>,
}

impl Phases {
    pub fn add(&mut self, kind: crate::model::scenario::StepKind, ms: u64) {
        use crate::model::scenario::StepKind::*;
        let slot = match kind {
            // An external test's run is the scenario's whole duration.
            Start | Run => return,
            WaitReady => &mut self.ready_ms,
            Checkpoint => &mut self.checkpoint_ms,
            Restore => &mut self.restore_ms,
            Verify => &mut self.verify_ms,
        };
        *slot = Some(slot.unwrap_or(0) + ms);
    }
}

/// One step as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    pub iteration: u32,
    pub ms: u64,
    pub ok: bool,
}

/// Why a scenario did not pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The step that failed (`checkpoint`, `verify`, ...), or `boot`/`scenario` for the VM.
    pub step: String,
    /// The full command line, when the step ran a command.
    pub command: Option<String>,
    /// Exit status of that command (or of the workload), when it exited.
    pub exit_status: Option<i32>,
    /// The first meaningful error line (from the tool's log or the workload's verdict).
    pub first_error_line: Option<String>,
    /// The errno by name (`EBUSY`), when the logs carry one.
    pub errno: Option<String>,
    /// The failure class (`pid-collision`, `missing-tool`, ...; see harness/data/failure-classes.toml).
    #[serde(default)]
    pub class: Option<String>,
    /// One sentence for people.
    pub message: String,
    /// Kernel messages of the step's time window (guest dmesg).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dmesg: Vec<String>,
    /// The last console lines, for boot failures, timeouts and panics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub console_tail: Vec<String>,
}

/// The result of one scenario, as stored in `run.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
    pub phases: Phases,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    /// The workload's own verdict text.
    pub detail: Option<String>,
    pub failure: Option<Failure>,
    /// Files kept for this scenario, relative to the run directory.
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// Processes the scenario left running in the guest (killed after it), `name(pid)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<String>,
    /// The screenshots of a `[vnc]` scenario and how they compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screens: Option<Screens>,
    /// The scenario's tags, for filtering reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When it ran several times: every attempt, in order (the fields above are the
    /// representative attempt's: the first that did not pass, else the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// What the tree showed from outside before the checkpoint against after the restore
    /// (see `model::visible`); absent when the scenario had no tree to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_state: Option<crate::model::visible::VisibleState>,
    /// Each criu dump, pre-dump, snapshot and restore as criu measured it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub criu_runs: Vec<CriuMeasure>,
    /// A migration's scenario: how the move went and what it cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MoveMeasure>,
}

/// What one migration of a scenario cost, and what became of the source's tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveMeasure {
    /// `images`, `page-server`, `pre-dump=N` or `lazy`.
    pub mode: String,
    /// From the final dump's start to the tree running on the target (the dump's own time,
    /// the handoff's time on the host, the restore's own time; for `lazy`, to the restored
    /// tree running, not to the last page), ms. `None` when it never ran there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_ms: Option<u64>,
    /// From the first copy of the memory (a pre-dump, or the dump) to the restore's end
    /// (the last lazy page included), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
    /// Bytes copied from the source's share to the target's through the host (the images
    /// and the working directory).
    pub host_bytes: u64,
    /// Bytes of pages sent over the private link (page servers, lazy pages).
    pub link_bytes: u64,
    /// What became of the tree on the source: `gone` (the move held: killed there),
    /// `running` (the move failed: it goes on, checked alive), `lost` (it did not survive).
    pub source: String,
}

/// One criu run of a scenario: what criu measured (its `stats-dump` or `stats-restore`) and
/// what the harness timed around it. criu's times are in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriuMeasure {
    /// `pre-dump`, `snapshot` (a leave-running dump before the last), `dump` or `restore`.
    pub action: String,
    pub iteration: u32,
    /// The pre-dump's or snapshot's number (from 1); 0 for the dump and the restore.
    #[serde(default)]
    pub index: u32,
    /// The command's wall time in milliseconds.
    pub ms: u64,
    /// How the command was given: `cli`, `config` (a `--config` file) or `rpc`.
    pub via: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<DumpMeasure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreMeasure>,
    /// Bytes of pages the dump sent to a `criu page-server` (pages written x 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_server_bytes: Option<u64>,
    /// A lazy restore: milliseconds from the restore's start to the tree running (criu
    /// restore returned) and to the last page served (the lazy-pages daemon exited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy_running_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy_done_ms: Option<u64>,
    /// A lazy restore: the pages the lazy-pages daemon copied in (its log's `UFFD transferred
    /// pages`, summed over the tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy_pages: Option<u64>,
    /// An OCI engine's whole checkpoint or restore as it timed it (podman's
    /// `--print-stats`), in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_us: Option<u64>,
    /// The OCI runtime's part of it (`runc checkpoint`, ...), in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_us: Option<u64>,
}

/// criu's `dump_stats_entry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpMeasure {
    /// Freezing the tree.
    pub freezing_us: u64,
    /// The tree held frozen: the time the workload stood still.
    pub frozen_us: u64,
    pub memdump_us: u64,
    pub memwrite_us: u64,
    pub pages_scanned: u64,
    pub pages_skipped_parent: u64,
    pub pages_written: u64,
    pub pages_lazy: u64,
}

/// criu's `restore_stats_entry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMeasure {
    pub forking_us: u64,
    pub restore_us: u64,
    pub pages_compared: u64,
    pub pages_skipped_cow: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages_restored: Option<u64>,
}

/// One attempt of a scenario run several times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Its kept files, relative to the run directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
}

impl Attempt {
    fn of(r: &ScenarioResult) -> Attempt {
        Attempt {
            outcome: r.outcome,
            duration_ms: r.duration_ms,
            failure: r.failure.clone(),
            artifacts: r.artifacts.clone(),
        }
    }
}

/// The result of a scenario run as `attempts` (in order, at least one): one outcome for all
/// (`flaky` when some did what they should and others broke), the representative attempt's
/// fields (the first that broke, else the first), and every attempt under `attempts`.
pub fn combine(attempts: Vec<ScenarioResult>) -> Option<ScenarioResult> {
    let first = attempts.first()?;
    if attempts.len() == 1 {
        return attempts.into_iter().next();
    }
    let good = attempts.iter().filter(|a| a.outcome.is_good()).count();
    let bad = attempts.iter().filter(|a| a.outcome.is_bad()).count();
    let rep = attempts
        .iter()
        .position(|a| a.outcome.is_bad())
        .unwrap_or_else(|| {
            attempts
                .iter()
                .position(|a| a.outcome != first.outcome)
                .unwrap_or(0)
        });
    let mut out = attempts[rep].clone();
    out.attempts = attempts.iter().map(Attempt::of).collect();
    if good > 0 && bad > 0 {
        out.outcome = Outcome::Flaky;
        out.detail = Some(format!(
            "{good} of {} attempts passed; {bad} did not: {}",
            attempts.len(),
            attempts
                .iter()
                .map(|a| a.outcome.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Some(out)
}

/// The screenshots of a `[vnc]` scenario (PNG files, paths relative to the run directory)
/// and their comparisons.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screens {
    /// Before the checkpoint, after `type-before`.
    pub before: Option<String>,
    /// After the (last) restore.
    pub restored: Option<String>,
    /// `before` against `restored`: the figure the scenario is judged by.
    pub restore_diff: Option<crate::vnc::frame::Diff>,
    /// The restored screen dimmed, with the pixels that differ from `before` in red.
    pub diff_image: Option<String>,
    /// After `type-after`.
    pub typed: Option<String>,
    /// `restored` against `typed`: what the keys typed after the restore changed.
    pub typing_diff: Option<crate::vnc::frame::Diff>,
    /// The limit `restore_diff` was held to.
    pub max_diff_pixels: u64,
}

impl ScenarioResult {
    /// Every file path the result holds (kept files, screenshots), relative to its run
    /// directory: what moves when the result moves into another run (shards, cells, merges).
    pub fn paths_mut(&mut self) -> impl Iterator<Item = &mut String> {
        let screens = self.screens.iter_mut().flat_map(|s| {
            [
                &mut s.before,
                &mut s.restored,
                &mut s.diff_image,
                &mut s.typed,
            ]
            .into_iter()
            .flatten()
        });
        let attempts = self
            .attempts
            .iter_mut()
            .flat_map(|a| a.artifacts.iter_mut());
        self.artifacts.iter_mut().chain(screens).chain(attempts)
    }

    /// A result for a scenario that did not get to run its steps.
    pub fn without_steps(name: &str, outcome: Outcome, failure: Failure) -> ScenarioResult {
        ScenarioResult {
            name: name.to_string(),
            outcome,
            duration_ms: 0,
            phases: Phases::default(),
            steps: Vec::new(),
            detail: None,
            failure: Some(failure),
            artifacts: Vec::new(),
            leftovers: Vec::new(),
            screens: None,
            tags: Vec::new(),
            attempts: Vec::new(),
            visible_state: None,
            criu_runs: Vec::new(),
            migration: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(o: Outcome) -> ScenarioResult {
        let mut r = ScenarioResult::without_steps("x", o, Failure::default());
        if !o.is_bad() {
            r.failure = None;
        }
        r.artifacts = vec![format!("rounds/{o}/x.log")];
        r
    }

    #[test]
    fn attempts_combine_into_one_outcome() {
        use Outcome::*;
        assert_eq!(combine(vec![]), None);
        assert_eq!(combine(vec![r(Pass)]).unwrap().attempts, vec![]);
        let all = combine(vec![r(Pass), r(Pass)]).unwrap();
        assert_eq!((all.outcome, all.attempts.len()), (Pass, 2));
        let f = combine(vec![r(Pass), r(Fail), r(Pass)]).unwrap();
        assert_eq!(f.outcome, Flaky);
        assert_eq!(
            f.artifacts,
            ["rounds/fail/x.log"],
            "the failing attempt is shown"
        );
        assert!(f.failure.is_some());
        assert_eq!(
            f.detail.as_deref(),
            Some("2 of 3 attempts passed; 1 did not: pass, fail, pass")
        );
        assert!(!Flaky.is_bad() && Flaky.is_good());
        assert_eq!(combine(vec![r(Fail), r(Timeout)]).unwrap().outcome, Fail);
        assert_eq!(combine(vec![r(Xfail), r(Xpass)]).unwrap().outcome, Flaky);
        assert_eq!(combine(vec![r(Skip), r(Skip)]).unwrap().outcome, Skip);
        let mut f = f;
        assert_eq!(f.paths_mut().count(), 4, "the attempts' files move too");
    }
}
