//! The visible-state comparison as the model sees it: the kinds of items compared, a
//! scenario's relaxations (`[expect] visible-state-ignore`), and the record kept in
//! `run.json` (`visible_state`). The items themselves are read from /proc by
//! `exec::visible`.

use serde::{Deserialize, Serialize};

/// The kinds of items, each a word a scenario may name (alone, or with a field:
/// `fds.pos`, `creds.CapBnd`, `maps.[vdso]`).
pub const KINDS: &[(&str, &str)] = &[
    (
        "process",
        "name, stopped/zombie state, thread count, parent, umask",
    ),
    (
        "fds",
        "each fd: target (pipes, sockets, anon inodes renamed), flags, position",
    ),
    (
        "maps",
        "each mapping: range, protection, sharing, offset, backing file, VmFlags",
    ),
    (
        "mounts",
        "mountinfo of each mount namespace: mount point, root, type, source, options, propagation",
    ),
    (
        "creds",
        "uids, gids, groups, capabilities, no_new_privs, seccomp mode, loginuid",
    ),
    ("signals", "blocked, ignored and caught signal masks"),
    ("cgroup", "each hierarchy's cgroup path"),
    (
        "ns",
        "each namespace: the agent's own or one of the tree's (renamed)",
    ),
    ("fs", "cwd, root, exe"),
    ("limits", "each resource limit: soft and hard"),
];

/// The names of [`KINDS`].
pub fn kind_names() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|(k, _)| *k)
}

/// Why a relaxation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("unknown item `{item}`: its kind must be one of {kinds}")]
    UnknownKind { item: String, kinds: String },
    #[error("item `{0}` needs a reason")]
    NoReason(String),
}

/// One relaxation: differences of `item` do not fail the scenario; they are listed as
/// ignored, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    /// A kind (`maps`), or a kind and a field (`fds.pos`, `creds.CapBnd`).
    pub item: String,
    /// Why the difference is expected (shown in reports).
    pub reason: String,
}

impl Ignore {
    /// Checks that the item's kind is one of [`KINDS`] and that it says why.
    pub fn validate(&self) -> Result<(), IgnoreError> {
        let kind = self.item.split('.').next().unwrap_or("");
        if !kind_names().any(|k| k == kind) {
            return Err(IgnoreError::UnknownKind {
                item: self.item.clone(),
                kinds: kind_names().collect::<Vec<_>>().join(", "),
            });
        }
        if self.reason.trim().is_empty() {
            return Err(IgnoreError::NoReason(self.item.clone()));
        }
        Ok(())
    }

    /// True when the item id `kind.field...` (e.g. `fds.3.pos`) falls under this
    /// relaxation: the same id, one below it (`fds` covers `fds.3.pos`), or the same kind
    /// and last part (`fds.pos` covers `fds.3.pos`).
    pub fn covers(&self, id: &str) -> bool {
        let pat = self.item.as_str();
        if id == pat || id.starts_with(&format!("{pat}.")) {
            return true;
        }
        match (pat.split_once('.'), id.split_once('.')) {
            (Some((pk, plast)), Some((ik, _))) => pk == ik && id.rsplit('.').next() == Some(plast),
            _ => false,
        }
    }
}

/// What the comparison did for one scenario (`run.json`: `visible_state`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisibleState {
    /// The kinds compared (see [`KINDS`]).
    pub compared: Vec<String>,
    /// Processes compared (the tree before the checkpoint), summed over iterations.
    pub processes: usize,
    /// Items compared, summed over iterations.
    pub items: usize,
    /// How each side was read: `before: frozen, at criu's post-dump` and `after: frozen, at
    /// criu's pre-resume` (one entry a side, for every way used over the iterations). A side
    /// read while the tree ran says so: only then are items left out as `unstable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// Items that changed between the reads of a side read while the tree ran, a few
    /// milliseconds apart: the tree changes them itself, so they say nothing of the
    /// checkpoint. (A side read frozen is read once; nothing of it is left out.)
    #[serde(default)]
    pub unstable: usize,
    /// Each difference not covered by a relaxation: `pid 1 fds.3.flags: 02 before, 0102 after`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
    /// Differences a relaxation covered, each with the relaxation's item and reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
    /// What was normalised (renamed inodes, vDSO placement): counts by rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub normalised: Vec<String>,
    /// Why the comparison could not be made, when it could not (the tree was gone, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
}

/// A difference a scenario's relaxation covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub item: String,
    pub reason: String,
    pub difference: String,
}

/// At most this many differences are kept (the first ones, in item order); the count of
/// the rest is the last entry.
pub const MAX_DIFFERENCES: usize = 40;

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(item: &str) -> Ignore {
        Ignore {
            item: item.into(),
            reason: "r".into(),
        }
    }

    #[test]
    fn relaxations_cover_their_items() {
        assert!(ig("fds").covers("fds.3.pos"));
        assert!(ig("fds.pos").covers("fds.3.pos"));
        assert!(ig("fds.3").covers("fds.3.flags"));
        assert!(!ig("fds.pos").covers("fds.3.flags"));
        assert!(!ig("fd").covers("fds.3.pos"));
        assert!(ig("creds.CapBnd").covers("creds.CapBnd"));
        assert!(!ig("creds.CapBnd").covers("creds.CapEff"));
        assert!(ig("maps.[vdso]").covers("maps.[vdso]"));
        assert!(!ig("maps").covers("mapsx.1"));
    }

    #[test]
    fn relaxations_are_checked() {
        assert!(ig("maps").validate().is_ok());
        assert!(ig("fds.pos").validate().is_ok());
        let e = ig("memory").validate().unwrap_err().to_string();
        assert!(e.contains("unknown item `memory`"), "{e}");
        let e = Ignore {
            item: "maps".into(),
            reason: " ".into(),
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs a reason"), "{e}");
    }
}
