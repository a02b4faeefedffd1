//! The visible-state comparison: what every process of the tree shows from outside (fds,
//! mappings, mounts, credentials, signals, cgroup, namespaces, cwd/root/exe, limits), read
//! before the checkpoint and after the restore, compared item by item.
//!
//! Each side is read three times, a few milliseconds apart; what differs between the two reads
//! is the tree's own doing (a counter's file position, a fd opened for a moment) and is left
//! out as `unstable`. Processes are named by their pid inside the tree's own pid namespace
//! (criu gives those back; the outer pid of a namespace's init changes).

pub mod read;

use crate::exec::context::Run;
use crate::exec::proctree;
use crate::model::visible::{kind_names, Ignore, Ignored, VisibleState, MAX_DIFFERENCES};
use nix::unistd::Pid;
use read::Items;
use std::collections::BTreeMap;

/// Reads of each side: an item must read the same each time to be compared.
const READS: usize = 3;

/// One side's items, and what was normalised while reading them.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub items: Items,
    pub processes: usize,
    /// Items that changed between the two reads (or were in only one): not compared, on
    /// either side.
    pub unstable: std::collections::BTreeSet<(String, String)>,
    pub normalised: BTreeMap<String, usize>,
}

/// Reads the tree rooted at `root` (three times), or says why it cannot.
pub fn capture(root: Pid) -> Result<Side, String> {
    let mut side = capture_once(root)?;
    for _ in 1..READS {
        let again = capture_once(root)?;
        let keys: std::collections::BTreeSet<_> = side
            .items
            .keys()
            .chain(again.items.keys())
            .cloned()
            .collect();
        for k in keys {
            if side.items.get(&k) != again.items.get(&k) {
                side.items.remove(&k);
                side.unstable.insert(k);
            }
        }
    }
    Ok(side)
}

fn capture_once(root: Pid) -> Result<Side, String> {
    let mut pids = proctree::tree(root);
    if pids.is_empty() || !proctree::exists(root) {
        return Err(format!("process {root} is gone"));
    }
    pids.truncate(read::MAX_PROCS);
    let status_of = |p: Pid| {
        read::bounded(
            &std::path::Path::new("/proc")
                .join(p.to_string())
                .join("status"),
        )
    };
    let root_status = status_of(root).ok_or_else(|| format!("cannot read /proc/{root}/status"))?;
    let level = read::nspid(&root_status).len().saturating_sub(1);
    // Name every process by its pids from the root's namespace inward.
    let mut who: BTreeMap<i32, String> = BTreeMap::new();
    let mut parent_of: BTreeMap<i32, i32> = BTreeMap::new();
    for p in &pids {
        let Some(st) = status_of(*p) else { continue };
        let ns = read::nspid(&st);
        let inner: Vec<String> = ns.iter().skip(level).map(|x| x.to_string()).collect();
        if inner.is_empty() {
            continue;
        }
        who.insert(p.as_raw(), format!("pid {}", inner.join("/")));
        if let Some(pp) = read::status_fields(&st)
            .get("PPid")
            .and_then(|v| v.parse().ok())
        {
            parent_of.insert(p.as_raw(), pp);
        }
    }
    let mut order: Vec<(String, i32)> = who.iter().map(|(p, w)| (w.clone(), *p)).collect();
    order.sort_by_key(|a| natural(&a.0));
    let mut names = read::Names::with_host_namespaces();
    let mut side = Side {
        processes: order.len(),
        ..Side::default()
    };
    let mut merged = 0;
    let mut placed = 0;
    let mut mount_ns_seen: BTreeMap<String, ()> = BTreeMap::new();
    for (w, pid) in &order {
        let parent = parent_of
            .get(pid)
            .and_then(|pp| who.get(pp))
            .cloned()
            .unwrap_or_else(|| "outside the tree".into());
        let items = read::process_items(*pid, w, &parent, &mut names, &mut merged, &mut placed);
        let mnt = items
            .iter()
            .find(|(k, _)| k == "ns.mnt")
            .map(|(_, v)| v.clone());
        for (k, v) in items {
            side.items.insert((w.clone(), k), v);
        }
        // Mounts once per mount namespace, named by it.
        if let Some(mnt) = mnt {
            if mount_ns_seen.insert(mnt.clone(), ()).is_none() {
                let text = read::bounded(
                    &std::path::Path::new("/proc")
                        .join(pid.to_string())
                        .join("mountinfo"),
                )
                .unwrap_or_default();
                for (k, v) in read::mount_items(&text, &mut names, &mnt) {
                    side.items.insert((mnt.clone(), k), v);
                }
            }
        }
    }
    for (kind, n) in names.renamed {
        side.normalised
            .insert(format!("{kind} identities renamed"), n);
    }
    if merged > 0 {
        side.normalised
            .insert("adjacent mappings merged".into(), merged);
    }
    if placed > 0 {
        side.normalised.insert(
            "vDSO/vvar/vsyscall compared by size and the heap by its start, not by range".into(),
            placed,
        );
    }
    Ok(side)
}

