//! A container's processes as the host sees them: the members below its init, each with
//! its pid inside the container (`NSpid`) and on the host, and how two trees differ. The
//! lxc and OCI backends share it.

use nix::unistd::Pid;

/// One process of the container, as seen inside it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Member {
    pub(crate) pid: i32,
    /// 0 for the container's init (its parent is outside).
    pub(crate) ppid: i32,
    pub(crate) comm: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (parent {})", self.pid, self.comm, self.ppid)
    }
}

/// The container's processes below its init (host pid `init`), each with its host pid.
pub(crate) fn members(init: Pid) -> Vec<(Pid, Member)> {
    let status = |p: Pid| std::fs::read_to_string(format!("/proc/{p}/status")).ok();
    let field = |text: &str, key: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    // How deep the container's pid namespace is: its init's NSpid has one entry per level.
    let Some(depth) = status(init)
        .and_then(|t| field(&t, "NSpid:"))
        .map(|v| v.split_whitespace().count())
    else {
        return Vec::new();
    };
    let mut raw = Vec::new();
    for host in crate::exec::proctree::tree(init) {
        let Some(text) = status(host) else { continue };
        let inner = field(&text, "NSpid:").and_then(|v| {
            v.split_whitespace()
                .nth(depth - 1)
                .and_then(|p| p.parse::<i32>().ok())
        });
        let ppid = field(&text, "PPid:").and_then(|v| v.parse::<i32>().ok());
        let comm = field(&text, "Name:").unwrap_or_default();
        if let (Some(inner), Some(ppid)) = (inner, ppid) {
            raw.push((host, inner, ppid, comm));
        }
    }
    let inner_of = |host_ppid: i32| {
        raw.iter()
            .find(|(h, ..)| h.as_raw() == host_ppid)
            .map_or(0, |(_, i, ..)| *i)
    };
    let mut out: Vec<(Pid, Member)> = raw
        .iter()
        .map(|(host, inner, ppid, comm)| {
            (
                *host,
                Member {
                    pid: *inner,
                    ppid: inner_of(*ppid),
                    comm: comm.clone(),
                },
            )
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

pub(crate) fn host_pid(members: &[(Pid, Member)], inner: i32) -> Option<Pid> {
    members
        .iter()
        .find(|(_, m)| m.pid == inner)
        .map(|(h, _)| *h)
}

pub(crate) fn describe(members: &[(Pid, Member)]) -> String {
    let v: Vec<String> = members.iter().map(|(_, m)| m.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Before a container's checkpoint: its init (a step error when it runs none), the
/// workload's progress kept in `run`, the tree recorded, and what was seen for the
/// backend's command log.
pub(crate) fn before_checkpoint(
    run: &mut crate::exec::context::Run,
    init: Option<Pid>,
) -> Result<(Pid, Vec<Member>, String), crate::exec::context::StepError> {
    use crate::model::scenario::StepKind;
    let Some(init) = init else {
        return Err(crate::exec::context::StepError::fail(
            StepKind::Checkpoint,
            "the container does not run: nothing to checkpoint",
        ));
    };
    run.progress_at_checkpoint = run.progress().unwrap_or(0);
    let (tree, text) = record(init);
    let progress = run.progress_at_checkpoint;
    Ok((
        init,
        tree,
        format!("before the checkpoint: progress {progress}; {text}"),
    ))
}

/// The container's tree below `init` as it stands (recorded before a checkpoint), and its
/// description for the backend's command log.
pub(crate) fn record(init: Pid) -> (Vec<Member>, String) {
    let members = members(init);
    let text = describe(&members);
    (members.into_iter().map(|(_, m)| m).collect(), text)
}

/// What a restored container does not hold as checkpointed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TreeError {
    #[error("the container's process tree is not the one checkpointed: {0}")]
    Differs(String),
    #[error(
        "the workload (pid {app} inside the container) is not back; the container holds: {holds}"
    )]
    WorkloadGone { app: i32, holds: String },
    #[error("cannot find the workload in the container ({}); the container holds: {holds}",
            .app.map_or("it names no pid".to_string(), |a| format!("no process has pid {a} inside")))]
    NoWorkload { app: Option<i32>, holds: String },
}

