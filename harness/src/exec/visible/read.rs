//! Reading what a process shows in /proc into named items, with what legitimately changes
//! across a checkpoint taken out: identities (inodes of pipes, sockets, namespaces, mount
//! peer groups) become the place they were first seen, pids the pid inside the tree's own
//! namespace, vDSO and vvar their size.
//!
//! The text parsers are pure (unit-tested on captured /proc text); every read is bounded.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Largest /proc file read (smaps of a big tree, a container's mountinfo).
const MAX_FILE: u64 = 8 << 20;
/// Most fds read of one process; the count of the rest is an item of its own.
const MAX_FDS: usize = 2048;
/// Most processes read of one tree.
pub const MAX_PROCS: usize = 512;
/// VmFlags that change without the process doing anything: soft-dirty (cleared by criu's
/// own memory tracking), accountable and no-reserve (how the kernel charged the mapping).
const VOLATILE_VMFLAGS: &[&str] = &["sd", "ac", "nr"];

/// `(who, item id)` -> value, e.g. `("pid 1", "fds.3.flags") -> "02"`.
pub type Items = BTreeMap<(String, String), String>;

/// Reads `path`, at most [`MAX_FILE`] bytes.
pub fn bounded(path: &Path) -> Option<String> {
    whole(path).map(|(s, _)| s)
}

/// Reads `path`, at most [`MAX_FILE`] bytes, and says whether that was all of it.
fn whole(path: &Path) -> Option<(String, bool)> {
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE + 1)
        .read_to_string(&mut s)
        .ok()?;
    let all = s.len() as u64 <= MAX_FILE;
    if !all {
        let mut cut = MAX_FILE as usize;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    Some((s, all))
}

/// What criu's restore names differently but is the same object: shared anonymous memory
/// comes back as a memfd of its name (`/memfd:/dev/zero (deleted)`), and an unlinked file
/// it had to link to restore keeps that link's name (`NAME.cr_link (deleted)`).
pub fn same_object(path: &str) -> String {
    let p = path
        .strip_prefix("/memfd:")
        .filter(|rest| rest.starts_with("/dev/zero") || rest.starts_with("/anon_hugepage"))
        .unwrap_or(path);
    match p.strip_suffix(".cr_link (deleted)") {
        Some(base) => format!("{base} (deleted)"),
        None => p.to_string(),
    }
}

fn link(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Identities renamed to where they were first seen, so two reads of the same tree name the
/// same pipe alike whatever its inode: `pipe:[8812]` -> `pipe@pid 1 fds.3`.
#[derive(Default)]
pub struct Names {
    first: BTreeMap<(String, String), String>,
    /// The agent's own namespaces (`net:[4026531992]`): named `host`.
    host: BTreeMap<String, ()>,
    /// How many identities were renamed, by kind.
    pub renamed: BTreeMap<String, usize>,
}

impl Names {
    pub fn with_host_namespaces() -> Names {
        let mut n = Names::default();
        if let Ok(dir) = std::fs::read_dir("/proc/self/ns") {
            for e in dir.flatten() {
                if let Some(l) = link(&e.path()) {
                    n.host.insert(l, ());
                }
            }
        }
        n
    }

    /// `kind:[number]` renamed; anything else as it is.
    pub fn rename(&mut self, raw: &str, seen_at: &str) -> String {
        let Some((kind, num)) = identity(raw) else {
            return raw.to_string();
        };
        if self.host.contains_key(raw) {
            return format!("{kind}:host");
        }
        let key = (kind.to_string(), num.to_string());
        if let Some(n) = self.first.get(&key) {
            return n.clone();
        }
        *self.renamed.entry(kind.to_string()).or_default() += 1;
        let name = format!("{kind}@{seen_at}");
        self.first.insert(key, name.clone());
        name
    }
}

/// `("pipe", "8812")` of `pipe:[8812]`.
fn identity(s: &str) -> Option<(&str, &str)> {
    let (kind, rest) = s.split_once(":[")?;
    let num = rest.strip_suffix(']')?;
    let ok = !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit());
    ok.then_some((kind, num))
}

