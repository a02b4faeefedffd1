//! The comparison as the backends drive it: a side is handed over once read (inside criu,
//! frozen, or running), kept beside the scenario's logs, and the "after" side compared with
//! the "before" one.

use crate::exec::context::Run;
use crate::exec::visible::capture::{self, ReadError};
use crate::exec::visible::freeze::{self, TreeCgroup};
use crate::exec::visible::moment::{Moment, Reads, AGENT_BINARY};
use crate::exec::visible::{add, asked_for, compare, lazy_restore_registrations, render, Side};
use crate::model::scenario::Lazy;
use crate::model::visible::VisibleState;
use nix::unistd::Pid;
use std::fmt::Display;
use std::path::Path;

/// How the "after" side of a dump that left the tree running is read.
const LET_GO: &str = "frozen by the cgroup freezer from criu's post-dump on: as criu let it go";

/// How a container read frozen before the checkpoint is described.
const FROZEN_BY_HARNESS: &str =
    "frozen in the container's cgroup before the checkpoint: as criu then found it";

/// The comparison's part of one scenario's run.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// What the tree showed at the current checkpoint.
    before: Option<Side>,
    /// The comparison so far, over the iterations.
    pub(crate) result: Option<VisibleState>,
    /// The tree's own cgroup, for a dump that leaves it running (frozen around the dump).
    pub(crate) cgroup: Option<TreeCgroup>,
    /// Why a side was not read as it should have been, for the next comparison's `reads`.
    notes: Vec<String>,
    /// Relaxations the backend adds, each with its reason (a runtime that restores some
    /// item another way by design).
    pub(crate) relax: Vec<crate::model::visible::Ignore>,
}

impl Tracker {
    /// The side read at the current checkpoint.
    pub(crate) fn before(&self) -> Option<&Side> {
        self.before.as_ref()
    }

    /// The side read at the checkpoint, by another guest (a migration's source).
    pub(crate) fn set_before(&mut self, side: Side) {
        self.before = Some(side);
    }
}

/// Which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Before,
    After,
}

