//! What a normal account needs to build roots and images without root: a user namespace
//! in which the tree's owners are seen as they are in it.
//!
//! Root builds as before (a private mount namespace only). Anyone else gets
//! `unshare --map-root-user`: their own uid is root inside, so files they own are root's,
//! and with [`Ids::Subordinate`] also `--map-auto`, which maps ids 1-65535 to the account's
//! subordinate range of `/etc/subuid` and `/etc/subgid` (through `newuidmap`/`newgidmap`,
//! package `uidmap`), so that a Debian root's `_apt`, `man` or `nobody` keep their ids. The
//! same ranges let `mmdebstrap --mode=unshare` bootstrap; [`check_subordinate_ids`] says
//! exactly what to add when they are missing.

use std::path::PathBuf;

use nix::unistd::{geteuid, Uid};

use crate::command::{locate, Cmd};

/// How many subordinate ids a user namespace of a Debian root needs (ids 0-65535).
pub const SUBORDINATE_IDS: u64 = 65536;

/// Whether this process runs as root.
pub fn is_root() -> bool {
    geteuid().is_root()
}

/// mmdebstrap's mode: `root` for root, `unshare` (a user namespace with the account's
/// subordinate ids) for anyone else, said rather than left to mmdebstrap's guess so that a
/// missing piece fails with unshare's own message.
pub fn mmdebstrap_mode() -> &'static str {
    if is_root() {
        "--mode=root"
    } else {
        "--mode=unshare"
    }
}

/// Which ids a namespace maps besides the caller's own (as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// Only the caller's own: their files are root's inside, nothing else is mapped.
    Own,
    /// Also ids 1-65535, to the account's subordinate ranges.
    Subordinate,
}

/// `unshare` starting a private mount namespace (and, when not root, a user namespace
/// mapping `ids`) for the command appended to it.
pub fn unshare(ids: Ids) -> Cmd {
    unshare_as(is_root(), ids)
}

/// [`unshare`] for root or a normal user.
pub fn unshare_as(root: bool, ids: Ids) -> Cmd {
    let mut c = Cmd::tool("unshare");
    if !root {
        c = c.arg("--map-root-user");
        if ids == Ids::Subordinate {
            c = c.arg("--map-auto");
        }
    }
    c.arg("--mount")
}

/// Why a normal account cannot build a root.
#[derive(Debug, thiserror::Error)]
pub enum UserNsError {
    /// `newuidmap`/`newgidmap` are not installed.
    #[error(
        "building a Debian root as a normal user needs `{command}` (package uidmap): run \
         `sudo apt-get install uidmap`, or run as root"
    )]
    NoIdMapper { command: &'static str },
    /// The account has no (or too small a) subordinate range.
    #[error(
        "building a Debian root as a normal user needs {SUBORDINATE_IDS} subordinate {kind}s \
         for `{user}` in {}, and it has {have}: run `sudo usermod --add-subuids \
         {start}-{end} --add-subgids {start}-{end} {user}` (a range no other account uses), \
         or run as root",
         file.display(),
         end = start + SUBORDINATE_IDS - 1
    )]
    NoRange {
        kind: &'static str,
        user: String,
        file: PathBuf,
        have: u64,
        start: u64,
    },
}

/// Checks, for a normal user, what `mmdebstrap --mode=unshare` and [`Ids::Subordinate`]
/// need: the id mappers and [`SUBORDINATE_IDS`] subordinate uids and gids. Root needs none.
pub fn check_subordinate_ids() -> Result<(), UserNsError> {
    if is_root() {
        return Ok(());
    }
    for command in ["newuidmap", "newgidmap"] {
        if locate(command).is_none() {
            return Err(UserNsError::NoIdMapper { command });
        }
    }
    let uid = geteuid();
    let passwd = read_bounded("/etc/passwd");
    let name = account(&passwd, uid).map_or_else(|| uid.to_string(), |a| a.name);
    for (kind, file) in [("uid", "/etc/subuid"), ("gid", "/etc/subgid")] {
        let text = read_bounded(file);
        let have = subordinate_count(&text, &name, uid);
        if have < SUBORDINATE_IDS {
            return Err(UserNsError::NoRange {
                kind,
                user: name,
                file: PathBuf::from(file),
                have,
                start: free_start(&text),
            });
        }
    }
    Ok(())
}