/// The workload in a running container below `init`: the pid it names inside (`named`), or
/// else the lowest child of `parent` inside (a program is the init's child, or the init
/// itself: parent 0); with its host pid and the container described.
pub(crate) fn find_workload(
    init: Pid,
    named: Option<i32>,
    parent: i32,
) -> Result<(i32, Pid, String), TreeError> {
    let members = members(init);
    let app = named.or_else(|| {
        members
            .iter()
            .filter(|(_, m)| m.ppid == parent)
            .map(|(_, m)| m.pid)
            .min()
    });
    let holds = describe(&members);
    match app.and_then(|a| host_pid(&members, a).map(|h| (a, h))) {
        Some((a, h)) => Ok((a, h, holds)),
        None => Err(TreeError::NoWorkload { app, holds }),
    }
}

/// Whether the tree below `init` is `recorded` again: the description of what is there now,
/// or the difference.
pub(crate) fn same_tree(recorded: &[Member], init: Pid) -> Result<String, TreeError> {
    let (now, text) = record(init);
    match tree_diff(recorded, &now) {
        None => Ok(text),
        Some(diff) => Err(TreeError::Differs(diff)),
    }
}

/// The host pid of the workload (pid `app` inside the container) below a restored `init`;
/// the error names what the container holds instead.
pub(crate) fn workload_back(init: Pid, app: i32) -> Result<Pid, TreeError> {
    let members = members(init);
    host_pid(&members, app).ok_or_else(|| TreeError::WorkloadGone {
        app,
        holds: describe(&members),
    })
}

/// What differs between the tree before the checkpoint and after the restore.
pub(crate) fn tree_diff(before: &[Member], after: &[Member]) -> Option<String> {
    let missing: Vec<String> = before
        .iter()
        .filter(|m| !after.contains(m))
        .map(Member::to_string)
        .collect();
    let new: Vec<String> = after
        .iter()
        .filter(|m| !before.contains(m))
        .map(Member::to_string)
        .collect();
    if missing.is_empty() && new.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("not back: {}", missing.join(", ")));
    }
    if !new.is_empty() {
        parts.push(format!("new: {}", new.join(", ")));
    }
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pid: i32, ppid: i32, comm: &str) -> Member {
        Member {
            pid,
            ppid,
            comm: comm.into(),
        }
    }

    #[test]
    fn same_tree_has_no_diff() {
        let t = [m(1, 0, "init.lxc"), m(2, 1, "sleep")];
        assert_eq!(tree_diff(&t, &t), None);
    }

    #[test]
    fn a_lost_child_is_named() {
        // What a pty-holding `script` showed after a restore: its shell and sleep were gone.
        let before = [
            m(1, 0, "init.lxc"),
            m(2, 1, "script"),
            m(3, 2, "sh"),
            m(4, 3, "sleep"),
        ];
        let after = [m(1, 0, "init.lxc"), m(2, 1, "script")];
        assert_eq!(
            tree_diff(&before, &after).unwrap(),
            "not back: 3 sh (parent 2), 4 sleep (parent 3)"
        );
        let moved = [m(1, 0, "init.lxc"), m(2, 1, "script"), m(5, 2, "sh")];
        assert_eq!(
            tree_diff(&before[..3], &moved).unwrap(),
            "not back: 3 sh (parent 2); new: 5 sh (parent 2)"
        );
    }

    #[test]
    fn members_of_our_own_tree() {
        // Outside any container the depth is 1 and pids are host pids.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = Pid::this();
        let all = members(me);
        let kid = all
            .iter()
            .find(|(h, _)| h.as_raw() == child.id() as i32)
            .expect("the child is a member");
        assert_eq!(kid.1.ppid, me.as_raw());
        assert_eq!(kid.1.comm, "sleep");
        assert_eq!(host_pid(&all, kid.1.pid), Some(kid.0));
        assert_eq!(all.iter().find(|(h, _)| *h == me).unwrap().1.ppid, 0);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