/// The `Key:\tvalue` fields of a status file.
pub fn status_fields(status: &str) -> BTreeMap<&str, &str> {
    status
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect()
}

/// The pids of `NSpid:`, outermost first.
pub fn nspid(status: &str) -> Vec<i32> {
    status_fields(status)
        .get("NSpid")
        .map(|v| {
            v.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Running, sleeping and waiting are one state here (they change by the millisecond);
/// stopped, traced, zombie and dead are what a restore must give back.
pub fn state_class(state: &str) -> &'static str {
    match state.chars().next() {
        Some('T') => "stopped",
        Some('t') => "tracing-stop",
        Some('Z') => "zombie",
        Some('X') => "dead",
        _ => "running",
    }
}

/// `flags` and `pos` of an fdinfo file.
pub fn fdinfo(text: &str) -> (Option<&str>, Option<&str>) {
    let f = status_fields(text);
    (f.get("flags").copied(), f.get("pos").copied())
}

/// Flags the kernel keeps in `f_flags` from the open but that change nothing after it:
/// `O_LARGEFILE` (forced on 64-bit; criu reopens pipes with it), `O_DIRECTORY` and
/// `__O_TMPFILE` (criu reopens a directory or a tmpfile by path, without them).
const OPEN_TIME_FLAGS: u32 = 0o100000 | 0o200000 | 0o20000000;

/// An fdinfo `flags` value (octal) without [`OPEN_TIME_FLAGS`], in octal again.
pub fn lasting_flags(flags: &str) -> String {
    match u32::from_str_radix(flags, 8) {
        Ok(f) => format!("0{:o}", f & !OPEN_TIME_FLAGS),
        Err(_) => flags.to_string(),
    }
}

/// Whether an fd's position means something: a file of a file system (not a device, not
/// /proc or /sys).
pub fn has_position(target: &str) -> bool {
    target.starts_with('/')
        && !["/dev/", "/proc/", "/sys/"]
            .iter()
            .any(|p| target.starts_with(p))
}

/// One mapping of smaps (or maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub path: String,
    pub vmflags: String,
}

impl Mapping {
    fn anonymous(&self) -> bool {
        self.path.is_empty() || self.path.starts_with('[')
    }
}

/// The mappings of an smaps (or maps) text; VmFlags without the volatile ones.
pub fn mappings(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(m) = out.last_mut() {
                m.vmflags = flags
                    .split_whitespace()
                    .filter(|f| !VOLATILE_VMFLAGS.contains(f))
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            continue;
        }
        if let Some(m) = mapping_line(line) {
            out.push(m);
        }
    }
    out
}

fn mapping_line(line: &str) -> Option<Mapping> {
    let mut it = line.splitn(6, ' ');
    let (a, b) = it.next()?.split_once('-')?;
    let start = u64::from_str_radix(a, 16).ok()?;
    let end = u64::from_str_radix(b, 16).ok()?;
    let perms = it.next()?;
    if perms.len() != 4 {
        return None;
    }
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path = it.next().unwrap_or("").trim().to_string();
    Some(Mapping {
        start,
        end,
        perms: perms.into(),
        offset,
        path,
        vmflags: String::new(),
    })
}

/// Adjacent mappings the kernel may show as one or as two (criu maps them one by one; the
/// kernel merges what it can): one entry when protection, backing, flags and (for files)
/// offsets continue.
pub fn merge_adjacent(maps: Vec<Mapping>) -> (Vec<Mapping>, usize) {
    let mut out: Vec<Mapping> = Vec::with_capacity(maps.len());
    let mut merged = 0;
    for m in maps {
        if let Some(last) = out.last_mut() {
            let continues = last.end == m.start
                && last.perms == m.perms
                && last.path == m.path
                && last.vmflags == m.vmflags
                && !last.path.starts_with('[')
                && (last.anonymous() || last.offset + (last.end - last.start) == m.offset);
            if continues {
                last.end = m.end;
                merged += 1;
                continue;
            }
        }
        out.push(m);
    }
    (out, merged)
}

