//! Readers of the `/proc` files the workloads check their state with: fdinfo, status,
//! stat, maps and smaps, and `/proc/locks`.

use std::os::fd::RawFd;

/// The text of a `/proc` file; the error names the file and the errno.
pub fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {path}: {}", crate::protocol::errno_text(&e)))
}

/// `/proc/self/fdinfo/FD`.
pub fn fdinfo(fd: RawFd) -> Result<String, String> {
    read(&format!("/proc/self/fdinfo/{fd}"))
}

/// The value of the `key:` line of a `/proc` key/value text, trimmed.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Every line of `text` starting with `prefix` (e.g. the `tfd:` lines of an epoll fdinfo).
pub fn lines_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// The value after `key:` (or `key=`) among the space-separated words of `line`, e.g.
/// `word_value("tfd: 5 events: 19 data: 1", "events")` is `Some("19")`.
pub fn word_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if let Some(v) = w.strip_prefix(key) {
            if let Some(v) = v.strip_prefix(':').or_else(|| v.strip_prefix('=')) {
                return if v.is_empty() { words.next() } else { Some(v) };
            }
        }
    }
    None
}

/// A field of `/proc/self/status` (or of `/proc/self/task/TID/status` with `tid`).
pub fn status_field(tid: Option<i32>, key: &str) -> Result<String, String> {
    let path = match tid {
        Some(t) => format!("/proc/self/task/{t}/status"),
        None => "/proc/self/status".to_string(),
    };
    let text = read(&path)?;
    field(&text, key)
        .map(str::to_string)
        .ok_or_else(|| format!("{path} has no `{key}:` line"))
}

/// The fields of `/proc/PID/stat` that the workloads look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub tty_nr: i32,
    /// Exit code as `waitpid` would report it (field 52), for zombies.
    pub exit_code: i32,
}

/// Parses a `/proc/PID/stat` text.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let num = |n: usize| rest.get(n - 3)?.parse::<i32>().ok();
    Some(Stat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: num(4)?,
        pgrp: num(5)?,
        session: num(6)?,
        tty_nr: num(7)?,
        exit_code: num(52).unwrap_or(0),
    })
}

/// `/proc/PID/stat` of any process (`None` if it does not exist).
pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    /// `rwxp` / `r--s` ...
    pub perms: String,
    pub offset: u64,
    pub inode: u64,
    pub path: String,
}

/// Parses a maps text.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            let (start, end) = w.next()?.split_once('-')?;
            let perms = w.next()?.to_string();
            let offset = u64::from_str_radix(w.next()?, 16).ok()?;
            let _dev = w.next()?;
            let inode = w.next()?.parse().ok()?;
            let path = w.collect::<Vec<_>>().join(" ");
            Some(Mapping {
                start: usize::from_str_radix(start, 16).ok()?,
                end: usize::from_str_radix(end, 16).ok()?,
                perms,
                offset,
                inode,
                path,
            })
        })
        .collect()
}

/// The mapping of this process that contains `addr`.
pub fn mapping_at(addr: usize) -> Result<Mapping, String> {
    parse_maps(&read("/proc/self/maps")?)
        .into_iter()
        .find(|m| m.start <= addr && addr < m.end)
        .ok_or_else(|| format!("no mapping contains {addr:#x} in /proc/self/maps"))
}

/// The `VmFlags` of the mapping that starts at `start`, from `/proc/self/smaps`.
pub fn vm_flags(start: usize) -> Result<Vec<String>, String> {
    let text = read("/proc/self/smaps")?;
    let head = format!("{start:x}-");
    let mut inside = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        let is_header = first.split_once('-').is_some_and(|(a, b)| {
            usize::from_str_radix(a, 16).is_ok() && usize::from_str_radix(b, 16).is_ok()
        });
        if is_header {
            inside = line.starts_with(&head);
            continue;
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return Ok(flags.split_whitespace().map(str::to_string).collect());
            }
        }
    }
    Err(format!(
        "no mapping starting at {start:#x} (with VmFlags) in /proc/self/smaps"
    ))
}

/// One line of `/proc/locks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// `POSIX`, `FLOCK`, `OFDLCK`, `LEASE`.
    pub class: String,
    /// `READ` or `WRITE`.
    pub access: String,
    pub pid: i32,
    pub inode: u64,
    pub start: u64,
    /// `None` for `EOF`.
    pub end: Option<u64>,
}