/// `pid 12/1` sorts as numbers: `pid 2` before `pid 10`.
fn natural(who: &str) -> Vec<i64> {
    who.trim_start_matches("pid ")
        .split('/')
        .map(|x| x.parse().unwrap_or(i64::MAX))
        .collect()
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

/// Compares the two sides; differences a relaxation covers are listed as ignored.
pub fn compare(before: &Side, after: &Side, ignore: &[Ignore]) -> VisibleState {
    let mut out = VisibleState {
        compared: kind_names().map(String::from).collect(),
        processes: before.processes,
        items: before.items.len(),
        unstable: before.unstable.union(&after.unstable).count(),
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

impl Run<'_> {
    /// Reads the tree rooted at `root` before checkpoint `iteration`.
    pub(crate) fn visible_before(&mut self, root: Pid, iteration: u32) {
        match capture(root) {
            Ok(side) => {
                let _ = std::fs::write(
                    self.work.join(format!("visible-before-{iteration}.log")),
                    render(&side),
                );
                self.visible_before = Some(side);
            }
            Err(why) => self.visible_not_compared(format!("before checkpoint {iteration}: {why}")),
        }
    }

    /// Reads the restored tree rooted at `root` and compares it with what it showed before
    /// checkpoint `iteration`.
    pub(crate) fn visible_after(&mut self, root: Pid, iteration: u32) {
        let Some(before) = self.visible_before.take() else {
            return;
        };
        match capture(root) {
            Ok(side) => {
                let _ = std::fs::write(
                    self.work.join(format!("visible-after-{iteration}.log")),
                    render(&side),
                );
                let mut ignore = self.sc.expect.visible_state_ignore.clone();
                ignore.extend(asked_for(&self.sc.restore_args));
                add(&mut self.visible, compare(&before, &side, &ignore));
            }
            Err(why) => self.visible_not_compared(format!("after restore {iteration}: {why}")),
        }
    }

    fn visible_not_compared(&mut self, why: String) {
        add(
            &mut self.visible,
            VisibleState {
                not_compared: Some(why),
                ..VisibleState::default()
            },
        );
    }
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

    #[test]
    fn pids_sort_as_numbers() {
        let mut v = vec!["pid 10", "pid 2", "pid 2/1"];
        v.sort_by_key(|w| natural(w));
        assert_eq!(v, vec!["pid 2", "pid 2/1", "pid 10"]);
    }

    /// A real process: two reads agree (its stdin pipe named alike), and a change made
    /// after the first read is named by process, item and both values.
    #[test]
    fn a_change_to_a_real_process_is_named() {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .args([
                "-c",
                "trap 'exec 7</dev/null' USR1; while :; do read x; done",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh");
        let pid = Pid::from_raw(child.id() as i32);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let before = capture(pid).expect("the child");
        let again = capture(pid).expect("the child");
        let same = compare(&before, &again, &[]);
        assert!(same.differences.is_empty(), "{:?}", same.differences);
        assert!(
            before.items.values().any(|v| v.starts_with("pipe@pid ")),
            "stdin is a pipe, renamed"
        );
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("signal");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let after = capture(pid).expect("the child");
        let _ = child.kill();
        let _ = child.wait();
        let v = compare(&before, &after, &[]);
        let want = format!("pid {pid} fds.7.target: missing before, /dev/null after");
        assert!(v.differences.contains(&want), "{:?}", v.differences);
    }

    /// A real process read twice is stable in what matters, and names itself.
    #[test]
    fn this_process_reads() {
        let s = capture(Pid::this()).expect("our own /proc");
        let items: Vec<_> = s.items.keys().map(|(_, k)| k.as_str()).collect();
        for want in [
            "process.name",
            "fs.cwd",
            "creds.Uid",
            "signals.SigBlk",
            "limits.Max open files",
        ] {
            assert!(items.contains(&want), "{want} missing from {items:?}");
        }
        assert!(items.iter().any(|k| k.starts_with("maps.")));
        assert!(items.iter().any(|k| k.starts_with("mounts.")));
    }
}