/// The items of mappings: by range, except the kernel's special ones (vDSO, vvar,
/// vsyscall), which criu may place elsewhere: by name and size; and the heap, whose end
/// moves with every brk: by its start. Returns how many were not compared by range.
pub fn mapping_items(
    maps: &[Mapping],
    names: &mut Names,
    who: &str,
    out: &mut Vec<(String, String)>,
) -> usize {
    let mut placed = 0;
    for m in maps {
        let special = matches!(m.path.as_str(), "[vdso]" | "[vvar]" | "[vsyscall]");
        let (id, value) = if m.path == "[heap]" {
            placed += 1;
            (
                "maps.[heap]".to_string(),
                format!("{} from {:#x}", m.perms, m.start),
            )
        } else if special {
            placed += 1;
            (
                format!("maps.{}", m.path),
                format!("{} size {:#x}", m.perms, m.end - m.start),
            )
        } else {
            let offset = if m.anonymous() {
                String::new()
            } else {
                format!(" @{:#x}", m.offset)
            };
            let id = format!("maps.{:x}-{:x}", m.start, m.end);
            // A mapped socket's ring (packet sockets) is named like the socket's fd.
            let path = names.rename(&same_object(&m.path), &format!("{who} {id}"));
            let value =
                format!("{}{} {} [{}]", m.perms, offset, path, m.vmflags).replace("  ", " ");
            (id, value)
        };
        out.push((id, value));
    }
    placed
}

/// The items of a mountinfo text (`mounts.<mount point>`, a repeated mount point numbered);
/// peer group numbers renamed by `names` at the first mount that shows them (in `ns`).
/// A mount of criu's own, made for the restore and taken down right after `pre-resume`
/// (its cgroup yard `IMAGES/.criu.cgyard.XXXXXX`, its mount-namespace workspace
/// `.criu.mntns.XXXXXX`): a path component that starts with `.criu.`. A side read at
/// `pre-resume` in the agent's own mount namespace sees them; they are not the tree's.
pub fn criu_own_mount(point: &str) -> bool {
    point.split('/').any(|c| c.starts_with(".criu."))
}

pub fn mount_items(text: &str, names: &mut Names, ns: &str) -> Vec<(String, String)> {
    let mounts = parsed_mounts(text);
    let reps = peer_representatives(&mounts);
    mounts
        .iter()
        .map(|m| {
            let prop: Vec<String> = m
                .prop
                .iter()
                .map(|f| match f.split_once(':') {
                    Some((k, v)) => {
                        let rep = reps.get(v).map_or(m.id.as_str(), String::as_str);
                        format!(
                            "{k}:{}",
                            names.rename(&format!("peer:[{v}]"), &format!("{rep} of {ns}"))
                        )
                    }
                    None => f.to_string(),
                })
                .collect();
            let value = format!(
                "{} {} root={} opts={} super={}{}",
                m.fstype,
                m.source,
                m.root,
                m.opts,
                m.super_opts,
                if prop.is_empty() {
                    String::new()
                } else {
                    format!(" {}", prop.join(" "))
                }
            );
            (m.id.clone(), value)
        })
        .collect()
}

/// One line of a mountinfo text, as the comparison keeps it.
struct MountLine<'a> {
    /// `mounts.<mount point>` (`#2`, ... for a mount point met again).
    id: String,
    root: &'a str,
    opts: &'a str,
    /// The optional fields: `shared:N`, `master:N`, ...
    prop: Vec<&'a str>,
    fstype: &'a str,
    source: &'a str,
    super_opts: &'a str,
}

fn parsed_mounts(text: &str) -> Vec<MountLine<'_>> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        let point = l[4];
        if criu_own_mount(point) {
            continue;
        }
        let n = seen.entry(point.to_string()).or_default();
        *n += 1;
        let id = if *n == 1 {
            format!("mounts.{point}")
        } else {
            format!("mounts.{point}#{n}")
        };
        out.push(MountLine {
            id,
            root: l[3],
            opts: l[5],
            prop: l[6..].to_vec(),
            fstype: r[0],
            source: r[1],
            super_opts: r[2],
        });
    }
    out
}

