//! After each scenario, in the guest: is the kernel still clean (taint flag), and did the
//! scenario leave processes, firewall rules, network links, persistent network namespaces or
//! mounts behind? A new taint makes the host reboot the guest for the scenarios that follow;
//! leftovers are killed, deleted or unmounted (rules put back as they were) and named in the
//! scenario's result. zdtm.py runs every test in namespaces of its own (`zdtm_ct`), which
//! take such things with them; the harness runs them in the guest's, and puts it back.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;

/// The kernel's taint flags (`/proc/sys/kernel/tainted`), 0 when clean or unreadable.
pub fn taint() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/tainted")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The taint bits set in `now` but not in `before`, as the kernel's letters (see
/// Documentation/admin-guide/tainted-kernels.rst).
pub fn new_taint_letters(before: u64, now: u64) -> String {
    const LETTERS: &[u8] = b"PFSRMBUDAWCIOELKXTN";
    let new = now & !before;
    (0..LETTERS.len())
        .filter(|bit| new & (1 << bit) != 0)
        .map(|bit| LETTERS[bit] as char)
        .collect()
}

/// User processes other than the agent (kernel threads are children of kthreadd, pid 2).
fn user_processes() -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me && *pid != 1 && *pid != 2)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, ppid) = crate::exec::proctree::parse_stat(&stat)?;
            let name = stat.split_once('(')?.1.rsplit_once(')')?.0.to_string();
            (ppid != 2).then_some((pid, name))
        })
        .collect()
}

/// Kills and collects what a scenario left running; returns `name(pid)` of each.
pub fn kill_leftovers() -> Vec<String> {
    let left = user_processes();
    for (pid, _) in &left {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    if !left.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        crate::exec::context::reap_orphans();
    }
    left.into_iter()
        .map(|(pid, name)| format!("{name}({pid})"))
        .collect()
}

/// The root network namespace's firewall as `nft --stateless list ruleset` prints it (the
/// iptables of Debian's default `iptables-nft` included; counters left out), `None` without
/// `nft` or when it cannot list.
pub fn netfilter_rules() -> Option<String> {
    let nft = crtest_vm::command::locate("nft")?;
    let ran = crtest_vm::command::Cmd::new(nft)
        .args(["--stateless", "list", "ruleset"])
        .run_timed(NFT_TIME, None)
        .ok()?;
    ran.ok().then_some(ran.output)
}

const NFT_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// When the ruleset is no longer `before`, puts `before` back; when a rule differs (not only
/// an empty table or chain iptables-nft leaves after `-D`), says what, for the scenario's
/// leftovers: a test killed before it took its rule back (socket-tcp-syn-sent drops its
/// port's packets) would stall every later connection to that port.
pub fn restore_netfilter(before: &str) -> Option<String> {
    let now = netfilter_rules()?;
    if now == before {
        return None;
    }
    let nft = crtest_vm::command::locate("nft")?;
    let put_back = put_back_ruleset(&nft, before).is_ok_and(|r| r.ok());
    let changed = rule_change(before, &now);
    match (changed, put_back) {
        (None, true) => None,
        (None, false) => Some("netfilter tables changed; could not be put back".into()),
        (Some(rule), true) => Some(format!("netfilter rule left ({rule}); put back")),
        (Some(rule), false) => Some(format!(
            "netfilter rule left ({rule}); could not be put back"
        )),
    }
}

/// `nft -f` of a script that flushes the ruleset and loads `before`.
fn put_back_ruleset(
    nft: &std::path::Path,
    before: &str,
) -> std::io::Result<crtest_vm::command::Ran> {
    use std::io::Write;
    let mut script = tempfile::NamedTempFile::new()?;
    write!(script, "flush ruleset\n{before}")?;
    crtest_vm::command::Cmd::new(nft)
        .arg("-f")
        .arg(script.path())
        .run_timed(NFT_TIME, None)
        .map_err(std::io::Error::other)
}

/// The lines of a ruleset that filter: not a table's or chain's frame, not an accepting
/// base chain's `type ... policy accept;`.
fn rule_lines(ruleset: &str) -> Vec<&str> {
    ruleset
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "}")
        .filter(|l| !l.starts_with("table ") && !l.starts_with("chain "))
        .filter(|l| !(l.starts_with("type ") && l.ends_with("policy accept;")))
        .collect()
}

/// The first rule of `now` that `before` does not have, or a removal; `None` when only
/// frames differ.
fn rule_change<'a>(before: &str, now: &'a str) -> Option<&'a str> {
    let (old, new) = (rule_lines(before), rule_lines(now));
    if old == new {
        return None;
    }
    Some(
        new.iter()
            .find(|l| !old.contains(l))
            .copied()
            .unwrap_or("a rule removed"),
    )
}

