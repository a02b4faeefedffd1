//! How criu is driven for a scenario: its modes, as zdtm.py's options name them.
//!
//! A mode is a set of atoms joined by `+` (`pre=2+page-server`), `plain` for none. It is the
//! last `@` part of a scenario's name (`fileio1@lazy`, `zdtm/static/env00@ns@rpc+pre=2`);
//! the catalog's own `variants` (`leave-running`, `pre-dump`) are modes too.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Post-copy restore: none, with the pages served from the images by `criu lazy-pages`, or
/// served over the network by a `criu page-server --lazy-pages` (zdtm.py's
/// `--remote-lazy-pages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lazy {
    #[default]
    No,
    Local,
    Remote,
}

/// A way of driving criu. `Mode::default()` is the plain `criu dump` then `criu restore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mode {
    /// `criu dump --leave-running`; the tree goes on and verifies itself (no restore).
    pub leave_running: bool,
    /// Memory copied this many times before the final dump, each on top of the last.
    pub pre: u32,
    /// The copies are `criu dump --leave-running --track-mem` (snapshots), not pre-dumps.
    pub snaps: bool,
    /// Dump and restore this many times (0: as the scenario says).
    pub iters: u32,
    /// The pages go to a `criu page-server` over a socket.
    pub page_server: bool,
    pub lazy: Lazy,
    /// `--leave-stopped` on dump and restore: the tree is checked stopped each time.
    pub stop: bool,
    /// `--auto-dedup`: the pages a dump supersedes are punched out of its parent images.
    pub dedup: bool,
    /// `criu restore --restore-sibling`: the tree is restored as criu's sibling.
    pub sibling: bool,
    /// The options given through a `--config` file instead of the command line.
    pub criu_config: bool,
    /// `criu restore --mntns-compat-mode`: mount namespaces restored the old way.
    pub mntns_compat: bool,
    /// criu driven over its RPC (`criu swrk`), as container runtimes drive it.
    pub rpc: bool,
}

/// Every atom, its syntax and what it does (for `--help` and errors).
pub const ATOMS: &[(&str, &str)] = &[
    ("plain", "criu dump, then criu restore (no atom)"),
    ("leave-running", "criu dump --leave-running; no restore"),
    (
        "pre-dump",
        "one criu pre-dump --track-mem before the dump (pre=1)",
    ),
    ("pre=N", "N pre-dumps, each on top of the last"),
    ("snaps=N", "N leave-running dumps with --track-mem instead"),
    ("iters=N", "dump and restore N times"),
    ("page-server", "the pages sent to a criu page-server"),
    (
        "lazy",
        "criu restore --lazy-pages, pages from criu lazy-pages",
    ),
    (
        "remote-lazy",
        "lazy restore, pages from a criu page-server --lazy-pages",
    ),
    (
        "stop",
        "--leave-stopped on dump and restore, checked stopped",
    ),
    ("dedup", "--auto-dedup on the dumps and the restore"),
    ("sibling", "criu restore --restore-sibling"),
    ("criu-config", "the options through a --config file"),
    ("mntns-compat", "criu restore --mntns-compat-mode"),
    ("rpc", "criu driven over its RPC (criu swrk)"),
];

/// The most pre-dumps, snapshots or iterations a mode may ask for.
const MAX_COUNT: u32 = 16;

impl Mode {
    pub const PLAIN: Mode = Mode {
        leave_running: false,
        pre: 0,
        snaps: false,
        iters: 0,
        page_server: false,
        lazy: Lazy::No,
        stop: false,
        dedup: false,
        sibling: false,
        criu_config: false,
        mntns_compat: false,
        rpc: false,
    };

    pub fn is_plain(&self) -> bool {
        *self == Mode::PLAIN
    }

    /// Whether a restore follows the dump.
    pub fn restores(&self) -> bool {
        !self.leave_running
    }