/// An account of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// The account of `uid` in `/etc/passwd`-style `text`. Read from the file rather than
/// through NSS: the harness links statically, and glibc's NSS modules (systemd's) crash a
/// static binary that loads them.
pub fn account(text: &str, uid: Uid) -> Option<Account> {
    accounts(text).find(|a| a.uid == uid.as_raw())
}

/// The accounts of `/etc/passwd`-style `text`, lines that are not one skipped.
pub fn accounts(text: &str) -> impl Iterator<Item = Account> + '_ {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        match f.as_slice() {
            [name, _, uid, gid, _, home, ..] => Some(Account {
                name: name.to_string(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home: PathBuf::from(home),
            }),
            _ => None,
        }
    })
}

/// The text of a small system file (`/etc/passwd`, `/etc/subuid`), at most 4 MiB of it;
/// empty when it cannot be read.
pub fn read_bounded(path: &str) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(4 << 20).read_to_string(&mut text);
    }
    text
}

/// How many subordinate ids `/etc/subuid`-style `text` gives the account `name` (or its
/// numeric `uid`), summed over its lines.
pub fn subordinate_count(text: &str, name: &str, uid: Uid) -> u64 {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, ':');
            let (who, _start, count) = (f.next()?, f.next()?, f.next()?);
            (who == name || who == uid).then(|| count.trim().parse::<u64>().ok())?
        })
        .fold(0, u64::saturating_add)
}

/// The first multiple of 65536 from 100000 on that no range of `text` overlaps, for the
/// command a missing range prints (what `useradd` would pick).
pub fn free_start(text: &str) -> u64 {
    let ranges: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, ':').skip(1);
            let start = f.next()?.trim().parse::<u64>().ok()?;
            let count = f.next()?.trim().parse::<u64>().ok()?;
            Some((start, start.saturating_add(count)))
        })
        .collect();
    let mut start = 100_000u64;
    while let Some(&(_, end)) = ranges
        .iter()
        .find(|&&(s, e)| s < start + SUBORDINATE_IDS && start < e)
    {
        start = 100_000 + (end - 100_000).div_ceil(SUBORDINATE_IDS) * SUBORDINATE_IDS;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_for_root_and_users() {
        assert_eq!(
            unshare_as(true, Ids::Subordinate).to_string(),
            unshare_as(true, Ids::Own).to_string()
        );
        assert!(unshare_as(true, Ids::Own)
            .to_string()
            .ends_with("unshare --mount"));
        assert!(unshare_as(false, Ids::Own)
            .to_string()
            .ends_with("unshare --map-root-user --mount"));
        assert!(unshare_as(false, Ids::Subordinate)
            .to_string()
            .ends_with("unshare --map-root-user --map-auto --mount"));
    }

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:165536:1000\nbob:300000:65536\nbad line\nx:1:y\n";
        assert_eq!(subordinate_count(text, "alice", Uid::from_raw(1000)), 65536);
        assert_eq!(subordinate_count(text, "carol", Uid::from_raw(1001)), 1000);
        assert_eq!(subordinate_count(text, "dave", Uid::from_raw(1002)), 0);
        assert_eq!(subordinate_count("", "alice", Uid::from_raw(1000)), 0);
    }

    #[test]
    fn accounts_of_passwd() {
        let text = "root:x:0:0:root:/root:/bin/bash\nbroken\nx:y:z:1:2:/h:/bin/sh\n\
                    alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n";
        let a = account(text, Uid::from_raw(1000)).unwrap();
        assert_eq!(
            (a.name.as_str(), a.gid, a.home.as_path()),
            ("alice", 1000, std::path::Path::new("/home/alice"))
        );
        assert_eq!(account(text, Uid::from_raw(0)).unwrap().name, "root");
        assert_eq!(account(text, Uid::from_raw(7)), None);
        assert_eq!(accounts(text).count(), 2);
    }

    #[test]
    fn a_free_range_for_the_hint() {
        assert_eq!(free_start(""), 100_000);
        assert_eq!(free_start("a:100000:65536\n"), 165_536);
        assert_eq!(free_start("a:100000:65536\nb:165536:65536\n"), 231_072);
        assert_eq!(free_start("a:200000:10\n"), 100_000);
        assert_eq!(free_start("a:150000:10\n"), 165_536);
    }
}