/// The mount a peer group is named after, whatever order mountinfo lists the mounts in
/// (a restore may list them in another): the least of its members (`shared:N`), or, for a
/// group none of whose members is here (a master outside the namespace), the least of the
/// mounts that name it.
fn peer_representatives(mounts: &[MountLine]) -> BTreeMap<String, String> {
    let mut members: BTreeMap<String, String> = BTreeMap::new();
    let mut referrers: BTreeMap<String, String> = BTreeMap::new();
    for m in mounts {
        for f in &m.prop {
            let Some((kind, group)) = f.split_once(':') else {
                continue;
            };
            let into = if kind == "shared" {
                &mut members
            } else {
                &mut referrers
            };
            let least = into
                .entry(group.to_string())
                .or_insert_with(|| m.id.clone());
            if m.id < *least {
                *least = m.id.clone();
            }
        }
    }
    for (group, id) in referrers {
        members.entry(group).or_insert(id);
    }
    members
}

/// The items of a limits file: `limits.Max open files` -> `1024 4096`.
pub fn limit_items(text: &str) -> Vec<(String, String)> {
    text.lines()
        .skip(1)
        .filter(|l| l.len() > 26)
        .filter_map(|l| {
            let (name, rest) = l.split_at(26.min(l.len()));
            let mut v = rest.split_whitespace();
            Some((
                format!("limits.{}", name.trim()),
                format!("{} {}", v.next()?, v.next()?),
            ))
        })
        .collect()
}

/// The items of a cgroup file: `cgroup.0` -> `/user.slice`.
pub fn cgroup_items(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (h, c, p) = (it.next()?, it.next()?, it.next()?);
            let id = if c.is_empty() {
                format!("cgroup.{h}")
            } else {
                format!("cgroup.{h}:{c}")
            };
            Some((id, p.to_string()))
        })
        .collect()
}

/// What one process shows: its items under `who`.
pub fn process_items(
    pid: i32,
    who: &str,
    parent: &str,
    names: &mut Names,
    merged: &mut usize,
    placed: &mut usize,
) -> Vec<(String, String)> {
    let dir = Path::new("/proc").join(pid.to_string());
    let mut out = Vec::new();
    let status = bounded(&dir.join("status")).unwrap_or_default();
    let f = status_fields(&status);
    let field = |k: &str| f.get(k).copied().unwrap_or("?").to_string();
    out.push(("process.name".into(), field("Name")));
    out.push((
        "process.state".into(),
        state_class(f.get("State").copied().unwrap_or("")).into(),
    ));
    out.push(("process.threads".into(), field("Threads")));
    out.push(("process.parent".into(), parent.to_string()));
    out.push(("process.umask".into(), field("Umask")));
    if state_class(f.get("State").copied().unwrap_or("")) == "zombie" {
        // A zombie keeps only its exit: masks, fds, memory and credentials are gone with
        // it (criu restores it as a process that exits at once, as root).
        return out;
    }
    for k in [
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ] {
        if f.contains_key(k) {
            out.push((format!("creds.{k}"), field(k)));
        }
    }
    if let Some(l) = bounded(&dir.join("loginuid")) {
        out.push(("creds.loginuid".into(), l.trim().to_string()));
    }
    for k in ["SigBlk", "SigIgn", "SigCgt"] {
        out.push((format!("signals.{k}"), field(k)));
    }
    for (k, p) in [("cwd", "cwd"), ("root", "root"), ("exe", "exe")] {
        if let Some(l) = link(&dir.join(p)) {
            out.push((format!("fs.{k}"), l));
        }
    }
    if let Ok(ns) = std::fs::read_dir(dir.join("ns")) {
        let mut kinds: Vec<_> = ns.flatten().map(|e| e.file_name()).collect();
        kinds.sort();
        for k in kinds {
            let k = k.to_string_lossy();
            if let Some(l) = link(&dir.join("ns").join(&*k)) {
                let id = format!("ns.{k}");
                let v = names.rename(&l, &format!("{who} {id}"));
                out.push((id, v));
            }
        }
    }
    out.extend(cgroup_items(
        &bounded(&dir.join("cgroup")).unwrap_or_default(),
    ));
    out.extend(limit_items(
        &bounded(&dir.join("limits")).unwrap_or_default(),
    ));
    fd_items(&dir, who, names, &mut out);
    // smaps for the VmFlags; a tree of very many mappings has an smaps too large to read
    // whole: then maps, without VmFlags, rather than a cut list.
    let maps = match whole(&dir.join("smaps")) {
        Some((text, true)) => mappings(&text),
        _ => mappings(&bounded(&dir.join("maps")).unwrap_or_default()),
    };
    let (maps, m) = merge_adjacent(maps);
    *merged += m;
    *placed += mapping_items(&maps, names, who, &mut out);
    out
}

