//! The visible-state comparison: what every process of the tree shows from outside (fds,
//! mappings, mounts, credentials, signals, cgroup, namespaces, cwd/root/exe, limits), read
//! before the checkpoint and after the restore, compared item by item.
//!
//! Each side is read at the moment that matters, while the tree cannot change: "before" as
//! criu dumps it (criu's `post-dump` action, the tree still seized, as the images hold it) and
//! "after" as criu restored it, before it runs again (`pre-resume`); see [`moment`]. A dump
//! that leaves the tree running is read with the tree frozen around it ([`freeze`]). Only a
//! side that cannot be read so is read while the tree runs, three times, and what changes
//! between those reads is left out as `unstable` ([`capture::running`]).

pub mod capture;
pub mod freeze;
pub mod moment;
pub mod read;
pub(crate) mod steps;

use crate::model::visible::{kind_names, Ignore, Ignored, VisibleState, MAX_DIFFERENCES};
use read::Items;
use std::collections::BTreeMap;

pub(crate) use steps::{Tracker, Which};

/// One side's items, and what was normalised while reading them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    pub items: Items,
    pub processes: usize,
    /// Items that changed between the reads of a side read while the tree ran (or were in
    /// only one): not compared, on either side. Empty for a side read frozen.
    pub unstable: std::collections::BTreeSet<(String, String)>,
    pub normalised: BTreeMap<String, usize>,
    /// How the side was read: frozen (and at which moment) or running.
    pub read: String,
}

/// The kind of an item id (`fds` of `fds.3.flags`).
fn kind_of(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

const OWN_PROC_READ: &str = "a /proc file open on one side only (the tree reading its own /proc)";

/// True when item `k` belongs to an fd of `side` open on a /proc file: a workload reading
/// its own status or maps has it open for a moment, and an fd that is there on one side
/// only says nothing of the checkpoint. (Open on both sides, it is compared.)
fn own_proc_read(side: &Side, k: &(String, String)) -> bool {
    let Some(rest) = k.1.strip_prefix("fds.") else {
        return false;
    };
    let fd = rest.split('.').next().unwrap_or("");
    side.items
        .get(&(k.0.clone(), format!("fds.{fd}.target")))
        .is_some_and(|t| t.starts_with("/proc/"))
}

const TTY_DRAINED: &str = "a tty's O_NONBLOCK seen at the dump only (criu sets it on the tty's open file to drain the queued input, and puts it back only when the tree goes on: criu/tty.c)";

/// True when item `k` is the flags of a tty fd that showed O_NONBLOCK at the dump and not
/// after: criu's doing while it dumped the tty's queued input, not the tree's (the images
/// hold the flags from before).
fn tty_drained(before: &Side, k: &(String, String), b: &str, a: &str) -> bool {
    let Some(fd) =
        k.1.strip_prefix("fds.")
            .and_then(|r| r.strip_suffix(".flags"))
    else {
        return false;
    };
    let tty = before
        .items
        .get(&(k.0.clone(), format!("fds.{fd}.target")))
        .is_some_and(|t| {
            t.starts_with("/dev/pts/") || t == "/dev/ptmx" || t.starts_with("/dev/tty")
        });
    const O_NONBLOCK: u32 = 0o4000;
    match (u32::from_str_radix(b, 8), u32::from_str_radix(a, 8)) {
        (Ok(b), Ok(a)) => tty && a & O_NONBLOCK == 0 && b == a | O_NONBLOCK,
        _ => false,
    }
}

/// What criu changes on purpose, by rule: the rule's description when `before` -> `after`
/// of item `id` is one of them.
pub fn expected_change(id: &str, before: &str, after: &str) -> Option<&'static str> {
    if matches!(id, "ns.time" | "ns.time_for_children")
        && before == "time:host"
        && after.starts_with("time@")
    {
        return Some("restored into a time namespace of criu's (monotonic clocks go on)");
    }
    None
}

