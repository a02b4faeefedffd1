//! Process trees from /proc: who descends from whom.

use nix::unistd::Pid;

/// `(pid, ppid)` of a `/proc/PID/stat` line. The command name may hold spaces and
/// parentheses, so the fields are read after its last `)`.
pub fn parse_stat(text: &str) -> Option<(i32, i32)> {
    let pid = text.split_whitespace().next()?.parse().ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some((pid, ppid))
}

/// Every `(pid, ppid)` of the system now.
fn all() -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?))
        .collect()
}

/// `root` and all its descendants, parents before children.
pub fn tree(root: Pid) -> Vec<Pid> {
    tree_of(root.as_raw(), &all())
        .into_iter()
        .map(Pid::from_raw)
        .collect()
}

fn tree_of(root: i32, table: &[(i32, i32)]) -> Vec<i32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            table
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// True when the process is pid 1 of a pid namespace below ours (`NSpid: 42 1`).
pub fn is_pid_ns_init(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| nspid_is_init(&s))
        .unwrap_or(false)
}

fn nspid_is_init(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| v.split_whitespace().collect::<Vec<_>>())
        .is_some_and(|ids| ids.len() > 1 && ids.last() == Some(&"1"))
}

/// True when the process exists (a zombie counts: its pid is still taken).
pub fn exists(pid: Pid) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The state letter of a `/proc/.../stat` line (`R`, `S`, `T`, ...).
fn state_of(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// The first thread of `pids` that is not stopped (`T`), as `pid/tid is STATE`; `None`
/// when every thread is stopped (a process gone counts as stopped, as zdtm.py counts it).
pub fn first_running(pids: &[Pid]) -> Option<String> {
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let tid = t.file_name().to_string_lossy().to_string();
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            match state_of(&stat) {
                Some('T') => {}
                other => {
                    return Some(format!(
                        "{pid}/{tid} is {}",
                        other.map_or("unreadable".into(), |c| format!("in state {c}"))
                    ))
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        assert_eq!(parse_stat("42 (a b) c) S 7 42 42 0"), Some((42, 7)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(state_of("42 (a) b) T 7 42"), Some('T'));
        assert_eq!(state_of("42 (a"), None);
    }

    #[test]
    fn namespace_init() {
        assert!(nspid_is_init("Name:\tx\nNSpid:\t42\t1\n"));
        assert!(!nspid_is_init("NSpid:\t42\n"));
        assert!(!nspid_is_init("NSpid:\t42\t7\n"));
    }

    #[test]
    fn tree_walks_down_only() {
        let table = [(1, 0), (10, 1), (11, 10), (12, 10), (13, 11), (20, 1)];
        assert_eq!(tree_of(10, &table), [10, 11, 12, 13]);
    }

    #[test]
    fn own_tree_holds_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = Pid::this();
        let t = tree(me);
        assert!(t.contains(&Pid::from_raw(child.id() as i32)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