fn fd_items(dir: &Path, who: &str, names: &mut Names, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir.join("fd")) else {
        return;
    };
    let mut fds: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    if fds.len() > MAX_FDS {
        out.push(("fds.not-read".into(), (fds.len() - MAX_FDS).to_string()));
        fds.truncate(MAX_FDS);
    }
    for fd in fds {
        let Some(target) = link(&dir.join("fd").join(fd.to_string())) else {
            continue;
        };
        let id = format!("fds.{fd}");
        let target = same_object(&target);
        let target_name = names.rename(&target, &format!("{who} {id}"));
        out.push((format!("{id}.target"), target_name));
        let info = bounded(&dir.join("fdinfo").join(fd.to_string())).unwrap_or_default();
        let (flags, pos) = fdinfo(&info);
        if let Some(flags) = flags {
            out.push((format!("{id}.flags"), lasting_flags(flags)));
        }
        if let Some(pos) = pos.filter(|_| has_position(&target)) {
            out.push((format!("{id}.pos"), pos.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_renamed_where_first_seen() {
        let mut n = Names::default();
        n.host.insert("net:[1]".into(), ());
        assert_eq!(n.rename("pipe:[88]", "pid 1 fds.3"), "pipe@pid 1 fds.3");
        assert_eq!(n.rename("pipe:[88]", "pid 2 fds.0"), "pipe@pid 1 fds.3");
        assert_eq!(n.rename("pipe:[89]", "pid 2 fds.1"), "pipe@pid 2 fds.1");
        assert_eq!(n.rename("net:[1]", "pid 1 ns.net"), "net:host");
        assert_eq!(n.rename("/tmp/a [1]", "x"), "/tmp/a [1]");
        assert_eq!(
            n.rename("anon_inode:[eventfd]", "x"),
            "anon_inode:[eventfd]"
        );
        assert_eq!(n.renamed.get("pipe"), Some(&2));
    }

    #[test]
    fn status_and_fdinfo() {
        let s = "Name:\tsleep\nState:\tT (stopped)\nNSpid:\t512\t1\nSigBlk:\t0000000000010000\n";
        assert_eq!(nspid(s), vec![512, 1]);
        assert_eq!(state_class(status_fields(s)["State"]), "stopped");
        assert_eq!(state_class("S (sleeping)"), "running");
        assert_eq!(
            fdinfo("pos:\t42\nflags:\t0100002\nmnt_id:\t25\nino:\t7\n"),
            (Some("0100002"), Some("42"))
        );
        assert_eq!(lasting_flags("0300000"), "00");
        assert_eq!(lasting_flags("020300002"), "02");
        assert_eq!(lasting_flags("02104001"), "02004001");
        assert_eq!(lasting_flags("zz"), "zz");
        assert!(has_position("/tmp/x (deleted)"));
        assert_eq!(
            same_object("/memfd:/dev/zero (deleted)"),
            "/dev/zero (deleted)"
        );
        assert_eq!(
            same_object("/memfd:/anon_hugepage (deleted)"),
            "/anon_hugepage (deleted)"
        );
        assert_eq!(
            same_object("/memfd:mine (deleted)"),
            "/memfd:mine (deleted)"
        );
        assert_eq!(
            same_object("/z/a.test.cr_link (deleted)"),
            "/z/a.test (deleted)"
        );
        assert!(!has_position("/dev/null"));
        assert!(!has_position("pipe:[3]"));
    }

    const SMAPS: &str = "\
55d0a0000000-55d0a0001000 r--p 00000000 fe:00 131 /usr/bin/cat
Size:                  4 kB
VmFlags: rd mr mw me sd
55d0a0001000-55d0a0003000 r-xp 00001000 fe:00 131 /usr/bin/cat
VmFlags: rd ex mr mw me sd
7f0000000000-7f0000001000 rw-p 00000000 00:00 0 
VmFlags: rd wr mr mw me ac sd
7f0000001000-7f0000002000 rw-p 00000000 00:00 0 
VmFlags: rd wr mr mw me ac sd
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
VmFlags: rd ex mr mw me de sd
55d0a0100000-55d0a0121000 rw-p 00000000 00:00 0                          [heap]
VmFlags: rd wr mr mw me ac sd
";

    #[test]
    fn mappings_merge_and_name() {
        let maps = mappings(SMAPS);
        assert_eq!(maps.len(), 6);
        assert_eq!(maps[0].vmflags, "rd mr mw me");
        let (maps, merged) = merge_adjacent(maps);
        assert_eq!(merged, 1, "the two anonymous halves are one");
        let mut items = Vec::new();
        let placed = mapping_items(&maps, &mut Names::default(), "pid 1", &mut items);
        assert_eq!(placed, 2);
        insta::assert_snapshot!(items
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join("\n"));
    }

    #[test]
    fn criu_s_own_mounts_are_not_the_tree_s() {
        let text = "30 1 8:1 / / rw - ext4 /dev/vda rw\n\
            91 30 0:55 / /tmp/crtest/x/images-1/.criu.cgyard.P7ofjb rw,relatime - tmpfs none rw\n\
            92 91 0:26 / /tmp/crtest/x/images-1/.criu.cgyard.P7ofjb/unified rw - cgroup2 none rw\n\
            93 30 0:56 / /tmp/crtest/x/criu-data rw - tmpfs none rw\n";
        let items = mount_items(text, &mut Names::default(), "mnt:host");
        let points: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(points, ["mounts./", "mounts./tmp/crtest/x/criu-data"]);
    }

    #[test]
    fn mountinfo_items() {
        let text = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=1000k
40 22 0:33 / /tmp rw master:1 - tmpfs tmpfs rw
41 40 0:34 / /tmp rw - tmpfs tmpfs rw
garbage line
";
        let mut n = Names::default();
        let items = mount_items(text, &mut n, "mnt@pid 1 ns.mnt");
        insta::assert_snapshot!(items
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join("\n"));
    }

    /// A restore may list the mounts of a peer group in another order (zdtm's
    /// non_uniform_share_propagation): the group keeps its name.
    #[test]
    fn peer_groups_are_named_whatever_the_order() {
        let a = "\
1 0 0:1 / / rw shared:1 - ext4 /dev/vda rw
2 1 0:2 / /s/c3 rw shared:7 - tmpfs t rw
3 1 0:2 / /s/c2/c3 rw shared:7 - tmpfs t rw
4 1 0:3 / /m rw master:9 - tmpfs t rw
";
        let b = "\
1 0 0:1 / / rw shared:3 - ext4 /dev/vda rw
3 1 0:2 / /s/c2/c3 rw shared:5 - tmpfs t rw
2 1 0:2 / /s/c3 rw shared:5 - tmpfs t rw
4 1 0:3 / /m rw master:8 - tmpfs t rw
";
        let sorted = |text: &str| {
            let mut v = mount_items(text, &mut Names::default(), "mnt@pid 1 ns.mnt");
            v.sort();
            v
        };
        assert_eq!(sorted(a), sorted(b));
        assert!(sorted(a)
            .iter()
            .any(|(_, v)| v.ends_with("shared:peer@mounts./s/c2/c3 of mnt@pid 1 ns.mnt")));
    }

    #[test]
    fn limits_and_cgroups() {
        let limits = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1024                 4096                 files     
";
        assert_eq!(
            limit_items(limits),
            vec![
                ("limits.Max cpu time".into(), "unlimited unlimited".into()),
                ("limits.Max open files".into(), "1024 4096".into())
            ]
        );
        assert_eq!(
            cgroup_items("0::/crtest/a\n3:cpu,cpuacct:/x\n"),
            vec![
                ("cgroup.0".into(), "/crtest/a".into()),
                ("cgroup.3:cpu,cpuacct".into(), "/x".into())
            ]
        );
    }
}