/// A lazy restore's side: the mappings criu left registered with its userfaultfd (VmFlags
/// `um` added, nothing else changed), their pages still to come when the side was read,
/// are put back as the other side had them and counted as normalised. Only for a lazy
/// restore: anywhere else such a registration is a difference.
pub fn lazy_restore_registrations(before: &Side, after: &mut Side) {
    let mut n = 0;
    for (k, a) in after.items.iter_mut() {
        if !k.1.starts_with("maps.") {
            continue;
        }
        if let Some(b) = before.items.get(k).filter(|b| lazy_registered(b, a)) {
            *a = b.clone();
            n += 1;
        }
    }
    if n > 0 {
        after.normalised.insert(
            "mappings a lazy restore left registered with criu's userfaultfd (VmFlags um), their pages still to come".into(),
            n,
        );
    }
}

/// `after` is `before` with `um` (userfaultfd, missing pages) added to the VmFlags (the
/// last `[...]`): a mapping a lazy restore left registered with criu's userfaultfd. Only
/// criu adds it; a process's own registration lost is the other way round and stays a
/// difference.
fn lazy_registered(before: &str, after: &str) -> bool {
    let flags = |v: &str| -> Option<(String, Vec<String>)> {
        let at = v.rfind('[')?;
        let inner = v[at + 1..].strip_suffix(']')?;
        let mut f: Vec<String> = inner.split_whitespace().map(String::from).collect();
        f.sort();
        Some((v[..at].to_string(), f))
    };
    let (Some((bh, bf)), Some((ah, mut af))) = (flags(before), flags(after)) else {
        return false;
    };
    let Some(um) = af.iter().position(|f| f == "um") else {
        return false;
    };
    af.remove(um);
    bh == ah && bf == af && !bf.iter().any(|f| f == "um")
}

/// Compares the two sides; differences a relaxation covers are listed as ignored.
pub fn compare(before: &Side, after: &Side, ignore: &[Ignore]) -> VisibleState {
    let mut out = VisibleState {
        compared: kind_names().map(String::from).collect(),
        processes: before.processes,
        items: before.items.len(),
        unstable: before.unstable.union(&after.unstable).count(),
        reads: vec![
            format!("before: {}", before.read),
            format!("after: {}", after.read),
        ],
        ..VisibleState::default()
    };
    // A process on one side only is a short-lived child (a shell's `sleep`, started and
    // gone between the dump and the restore): its items are not compared; the restored
    // root's pid and the workload's own check answer for the tree.
    let procs = |s: &Side| -> std::collections::BTreeSet<String> {
        s.items
            .keys()
            .filter(|(w, _)| w.starts_with("pid "))
            .map(|(w, _)| w.clone())
            .collect()
    };
    let (pb, pa) = (procs(before), procs(after));
    let one_side: std::collections::BTreeSet<&String> = pb.symmetric_difference(&pa).collect();
    let unstable = |k: &(String, String)| {
        before.unstable.contains(k) || after.unstable.contains(k) || one_side.contains(&k.0)
    };
    let mut diffs: Vec<(String, String)> = Vec::new();
    let mut expected: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (k, v) in before.items.iter().filter(|(k, _)| !unstable(k)) {
        match after.items.get(k) {
            Some(a) if a == v => {}
            Some(a) if let Some(rule) = expected_change(&k.1, v, a) => {
                *expected.entry(rule).or_default() += 1;
            }
            Some(a) if tty_drained(before, k, v, a) => {
                *expected.entry(TTY_DRAINED).or_default() += 1;
            }
            Some(a) => diffs.push((
                k.1.clone(),
                format!("{} {}: {v} before, {a} after", k.0, k.1),
            )),
            None if own_proc_read(before, k) => {
                *expected.entry(OWN_PROC_READ).or_default() += 1;
            }
            None => diffs.push((
                k.1.clone(),
                format!("{} {}: {v} before, missing after", k.0, k.1),
            )),
        }
    }
    for (k, a) in after.items.iter().filter(|(k, _)| !unstable(k)) {
        if !before.items.contains_key(k) && own_proc_read(after, k) {
            *expected.entry(OWN_PROC_READ).or_default() += 1;
        } else if !before.items.contains_key(k) {
            diffs.push((
                k.1.clone(),
                format!("{} {}: missing before, {a} after", k.0, k.1),
            ));
        }
    }
    let mut kept = 0;
    for (id, text) in diffs {
        if let Some(ig) = ignore.iter().find(|i| i.covers(&id)) {
            out.ignored.push(Ignored {
                item: ig.item.clone(),
                reason: ig.reason.clone(),
                difference: text,
            });
            continue;
        }
        debug_assert!(kind_names().any(|k| k == kind_of(&id)), "{id}");
        kept += 1;
        if out.differences.len() < MAX_DIFFERENCES {
            out.differences.push(text);
        }
    }
    if kept > MAX_DIFFERENCES {
        out.differences
            .push(format!("... and {} more", kept - MAX_DIFFERENCES));
    }
    let mut norm: BTreeMap<String, usize> = BTreeMap::new();
    for (k, n) in before.normalised.iter().chain(&after.normalised) {
        *norm.entry(k.clone()).or_default() += n;
    }
    for (k, n) in expected {
        *norm.entry(k.to_string()).or_default() += n;
    }
    if !one_side.is_empty() {
        norm.insert(
            "processes on one side only, not compared (short-lived children)".into(),
            one_side.len(),
        );
    }
    out.normalised = norm.into_iter().map(|(k, n)| format!("{k}: {n}")).collect();
    out
}