    /// Parses `plain` or atoms joined by `+`; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Mode, ModeError> {
        Mode::parse_atoms(text).map_err(ModeError)
    }

    fn parse_atoms(text: &str) -> Result<Mode, String> {
        let mut m = Mode::PLAIN;
        if text == "plain" {
            return Ok(m);
        }
        let mut seen: Vec<&str> = Vec::new();
        for atom in text.split('+') {
            let (name, count) = match atom.split_once('=') {
                Some((n, c)) => (n, Some(count_of(atom, c)?)),
                None => (atom, None),
            };
            if seen.contains(&name) {
                return Err(format!("mode `{text}`: `{name}` given twice"));
            }
            seen.push(name);
            let flag = |f: &mut bool| {
                *f = true;
                match count {
                    None => Ok(()),
                    Some(_) => Err(format!("mode atom `{atom}` takes no `=N`")),
                }
            };
            match (name, count) {
                ("leave-running", _) => flag(&mut m.leave_running)?,
                ("pre-dump" | "pre" | "snaps", _) if m.pre > 0 => {
                    return Err(format!(
                        "mode `{text}`: give one of pre-dump, pre=N and snaps=N"
                    ))
                }
                ("pre-dump", None) => m.pre = 1,
                ("pre" | "snaps", Some(n)) => {
                    m.pre = n;
                    m.snaps = name == "snaps";
                }
                ("iters", Some(n)) if n >= 2 => m.iters = n,
                ("iters", Some(_)) => return Err("mode atom `iters=N` needs N >= 2".into()),
                ("page-server", _) => flag(&mut m.page_server)?,
                ("lazy" | "remote-lazy", _) if m.lazy != Lazy::No => {
                    return Err(format!("mode `{text}`: give one of lazy and remote-lazy"))
                }
                ("lazy", _) => {
                    flag(&mut true)?;
                    m.lazy = Lazy::Local
                }
                ("remote-lazy", _) => {
                    flag(&mut true)?;
                    m.lazy = Lazy::Remote
                }
                ("stop", _) => flag(&mut m.stop)?,
                ("dedup", _) => flag(&mut m.dedup)?,
                ("sibling", _) => flag(&mut m.sibling)?,
                ("criu-config", _) => flag(&mut m.criu_config)?,
                ("mntns-compat", _) => flag(&mut m.mntns_compat)?,
                ("rpc", _) => flag(&mut m.rpc)?,
                ("pre" | "snaps" | "iters", None) => {
                    return Err(format!("mode atom `{name}` needs a count: `{name}=N`"))
                }
                _ => {
                    return Err(format!(
                        "unknown mode `{atom}`; modes: {}",
                        ATOMS.iter().map(|a| a.0).collect::<Vec<_>>().join(", ")
                    ))
                }
            }
        }
        if m.rpc && m.criu_config {
            return Err(format!(
                "mode `{text}`: rpc and criu-config: the RPC carries the options as fields"
            ));
        }
        if m.leave_running && (m.lazy != Lazy::No || m.stop || m.sibling || m.mntns_compat) {
            return Err(format!(
                "mode `{text}`: leave-running has no restore for lazy, remote-lazy, stop, \
                 sibling or mntns-compat"
            ));
        }
        Ok(m)
    }

    /// The atoms, in the order they are written.
    pub fn atoms(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut on = |b: bool, s: &str| {
            if b {
                v.push(s.to_string())
            }
        };
        on(self.leave_running, "leave-running");
        match (self.pre, self.snaps) {
            (0, _) => {}
            (1, false) => on(true, "pre-dump"),
            (n, false) => on(true, &format!("pre={n}")),
            (n, true) => on(true, &format!("snaps={n}")),
        }
        if self.iters > 0 {
            on(true, &format!("iters={}", self.iters));
        }
        on(self.page_server, "page-server");
        on(self.lazy == Lazy::Local, "lazy");
        on(self.lazy == Lazy::Remote, "remote-lazy");
        on(self.stop, "stop");
        on(self.dedup, "dedup");
        on(self.sibling, "sibling");
        on(self.criu_config, "criu-config");
        on(self.mntns_compat, "mntns-compat");
        on(self.rpc, "rpc");
        v
    }

    /// One tag per atom: `mode-pre`, `mode-page-server`, ... (none for plain).
    pub fn tags(&self) -> Vec<String> {
        self.atoms()
            .iter()
            .map(|a| format!("mode-{}", a.split('=').next().unwrap_or(a)))
            .map(|t| {
                if t == "mode-pre-dump" {
                    "mode-pre".into()
                } else {
                    t
                }
            })
            .collect()
    }

    /// The `criu check --feature` names the mode needs, as zdtm.py checks them.
    pub fn criu_features(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.pre > 0 {
            v.push("mem_dirty_track".to_string());
        }
        if self.lazy != Lazy::No {
            v.push("uffd-noncoop".to_string());
        }
        v
    }

    /// Options `criu --help` must list for the mode.
    pub fn criu_options(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.mntns_compat {
            v.push("--mntns-compat-mode".to_string());
        }
        v
    }

    /// The lowest criu whose interface has the mode: criu's RPC carries `leave_stopped`
    /// (field 69 of `criu_opts`) from criu 3.18's `images/rpc.proto` on; 3.17's service
    /// drops the field unread and kills the tree.
    pub fn min_criu(&self) -> Option<&'static str> {
        (self.rpc && self.stop).then_some("3.18")
    }

    /// What `lxc-checkpoint` can do: plain, leave-running and one pre-dump.
    pub fn lxc_can(&self) -> bool {
        let lxc = [
            Mode::PLAIN,
            Mode {
                leave_running: true,
                ..Mode::PLAIN
            },
            Mode {
                pre: 1,
                ..Mode::PLAIN
            },
        ];
        lxc.contains(self)
    }

    /// zdtm.py's options for the mode.
    pub fn zdtm_py_args(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut on = |b: bool, s: &[&str]| {
            if b {
                v.extend(s.iter().map(|x| x.to_string()))
            }
        };
        let n = self.pre.to_string();
        on(self.leave_running, &["--norst"]);
        on(self.pre > 0, &["--pre", &n]);
        on(self.snaps, &["--snaps"]);
        let i = self.iters.to_string();
        on(self.iters > 0, &["--iters", &i]);
        on(self.page_server, &["--page-server"]);
        on(self.lazy == Lazy::Local, &["--lazy-pages"]);
        on(self.lazy == Lazy::Remote, &["--remote-lazy-pages"]);
        on(self.stop, &["--stop"]);
        on(self.dedup, &["--dedup"]);
        on(self.sibling, &["--sibling"]);
        on(self.criu_config, &["--criu-config"]);
        on(self.mntns_compat, &["--mntns-compat-mode"]);
        on(self.rpc, &["--rpc"]);
        v
    }
}