/// What of the guest a scenario must leave as it found it, besides processes and rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// Network links of the root network namespace (`/sys/class/net`).
    links: Vec<String>,
    /// Persistent network namespaces (`/run/netns`).
    netns: Vec<String>,
    /// Mount points of the agent's mount namespace, in mount order.
    mounts: Vec<String>,
}

impl World {
    /// The guest now.
    pub fn now() -> World {
        let names = |dir: &str| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        World {
            links: names("/sys/class/net"),
            netns: names("/run/netns"),
            mounts: std::fs::read_to_string("/proc/self/mountinfo")
                .map(|t| mount_points(&t))
                .unwrap_or_default(),
        }
    }

    /// Removes what `now` has and `self` has not (mounts last made first); says what. What
    /// cannot be removed (a kernel module's fallback device, `sit0`, comes with the module
    /// and stays) is said once, and from then on is part of the guest as found.
    pub fn put_back(&mut self, now: &World) -> Vec<String> {
        let mut said = Vec::new();
        let result = |gone: bool, done: &str| {
            if gone {
                done.to_string()
            } else {
                format!("could not be {done}")
            }
        };
        for m in now.mounts.iter().rev().filter(|m| !self.mounts.contains(m)) {
            let gone = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH).is_ok();
            said.push(format!("mount at {m} left; {}", result(gone, "unmounted")));
        }
        for n in now.netns.iter().filter(|n| !self.netns.contains(n)) {
            let gone = ip(&["netns", "del", n]) && !Path::new("/run/netns").join(n).exists();
            said.push(format!(
                "network namespace {n} left; {}",
                result(gone, "deleted")
            ));
        }
        for l in now.links.iter().filter(|l| !self.links.contains(l)) {
            let link = Path::new("/sys/class/net").join(l);
            // A veth's peer goes with it: gone already when its pair was deleted.
            if !link.exists() {
                continue;
            }
            let gone = ip(&["link", "del", l]) && !link.exists();
            said.push(format!(
                "network link {l} left; {}",
                result(gone, "deleted")
            ));
        }
        let after = World::now();
        for (mine, now) in [
            (&mut self.mounts, after.mounts),
            (&mut self.netns, after.netns),
            (&mut self.links, after.links),
        ] {
            for item in now {
                if !mine.contains(&item) {
                    mine.push(item);
                }
            }
        }
        said
    }
}

fn ip(args: &[&str]) -> bool {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    crtest_vm::command::Cmd::new("ip")
        .args(&args)
        .run_timed(NFT_TIME, None)
        .is_ok_and(|r| r.ok())
}

/// The mount points of a mountinfo text, in its order (`\040` and the like decoded).
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space) decoded.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records a new taint in the scenario's result: a pass becomes a fail.
pub fn mark_tainted(result: &mut crate::model::outcome::ScenarioResult, letters: &str) {
    let message = format!("the kernel became tainted ({letters}) while the scenario ran");
    match result.failure.as_mut() {
        Some(f) => f.message = format!("{}; {message}", f.message),
        None => {
            result.failure = Some(crate::model::outcome::Failure {
                step: "scenario".into(),
                message,
                ..Default::default()
            })
        }
    }
    if result.outcome == crate::model::outcome::Outcome::Pass {
        result.outcome = crate::model::outcome::Outcome::Fail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_a_test_left_is_named() {
        // `iptables -A INPUT --dport 8880 -j DROP` of zdtm's socket-tcp-syn-sent, through
        // Debian's iptables-nft, as `nft --stateless list ruleset` prints it.
        let frame = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n";
        let dropped = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tmeta l4proto tcp tcp dport 8880 drop\n\t}\n}\n";
        assert_eq!(
            rule_change("", dropped),
            Some("meta l4proto tcp tcp dport 8880 drop")
        );
        // What `iptables -D` leaves (an empty accepting chain) is not a rule left.
        assert_eq!(rule_change("", frame), None);
        assert_eq!(rule_change(dropped, frame), Some("a rule removed"));
        // A chain that drops by policy filters.
        let policy = frame.replace("policy accept;", "policy drop;");
        assert_eq!(
            rule_change("", &policy),
            Some("type filter hook input priority filter; policy drop;")
        );
    }

    #[test]
    fn mount_points_of_a_mountinfo() {
        let info = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    35 22 0:30 / /tmp/with\\040space rw - tmpfs t rw\n";
        assert_eq!(mount_points(info), ["/", "/tmp/with space"]);
        let before = World {
            mounts: vec!["/".into()],
            ..World::default()
        };
        // Nothing new: nothing to put back.
        let mut same = before.clone();
        assert!(same.put_back(&before).is_empty());
    }

    #[test]
    fn taint_letters() {
        assert_eq!(new_taint_letters(0, 0), "");
        // W (warning, bit 9) and D (died/oops, bit 7) are new; G/P was there before.
        assert_eq!(new_taint_letters(1, 1 | (1 << 9) | (1 << 7)), "DW");
    }
}
