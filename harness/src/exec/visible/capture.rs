//! Reading one side of the comparison: every process of a tree, named by its pid inside the
//! tree's own pid namespace (criu gives those back; the outer pid of a namespace's init
//! changes), its items read by [`read`].

use crate::exec::proctree;
use crate::exec::visible::read;
use crate::exec::visible::Side;
use nix::unistd::Pid;
use std::collections::BTreeMap;

/// Reads of a side read while the tree runs: an item must read the same each time to be
/// compared.
const READS: usize = 3;

/// How a side read while the tree ran is described.
pub const RUNNING: &str =
    "running (read three times; what changed between the reads left out as unstable)";

/// Why a side could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("process {pid} is gone")]
    Gone { pid: i32 },
    #[error("cannot read /proc/{pid}/status")]
    Status { pid: i32 },
}

/// Reads the tree rooted at `root` once, while it cannot change: seized by criu, or frozen.
/// `how` says which, for the report (`frozen, at criu's post-dump`).
pub fn frozen(root: Pid, how: &str) -> Result<Side, ReadError> {
    let mut side = capture_once(root)?;
    side.read = how.to_string();
    held_states_alike(&mut side);
    Ok(side)
}

/// What a task held still shows as its state is the holder's (`t` under criu's ptrace, `S`
/// in the freezer's trap), not its own: running, stopped and traced are compared as one,
/// `alive`, on every side read frozen; a zombie stays a zombie.
fn held_states_alike(side: &mut Side) {
    let mut n = 0;
    for ((_, k), v) in side.items.iter_mut() {
        if k == "process.state" && matches!(v.as_str(), "running" | "stopped" | "tracing-stop") {
            *v = "alive".into();
            n += 1;
        }
    }
    if n > 0 {
        side.normalised.insert(
            "task states read while held still (criu's ptrace stop, the freezer): running, stopped and traced compared as alive".into(),
            n,
        );
    }
}

/// Leaves out of `side` (read frozen) what the same tree read running a moment before did not
/// hold steadily: items that changed between those reads, or that they did not see at all
/// (an fd opened for a moment). Named `unstable`, as a running side's are.
pub fn leave_out_unsteady(side: &mut Side, running: &Side) {
    let unsteady: Vec<_> = side
        .items
        .keys()
        .filter(|k| running.unstable.contains(*k) || !running.items.contains_key(*k))
        .cloned()
        .collect();
    for k in unsteady {
        side.items.remove(&k);
        side.unstable.insert(k);
    }
}

/// [`running`], to be compared with a side read frozen: task states folded as that side's
/// are (`alive`).
pub fn running_against_frozen(root: Pid) -> Result<Side, ReadError> {
    let mut side = running(root)?;
    held_states_alike(&mut side);
    Ok(side)
}

/// Reads the tree rooted at `root` while it runs: three times, a few milliseconds apart;
/// an item that changes between the reads is the tree's own doing and is left out
/// (`unstable`). Only for a side that cannot be read frozen.
pub fn running(root: Pid) -> Result<Side, ReadError> {
    let mut side = capture_once(root)?;
    side.read = RUNNING.to_string();
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

fn capture_once(root: Pid) -> Result<Side, ReadError> {
    let mut pids = proctree::tree(root);
    if pids.is_empty() || !proctree::exists(root) {
        return Err(ReadError::Gone { pid: root.as_raw() });
    }
    pids.truncate(read::MAX_PROCS);
    let status_of = |p: Pid| {
        read::bounded(
            &std::path::Path::new("/proc")
                .join(p.to_string())
                .join("status"),
        )
    };
    let root_status = status_of(root).ok_or(ReadError::Status { pid: root.as_raw() })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An fd the workload held for a moment when frozen, and an item that changed between
    /// the running reads, are left out of the frozen side; what it held steadily stays.
    #[test]
    fn the_frozen_side_keeps_only_what_the_tree_held_steadily() {
        let item = |k: &str, v: &str| (("pid 1".to_string(), k.to_string()), v.to_string());
        let mut frozen = Side {
            items: [
                item("fds.3.pos", "10"),
                item("fds.5.flags", "02000001"),
                item("creds.uid", "0"),
            ]
            .into_iter()
            .collect(),
            ..Side::default()
        };
        let mut running = Side {
            items: [item("creds.uid", "0")].into_iter().collect(),
            ..Side::default()
        };
        running
            .unstable
            .insert(("pid 1".into(), "fds.3.pos".into()));
        leave_out_unsteady(&mut frozen, &running);
        assert_eq!(frozen.items.len(), 1);
        assert!(frozen
            .items
            .contains_key(&("pid 1".to_string(), "creds.uid".to_string())));
        assert_eq!(frozen.unstable.len(), 2);
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
        let before = running(pid).expect("the child");
        let again = running(pid).expect("the child");
        let same = crate::exec::visible::compare(&before, &again, &[]);
        assert!(same.differences.is_empty(), "{:?}", same.differences);
        assert!(
            before.items.values().any(|v| v.starts_with("pipe@pid ")),
            "stdin is a pipe, renamed"
        );
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("signal");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let after = running(pid).expect("the child");
        let _ = child.kill();
        let _ = child.wait();
        let v = crate::exec::visible::compare(&before, &after, &[]);
        let want = format!("pid {pid} fds.7.target: missing before, /dev/null after");
        assert!(v.differences.contains(&want), "{:?}", v.differences);
    }

    /// A real process read twice is stable in what matters, and names itself.
    #[test]
    fn this_process_reads() {
        let s = frozen(Pid::this(), "test").expect("our own /proc");
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