fn count_of(atom: &str, c: &str) -> Result<u32, String> {
    match c.parse::<u32>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(format!(
            "mode atom `{atom}`: the count must be a number from 1 to {MAX_COUNT}"
        )),
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.atoms() {
            a if a.is_empty() => f.write_str("plain"),
            a => f.write_str(&a.join("+")),
        }
    }
}

/// Why a mode's text is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModeError(String);

impl TryFrom<String> for Mode {
    type Error = ModeError;
    fn try_from(s: String) -> Result<Mode, ModeError> {
        Mode::parse(&s)
    }
}

impl From<Mode> for String {
    fn from(m: Mode) -> String {
        m.to_string()
    }
}

impl std::str::FromStr for Mode {
    type Err = ModeError;
    fn from_str(s: &str) -> Result<Mode, ModeError> {
        Mode::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("plain", "plain")]
    #[case("pre-dump", "pre-dump")]
    #[case("pre=1", "pre-dump")]
    #[case("page-server+pre=2+rpc", "pre=2+page-server+rpc")]
    #[case("snaps=3+dedup", "snaps=3+dedup")]
    #[case("iters=2+lazy", "iters=2+lazy")]
    #[case("remote-lazy+stop", "remote-lazy+stop")]
    #[case("leave-running", "leave-running")]
    fn modes_are_written_one_way(#[case] given: &str, #[case] shown: &str) {
        assert_eq!(Mode::parse(given).unwrap().to_string(), shown);
        let json = serde_json::to_string(&Mode::parse(given).unwrap()).unwrap();
        assert_eq!(json, format!("\"{shown}\""));
        assert_eq!(
            serde_json::from_str::<Mode>(&json).unwrap(),
            Mode::parse(given).unwrap()
        );
    }

    #[rstest]
    #[case("lazyy", "unknown mode `lazyy`; modes: plain, leave-running")]
    #[case("pre", "needs a count: `pre=N`")]
    #[case("pre=0", "from 1 to 16")]
    #[case("pre=x", "from 1 to 16")]
    #[case("pre=2+snaps=2", "give one of pre-dump, pre=N and snaps=N")]
    #[case("lazy+remote-lazy", "give one of lazy and remote-lazy")]
    #[case("rpc+rpc", "`rpc` given twice")]
    #[case("rpc=2", "takes no `=N`")]
    #[case("iters=1", "needs N >= 2")]
    #[case("leave-running+lazy", "leave-running has no restore")]
    #[case("", "unknown mode ``")]
    #[case("rpc+criu-config", "the RPC carries the options as fields")]
    fn bad_modes_are_named(#[case] given: &str, #[case] want: &str) {
        let err = Mode::parse(given).unwrap_err().to_string();
        assert!(err.contains(want), "{given}: {err}");
    }

    #[test]
    fn what_a_mode_needs_and_how_zdtm_py_says_it() {
        let m = Mode::parse("pre=2+page-server+lazy+rpc").unwrap();
        assert_eq!(m.criu_features(), ["mem_dirty_track", "uffd-noncoop"]);
        assert_eq!(
            m.tags(),
            ["mode-pre", "mode-page-server", "mode-lazy", "mode-rpc"]
        );
        assert_eq!(
            m.zdtm_py_args().join(" "),
            "--pre 2 --page-server --lazy-pages --rpc"
        );
        assert_eq!(Mode::parse("pre-dump").unwrap().tags(), ["mode-pre"]);
        assert!(Mode::parse("pre-dump").unwrap().lxc_can());
        assert!(!Mode::parse("pre=2").unwrap().lxc_can());
        assert!(Mode::PLAIN.is_plain() && Mode::PLAIN.restores());
        assert_eq!(
            Mode::parse("mntns-compat").unwrap().criu_options(),
            ["--mntns-compat-mode"]
        );
    }
}