impl Run<'_> {
    /// The reads inside criu for the dump (`stage` "dump") or restore ("restore") of
    /// `iteration`; `None` when the agent binary is not at hand (the sides are then read
    /// while the tree runs), or when there is no "before" side to compare a restore with.
    pub(crate) fn visible_reads(&self, stage: &str, iteration: u32) -> Option<Reads> {
        if stage == "restore" && self.visible.before.is_none() {
            return None;
        }
        Reads::new(
            self.work.join(format!("visible-{stage}-{iteration}")),
            self.cfg.bin_dir.join(AGENT_BINARY),
        )
    }

    /// Freezes the cgroup `cg` (a container's), waits until it is frozen and reads the tree
    /// rooted at `root` as the checkpoint that follows will find it; the cgroup stays frozen
    /// (the caller thaws it). Read running when it cannot be frozen, and said.
    ///
    /// The "after" side of such a container can only be read once the runtime resumed it:
    /// what the workload changes by itself (an fd it opens for a moment) is found first by
    /// reading the tree running, and left out of the frozen side as unstable.
    pub(crate) fn visible_frozen_in(&mut self, cg: &Path, root: Pid, iteration: u32) {
        let running = capture::running(root);
        let frozen = freeze::freeze_now(cg).and_then(|()| freeze::wait_frozen(cg));
        match frozen {
            Ok(()) => {
                let side = capture::frozen(root, FROZEN_BY_HARNESS).map(|mut side| {
                    if let Ok(r) = &running {
                        capture::leave_out_unsteady(&mut side, r);
                    }
                    side
                });
                self.visible_side(Which::Before, side, iteration);
            }
            Err(e) => {
                self.note_visible(format!("the container's cgroup could not be frozen: {e}"));
                self.visible_running(Which::Before, root, iteration);
            }
        }
    }

    /// Reads the tree rooted at `root` while it runs (a side that cannot be read frozen).
    pub(crate) fn visible_running(&mut self, which: Which, root: Pid, iteration: u32) {
        if which == Which::After && self.visible.before.is_none() {
            return;
        }
        let side = capture::running(root);
        self.visible_side(which, side, iteration);
    }

    /// The side read inside criu at `moment`; when the script gave none for a restore, the
    /// restored tree is read running instead, and the report says why.
    pub(crate) fn visible_taken(
        &mut self,
        reads: &Reads,
        moment: Moment,
        root: Pid,
        iteration: u32,
    ) {
        let which = match moment {
            Moment::Dumped => Which::Before,
            Moment::Restored => Which::After,
        };
        match (reads.take(moment), which) {
            (Ok(side), _) => self.visible_side(which, Ok::<_, ReadError>(side), iteration),
            (Err(e), Which::After) => {
                let side = capture::running(root).map(|mut s| {
                    s.read = format!("{} ({e})", s.read);
                    s
                });
                self.visible_side(which, side, iteration)
            }
            (Err(e), Which::Before) => self.visible_side(which, Err::<Side, _>(e), iteration),
        }
    }

    /// After a dump that left the tree running: "before" as `reads` took it at criu's
    /// `post-dump`, where the script also froze the cgroup `cg`; "after" once the tree, let
    /// go by criu, is frozen (the caller thaws it). Without reads inside criu, "after" is
    /// read running.
    pub(crate) fn visible_left_running(
        &mut self,
        reads: Option<&Reads>,
        cg: Option<&Path>,
        root: Pid,
        iteration: u32,
    ) {
        let (Some(reads), Some(cg)) = (reads, cg) else {
            return self.visible_running(Which::After, root, iteration);
        };
        self.visible_taken(reads, Moment::Dumped, root, iteration);
        match freeze::wait_frozen(cg) {
            Ok(()) => {
                let side = capture::frozen(root, LET_GO);
                self.visible_side(Which::After, side, iteration);
            }
            Err(e) => {
                self.note_visible(format!("the tree was not frozen after the dump: {e}"));
                self.visible_running(Which::After, root, iteration);
            }
        }
    }

    /// Hands over one side: "before" is kept, "after" is compared with it.
    pub(crate) fn visible_side<E: Display>(
        &mut self,
        which: Which,
        side: Result<Side, E>,
        iteration: u32,
    ) {
        let (name, when) = match which {
            Which::Before => ("before", "at checkpoint"),
            Which::After => ("after", "after restore"),
        };
        let side = match side {
            Ok(side) => side,
            Err(why) => {
                self.visible.before = None;
                return self.visible_not_compared(format!("{when} {iteration}: {why}"));
            }
        };
        let _ = std::fs::write(
            self.work.join(format!("visible-{name}-{iteration}.log")),
            render(&side),
        );
        match which {
            Which::Before => self.visible.before = Some(side),
            Which::After => {
                let Some(before) = self.visible.before.take() else {
                    return;
                };
                let mut ignore = self.sc.expect.visible_state_ignore.clone();
                ignore.extend(asked_for(&self.sc.restore_args));
                ignore.extend(self.visible.relax.iter().cloned());
                let mut side = side;
                if self.sc.mode.lazy != Lazy::No {
                    lazy_restore_registrations(&before, &mut side);
                }
                let mut v = compare(&before, &side, &ignore);
                v.reads.append(&mut self.visible.notes);
                add(&mut self.visible.result, v);
            }
        }
    }

    /// Says, beside how the sides were read, why one was not read frozen.
    pub(crate) fn note_visible(&mut self, why: String) {
        self.visible.notes.push(why);
    }

    fn visible_not_compared(&mut self, why: String) {
        add(
            &mut self.visible.result,
            VisibleState {
                not_compared: Some(why),
                ..VisibleState::default()
            },
        );
    }
}