/// Parses `/proc/locks` (blocked waiters, the `->` lines, are left out).
pub fn parse_locks(text: &str) -> Vec<Lock> {
    text.lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            // "1:" CLASS ADVISORY|MANDATORY ACCESS PID MAJ:MIN:INO START END
            if w.len() < 8 {
                return None;
            }
            Some(Lock {
                class: w[1].to_string(),
                access: w[3].to_string(),
                pid: w[4].parse().ok()?,
                inode: w[5].rsplit(':').next()?.parse().ok()?,
                start: w[6].parse().ok()?,
                end: w[7].parse().ok(),
            })
        })
        .collect()
}

/// The locks on the file with inode number `inode`, read until `settled` accepts them (at
/// most [`LOCK_READS`] reads, 20 ms apart; the last read when none does). The kernel shows
/// `/proc/locks` a page per read(2), each page walking its lock list anew from a position,
/// so locks that other processes take or drop meanwhile (a container engine's storage
/// locks) can make one read skip or repeat an entry of ours: one consistent read proves
/// the locks are there, and a lock really lost is missing from every read.
pub fn locks_on_settled(
    inode: u64,
    settled: impl Fn(&[Lock]) -> bool,
) -> Result<Vec<Lock>, String> {
    let mut locks = locks_on(inode)?;
    for _ in 1..LOCK_READS {
        if settled(&locks) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        locks = locks_on(inode)?;
    }
    Ok(locks)
}

/// How many times [`locks_on_settled`] reads `/proc/locks` at most.
pub const LOCK_READS: usize = 5;

/// The locks currently held on the file with inode number `inode` (one read of
/// `/proc/locks`: see [`locks_on_settled`]).
pub fn locks_on(inode: u64) -> Result<Vec<Lock>, String> {
    Ok(parse_locks(&read("/proc/locks")?)
        .into_iter()
        .filter(|l| l.inode == inode)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_words() {
        let text = "pos:\t0\nflags:\t02004002\nmnt_id:\t15\ntfd:        5 events:       19 data:                2a  pos:0 ino:3e8 sdev:d\n";
        assert_eq!(field(text, "flags"), Some("02004002"));
        assert_eq!(field(text, "nope"), None);
        let tfd = lines_with(text, "tfd:");
        assert_eq!(tfd.len(), 1);
        assert_eq!(word_value(tfd[0], "tfd"), Some("5"));
        assert_eq!(word_value(tfd[0], "events"), Some("19"));
        assert_eq!(word_value(tfd[0], "data"), Some("2a"));
        assert_eq!(word_value(tfd[0], "ino"), Some("3e8"));
        assert_eq!(
            word_value("inotify wd:1 ino:5 mask:300", "mask"),
            Some("300")
        );
    }

    #[test]
    fn stat_of_a_zombie_with_spaces_in_comm() {
        let text = "42 (a (b) c) Z 7 42 42 0 -1 4194636 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 768\n";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.comm, "a (b) c");
        assert_eq!(s.state, 'Z');
        assert_eq!((s.ppid, s.pgrp, s.session), (7, 42, 42));
        assert_eq!(s.exit_code, 768);
        let me = stat(std::process::id() as i32).unwrap();
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
        assert!(stat(-1).is_none());
    }

    #[test]
    fn maps_and_locks_parse() {
        let maps = parse_maps(
            "7f00-7f10 r--s 00001000 00:1a 1234 /tmp/x y\n7f20-7f30 ---p 00000000 00:00 0 \n",
        );
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[0].path, "/tmp/x y");
        assert_eq!(maps[0].offset, 0x1000);
        assert_eq!(maps[1].perms, "---p");
        let here = mapping_at(maps_and_locks_parse as *const () as usize).unwrap();
        assert!(here.perms.contains('x'), "{here:?}");
        assert!(!vm_flags(here.start).unwrap().is_empty());

        let locks = parse_locks(
            "1: POSIX  ADVISORY  WRITE 123 00:1a:777 0 99\n1: -> POSIX  ADVISORY  WRITE 124 00:1a:777 0 99\n2: FLOCK  ADVISORY  READ 125 fd:01:778 0 EOF\n",
        );
        assert_eq!(locks.len(), 2);
        assert_eq!(
            locks[0],
            Lock {
                class: "POSIX".into(),
                access: "WRITE".into(),
                pid: 123,
                inode: 777,
                start: 0,
                end: Some(99)
            }
        );
        assert_eq!(locks[1].end, None);
        assert_eq!(locks[1].inode, 778);
    }
}