/// Adds one iteration's comparison to the scenario's record.
pub fn add(total: &mut Option<VisibleState>, one: VisibleState) {
    let Some(t) = total else {
        *total = Some(one);
        return;
    };
    t.processes += one.processes;
    t.items += one.items;
    t.unstable += one.unstable;
    for r in one.reads {
        if !t.reads.contains(&r) {
            t.reads.push(r);
        }
    }
    t.differences.extend(one.differences);
    t.differences.truncate(MAX_DIFFERENCES + 1);
    t.ignored.extend(one.ignored);
    for n in one.normalised {
        if !t.normalised.contains(&n) {
            t.normalised.push(n);
        }
    }
    if t.not_compared.is_none() {
        t.not_compared = one.not_compared;
    }
}

/// One side as text, a line an item (kept beside the scenario's logs).
pub fn render(side: &Side) -> String {
    let mut s = String::new();
    for ((who, id), v) in &side.items {
        s.push_str(&format!("{who}\t{id}\t{v}\n"));
    }
    s
}

/// Relaxations the scenario's own criu options imply: `--cgroup-root` and
/// `--manage-cgroups=ignore|none` ask criu to put the restored tree in other cgroups.
pub fn asked_for(restore_args: &[String]) -> Vec<Ignore> {
    let moves_cgroups = restore_args.iter().enumerate().any(|(i, a)| {
        a.starts_with("--cgroup-root")
            || (a.starts_with("--manage-cgroups")
                && [
                    a.as_str(),
                    restore_args.get(i + 1).map_or("", |s| s.as_str()),
                ]
                .iter()
                .any(|v| v.ends_with("ignore") || v.ends_with("none")))
    });
    if !moves_cgroups {
        return Vec::new();
    }
    vec![Ignore {
        item: "cgroup".into(),
        reason: "the scenario's criu options (--cgroup-root, --manage-cgroups ignore/none) place the restored tree in other cgroups".into(),
    }]
}

/// The failure of a scenario whose only fault is a visible-state difference.
pub fn failure(v: &VisibleState) -> Option<crate::model::outcome::Failure> {
    let first = v.differences.first()?;
    let n = v.differences.len();
    Some(crate::model::outcome::Failure {
        step: "visible-state".into(),
        first_error_line: Some(first.clone()),
        class: Some("visible-state".into()),
        message: format!(
            "what the tree shows from outside differs after the restore ({} difference{}; \
             the workload's own check passed): {first}",
            if n > MAX_DIFFERENCES {
                format!("more than {MAX_DIFFERENCES}")
            } else {
                n.to_string()
            },
            if n == 1 { "" } else { "s" }
        ),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(items: &[(&str, &str, &str)]) -> Side {
        Side {
            items: items
                .iter()
                .map(|(w, k, v)| ((w.to_string(), k.to_string()), v.to_string()))
                .collect(),
            processes: 1,
            ..Side::default()
        }
    }

    #[test]
    fn differences_are_named_and_relaxations_listed() {
        let before = side(&[
            ("pid 1", "fds.3.flags", "02"),
            ("pid 1", "fds.4.target", "pipe@pid 1 fds.4"),
            ("pid 1", "creds.CapBnd", "000001ffffffffff"),
            ("pid 1", "signals.SigBlk", "0000000000000000"),
        ]);
        let after = side(&[
            ("pid 1", "fds.3.flags", "0102"),
            ("pid 1", "creds.CapBnd", "000000ffffffffff"),
            ("pid 1", "signals.SigBlk", "0000000000000000"),
            ("pid 1", "fds.5.target", "/tmp/x"),
        ]);
        let ig = [Ignore {
            item: "creds.CapBnd".into(),
            reason: "the bounding set is the restorer's".into(),
        }];
        let v = compare(&before, &after, &ig);
        assert_eq!(v.items, 4);
        insta::assert_snapshot!(format!("{}\n--\n{:?}", v.differences.join("\n"), v.ignored));
    }

    #[test]
    fn how_each_side_was_read_is_said() {
        let mut before = side(&[("pid 1", "fds.3.pos", "4096")]);
        before.read = "frozen, at criu's post-dump".into();
        let mut after = side(&[("pid 1", "fds.3.pos", "8192")]);
        after.read = "frozen, at criu's pre-resume".into();
        let v = compare(&before, &after, &[]);
        assert_eq!(
            v.reads,
            [
                "before: frozen, at criu's post-dump",
                "after: frozen, at criu's pre-resume"
            ]
        );
        // Read frozen, a moved position is a difference: nothing is left out as unstable.
        assert_eq!(v.unstable, 0);
        assert_eq!(v.differences, ["pid 1 fds.3.pos: 4096 before, 8192 after"]);
        let mut total = None;
        add(&mut total, v.clone());
        add(&mut total, v);
        assert_eq!(total.unwrap().reads.len(), 2, "each way named once");
    }

    #[test]
    fn a_tty_criu_drained_keeps_o_nonblock_at_the_dump_only() {
        let before = side(&[
            ("pid 1", "fds.0.target", "/dev/pts/0"),
            ("pid 1", "fds.0.flags", "04002"),
            ("pid 1", "fds.3.target", "/w/log"),
            ("pid 1", "fds.3.flags", "04002"),
        ]);
        let after = side(&[
            ("pid 1", "fds.0.target", "/dev/pts/0"),
            ("pid 1", "fds.0.flags", "02"),
            ("pid 1", "fds.3.target", "/w/log"),
            ("pid 1", "fds.3.flags", "02"),
        ]);
        let v = compare(&before, &after, &[]);
        // A file's O_NONBLOCK lost is a difference; a tty's is criu's draining.
        assert_eq!(v.differences, ["pid 1 fds.3.flags: 04002 before, 02 after"]);
        assert!(v
            .normalised
            .iter()
            .any(|n| n.starts_with("a tty's O_NONBLOCK")));
        // The other way round (gained after the restore) is a difference on a tty too.
        let v = compare(&after, &before, &[]);
        assert_eq!(v.differences.len(), 2, "{:?}", v.differences);
    }

    #[test]
    fn a_lazy_restores_own_registration_is_criu_s() {
        let b = "rw-p [rd wr mr mw me]";
        assert!(lazy_registered(b, "rw-p [rd wr mr mw me um]"));
        assert!(!lazy_registered("rw-p [rd wr mr mw me um]", b));
        assert!(!lazy_registered(b, "rw-p [rd wr mr mw me sd um]"));
        let thp = "rw-p [rd wr mr mw me hg]";
        assert!(lazy_registered(thp, "rw-p [rd wr mr mw me um hg]"));
        assert!(!lazy_registered(thp, "r--p [rd wr mr mw me um hg]"));
        assert!(!lazy_registered("a]", "a um]"));
        let before = side(&[("pid 1", "maps.7f-80", b), ("pid 1", "fds.3", "x")]);
        let mut after = side(&[
            ("pid 1", "maps.7f-80", "rw-p [rd wr mr mw me um]"),
            ("pid 1", "fds.3", "x"),
        ]);
        assert_eq!(compare(&before, &after, &[]).differences.len(), 1);
        lazy_restore_registrations(&before, &mut after);
        let v = compare(&before, &after, &[]);
        assert!(v.differences.is_empty(), "{:?}", v.differences);
        assert!(
            v.normalised.iter().any(|n| n.contains("VmFlags um)")),
            "{:?}",
            v.normalised
        );
    }

    #[test]
    fn what_criu_changes_on_purpose() {
        let before = side(&[("pid 1", "ns.time", "time:host")]);
        let after = side(&[("pid 1", "ns.time", "time@pid 1 ns.time")]);
        let v = compare(&before, &after, &[]);
        assert!(v.differences.is_empty(), "{:?}", v.differences);
        assert_eq!(v.normalised.len(), 1, "{:?}", v.normalised);
        // The other way round is a difference: the tree left criu's namespace.
        let v = compare(&after, &before, &[]);
        assert_eq!(v.differences.len(), 1, "{:?}", v.differences);
    }

    #[test]
    fn what_changed_while_reading_one_side_is_not_compared() {
        let before = side(&[("pid 1", "fs.cwd", "/w")]);
        let mut after = side(&[
            ("pid 1", "fs.cwd", "/w"),
            ("pid 1", "signals.SigBlk", "0000000000000000"),
        ]);
        let mut b = before.clone();
        b.unstable.insert(("pid 1".into(), "signals.SigBlk".into()));
        let v = compare(&b, &after, &[]);
        assert!(v.differences.is_empty(), "{:?}", v.differences);
        assert_eq!(v.unstable, 1);
        after
            .items
            .insert(("pid 1".into(), "fs.cwd".into()), "/x".into());
        assert_eq!(compare(&b, &after, &[]).differences.len(), 1);
    }

    #[test]
    fn a_proc_file_open_on_one_side_only_is_the_tree_reading_itself() {
        let before = side(&[
            ("pid 1", "fds.6.target", "/proc/1/maps"),
            ("pid 1", "fds.6.flags", "02100000"),
        ]);
        let after = side(&[("pid 1", "fds.7.target", "/tmp/x")]);
        let v = compare(&before, &after, &[]);
        assert_eq!(
            v.differences,
            vec!["pid 1 fds.7.target: missing before, /tmp/x after"]
        );
        assert!(
            v.normalised.iter().any(|n| n.contains("/proc file")),
            "{:?}",
            v.normalised
        );
    }

    #[test]
    fn criu_options_that_move_cgroups_relax_them() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(asked_for(&args(&["--cgroup-root", "/newroot"])).len(), 1);
        assert_eq!(asked_for(&args(&["--manage-cgroups=ignore"])).len(), 1);
        assert_eq!(asked_for(&args(&["--manage-cgroups", "none"])).len(), 1);
        assert!(asked_for(&args(&["--manage-cgroups", "full"])).is_empty());
        assert!(asked_for(&args(&["--tcp-established"])).is_empty());
    }

    #[test]
    fn a_process_on_one_side_only_is_not_compared() {
        let before = side(&[
            ("pid 1", "fs.cwd", "/w"),
            ("pid 7", "process.name", "sleep"),
        ]);
        let after = side(&[
            ("pid 1", "fs.cwd", "/w"),
            ("pid 9", "process.name", "sleep"),
        ]);
        let v = compare(&before, &after, &[]);
        assert!(v.differences.is_empty(), "{:?}", v.differences);
        assert!(
            v.normalised
                .iter()
                .any(|n| n.contains("processes on one side only")),
            "{:?}",
            v.normalised
        );
    }

    #[test]
    fn equal_sides_have_no_difference() {
        let a = side(&[("pid 1", "fs.cwd", "/w")]);
        let v = compare(&a, &a.clone(), &[]);
        assert!(v.differences.is_empty());
        assert_eq!(v.compared.len(), crate::model::visible::KINDS.len());
    }

    #[test]
    fn many_differences_are_capped() {
        let before = side(&[("pid 1", "fs.cwd", "/w")]);
        let items: Vec<(String, String, String)> = (0..60)
            .map(|i| ("pid 1".into(), format!("fds.{i}.target"), "/x".into()))
            .collect();
        let after = Side {
            items: items.into_iter().map(|(w, k, v)| ((w, k), v)).collect(),
            ..Side::default()
        };
        let v = compare(&before, &after, &[]);
        assert_eq!(v.differences.len(), MAX_DIFFERENCES + 1);
        assert_eq!(v.differences.last().unwrap(), "... and 21 more");
    }
}
