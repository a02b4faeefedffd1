//! A migration, as data: how a process moves between two guests ([`MoveMode`]), the
//! commands the host gives each guest on its control port ([`MoveCommand`], one line each),
//! what a guest answers ([`MoveReport`]), and which scenarios can move at all.
//!
//! The source guest starts the scenario and dumps it with `--leave-stopped` (the tree stays,
//! stopped, until the host says how the move ended); the target restores it and verifies it;
//! the source then kills its stopped tree (the move held) or lets it go on (it did not).

use crate::model::outcome::{Failure, Outcome};
use crate::model::scenario::{Backend, Scenario, Target};
use serde::{Deserialize, Serialize};

/// The source guest's address on the private link.
pub const SOURCE_ADDRESS: &str = "10.77.0.1";
/// The target guest's address on the private link.
pub const TARGET_ADDRESS: &str = "10.77.0.2";
/// The first port of the target's page servers (one per copy of the memory), and the
/// source's lazy page server.
pub const FIRST_PORT: u16 = 27100;
/// The most pre-dumps a move makes.
pub const MAX_PRE_DUMPS: u32 = 8;

/// How the process moves (`crtest migrate --mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum MoveMode {
    /// Dump on the source, the images copied to the target through the host, restore there.
    #[default]
    Images,
    /// A `criu page-server` on the target takes the dump's pages over the link; the rest is
    /// copied through the host.
    PageServer,
    /// N pre-dumps with memory tracking to the target's page servers while the workload runs,
    /// then the final dump (how LXD and p.haul move a running process).
    PreDump(u32),
    /// Post-copy: `criu dump --lazy-pages` on the source serves the pages, the target restores
    /// with `criu lazy-pages` + `criu restore --lazy-pages`.
    Lazy,
}

/// The modes, their syntax and what each does (for `--help` and errors).
pub const MODES: &[(&str, &str)] = &[
    (
        "images",
        "dump, the images copied through the host, restore",
    ),
    (
        "page-server",
        "the dump's pages to a criu page-server on the target",
    ),
    (
        "pre-dump[=N]",
        "N (default 2) pre-dumps to the target while the workload runs, then the dump",
    ),
    (
        "lazy",
        "criu dump --lazy-pages serves the pages; the target restores lazily",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveModeError {
    #[error("unknown migration mode `{0}` (known: {known})", known = MODES.iter().map(|m| m.0).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("migration mode `{0}`: the number of pre-dumps must be 1 to {MAX_PRE_DUMPS}")]
    Count(String),
}

impl std::str::FromStr for MoveMode {
    type Err = MoveModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "images" => Ok(MoveMode::Images),
            "page-server" => Ok(MoveMode::PageServer),
            "pre-dump" => Ok(MoveMode::PreDump(2)),
            "lazy" => Ok(MoveMode::Lazy),
            _ => match s.strip_prefix("pre-dump=") {
                Some(n) => match n.parse::<u32>() {
                    Ok(n) if (1..=MAX_PRE_DUMPS).contains(&n) => Ok(MoveMode::PreDump(n)),
                    _ => Err(MoveModeError::Count(s.into())),
                },
                None => Err(MoveModeError::Unknown(s.into())),
            },
        }
    }
}

impl std::fmt::Display for MoveMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MoveMode::Images => f.write_str("images"),
            MoveMode::PageServer => f.write_str("page-server"),
            MoveMode::PreDump(n) => write!(f, "pre-dump={n}"),
            MoveMode::Lazy => f.write_str("lazy"),
        }
    }
}

impl From<MoveMode> for String {
    fn from(m: MoveMode) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for MoveMode {
    type Error = MoveModeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// One of the target's page servers: the folder of the working directory it writes into,
/// its port, and the copy its pages go on top of (the folder's `parent` link: a page server
/// finds the parent images through it, and the dump side cannot make it there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageServerSlot {
    pub dir: String,
    pub port: u16,
    pub parent: Option<String>,
}

impl MoveMode {
    /// The target's page servers, one per copy of the memory (the pre-dumps, then the
    /// dump). Empty when the pages do not go to the target's page servers.
    pub fn page_servers(&self) -> Vec<PageServerSlot> {
        let copies = match self {
            MoveMode::Images | MoveMode::Lazy => return Vec::new(),
            MoveMode::PageServer => 0,
            MoveMode::PreDump(n) => *n,
        };
        let parent = |k: u32| (k > 0).then(|| format!("../pre-1-{k}"));
        let mut v: Vec<PageServerSlot> = (1..=copies)
            .map(|k| PageServerSlot {
                dir: format!("pre-1-{k}"),
                port: FIRST_PORT + k as u16,
                parent: parent(k - 1),
            })
            .collect();
        v.push(PageServerSlot {
            dir: "images-1".into(),
            port: FIRST_PORT,
            parent: parent(copies),
        });
        v
    }

    /// The port of the source's lazy page server, in the lazy mode.
    pub fn lazy_port(&self) -> Option<u16> {
        (*self == MoveMode::Lazy).then_some(FIRST_PORT)
    }

    /// The number of pre-dumps.
    pub fn pre_dumps(&self) -> u32 {
        match self {
            MoveMode::PreDump(n) => *n,
            _ => 0,
        }
    }
}

/// A fault the host puts in the way of each move, to see that the verdict is clear and
/// the source's tree survives (`crtest migrate --fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The target's end of the link cut just before the pages cross it (the dump to the
    /// target's page server, or the target's first lazy page); mended after the scenario.
    LinkCut,
    /// One image of the handoff (the inventory) cut short on its way to the target: the
    /// target's criu must refuse the images.
    CorruptImages,
    /// The target's page servers killed while the source dumps to them.
    PageServerKilled,
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "link-cut" => Ok(Fault::LinkCut),
            "corrupt-images" => Ok(Fault::CorruptImages),
            "page-server-killed" => Ok(Fault::PageServerKilled),
            _ => Err(format!(
                "unknown fault `{s}` (known: link-cut, corrupt-images, page-server-killed)"
            )),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::LinkCut => "link-cut",
            Fault::CorruptImages => "corrupt-images",
            Fault::PageServerKilled => "page-server-killed",
        })
    }
}

/// Why a scenario cannot move (today): `None` when it can.
pub fn unmovable(sc: &Scenario) -> Option<String> {
    let mode = sc.mode;
    if sc.backend == Backend::Lxc {
        return Some(
            "an LXC scenario does not move yet: its container's root would have to travel too"
                .into(),
        );
    }
    if sc.backend.is_oci() {
        return Some(format!(
            "a {:?} scenario does not move with criu's images: its runtime's state would have to \
             travel too (podman's `--export`/`--import` moves it within one guest)",
            sc.backend
        ));
    }
    match &sc.target {
        Target::Workload(_) | Target::Program(_) => {}
        Target::Zdtm(_) => return Some("zdtm tests do not move yet".into()),
        Target::External(_) => return Some("an external test has no tree to move".into()),
    }
    if sc.vnc.is_some() {
        return Some("a desktop scenario does not move yet".into());
    }
    if mode != Default::default() {
        return Some(format!(
            "the migration has its own modes (`--mode`); `@{mode}` is a mode of a move in place"
        ));
    }
    // Its steps are the move's own: started, ready, moved once, verified on the target
    // (a scenario of several iterations moves once).
    sc.steps
        .iter()
        .all(|s| s.kind != crate::model::scenario::StepKind::Checkpoint)
        .then(|| "it has no checkpoint to move".into())
}

/// Which guest of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Source,
    Target,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
        }
    }
    /// This guest's address on the link, and the other's.
    pub fn addresses(self) -> (&'static str, &'static str) {
        match self {
            Role::Source => (SOURCE_ADDRESS, TARGET_ADDRESS),
            Role::Target => (TARGET_ADDRESS, SOURCE_ADDRESS),
        }
    }
    /// The MAC address this guest gives its card (the saved card has one for both).
    pub fn mac(self) -> &'static str {
        match self {
            Role::Source => "52:54:00:c7:00:01",
            Role::Target => "52:54:00:c7:00:02",
        }
    }
}

/// What a guest of a migration is, in its plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovePlan {
    pub role: Role,
    pub mode: MoveMode,
}

/// The probe each guest of a migration runs first: its CPU's flags.
pub const CPU_FLAGS_PROBE: &[&str] = &["grep", "-m1", "^flags", "/proc/cpuinfo"];

/// The flags of a `/proc/cpuinfo` `flags` line.
pub fn cpu_flags(line: &str) -> Vec<String> {
    line.split_once(':')
        .map(|(_, f)| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The flags `source` has and `target` lacks (what a process may have chosen at its start
/// and will not find after the move): the instruction sets libraries choose routines by
/// first (vector extensions, then the others), then the rest in `source`'s order.
pub fn missing_cpu_flags(source: &[String], target: &[String]) -> Vec<String> {
    const FIRST: &[&str] = &[
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512dq",
        "avx512cd",
        "avx2",
        "avx",
        "fma",
        "bmi2",
        "bmi1",
        "movbe",
        "sse4_2",
        "sse4_1",
        "ssse3",
        "sse3",
        "popcnt",
        "lzcnt",
        "abm",
        "adx",
        "aes",
        "pclmulqdq",
        "sha_ni",
        "vaes",
        "vpclmulqdq",
        "f16c",
        "rdrand",
        "rdseed",
        "erms",
        "fsrm",
        "xsave",
        "xsaveopt",
        "xsavec",
        "pku",
    ];
    let mut v: Vec<String> = source
        .iter()
        .filter(|f| !target.contains(f))
        .cloned()
        .collect();
    v.sort_by_key(|f| FIRST.iter().position(|x| x == f).unwrap_or(FIRST.len()));
    v
}

/// The folder of the guest's share where a scenario's handoff goes (the source writes it,
/// the host copies it into the target's share): `moves/<index>`.
pub fn handoff_dir(index: usize) -> String {
    format!("moves/{index}")
}

/// One command of the host to a guest of a migration; `index` is the scenario's place in
/// the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveCommand {
    /// Target: the page servers of the mode, listening.
    Serve { index: usize },
    /// Source: the scenario started and ready.
    Start { index: usize },
    /// Source: the pre-dumps and the dump (the tree left stopped), the working directory and
    /// what the restore needs written to the handoff folder.
    Dump { index: usize },
    /// Target: the handoff (copied by the host) put in place, restored, verified.
    Restore { index: usize },
    /// Target: its page servers killed (the fault `page-server-killed`).
    KillServers { index: usize },
    /// Source: the move held (`keep` false: the stopped tree goes) or not (`keep`: it goes
    /// on, checked alive and verified). Target: the move ended before its restore.
    Finish { index: usize, keep: bool },
    /// No more scenarios: the guest powers off.
    End,
}

/// The longest control line a guest reads.
pub const MAX_LINE: usize = 128;

impl MoveCommand {
    /// The control-port line (without its newline).
    pub fn line(&self) -> String {
        match self {
            MoveCommand::Serve { index } => format!("move serve {index}"),
            MoveCommand::Start { index } => format!("move start {index}"),
            MoveCommand::Dump { index } => format!("move dump {index}"),
            MoveCommand::Restore { index } => format!("move restore {index}"),
            MoveCommand::KillServers { index } => format!("move kill-servers {index}"),
            MoveCommand::Finish { index, keep } => {
                format!("move {} {index}", if *keep { "abort" } else { "confirm" })
            }
            MoveCommand::End => "move end".into(),
        }
    }

    /// The command of a control line; `None` for anything else (a `go` line, noise).
    pub fn parse(line: &str) -> Option<MoveCommand> {
        if line.len() > MAX_LINE {
            return None;
        }
        let mut w = line.split_whitespace();
        if w.next()? != "move" {
            return None;
        }
        let verb = w.next()?;
        if verb == "end" {
            return w.next().is_none().then_some(MoveCommand::End);
        }
        let index: usize = w.next()?.parse().ok()?;
        if w.next().is_some() {
            return None;
        }
        Some(match verb {
            "serve" => MoveCommand::Serve { index },
            "start" => MoveCommand::Start { index },
            "dump" => MoveCommand::Dump { index },
            "restore" => MoveCommand::Restore { index },
            "kill-servers" => MoveCommand::KillServers { index },
            "confirm" => MoveCommand::Finish { index, keep: false },
            "abort" => MoveCommand::Finish { index, keep: true },
            _ => return None,
        })
    }

    /// The verb, as reports name the command.
    pub fn verb(&self) -> &'static str {
        match self {
            MoveCommand::Serve { .. } => "serve",
            MoveCommand::Start { .. } => "start",
            MoveCommand::Dump { .. } => "dump",
            MoveCommand::Restore { .. } => "restore",
            MoveCommand::KillServers { .. } => "kill-servers",
            MoveCommand::Finish { keep: false, .. } => "confirm",
            MoveCommand::Finish { keep: true, .. } => "abort",
            MoveCommand::End => "end",
        }
    }

    pub fn index(&self) -> Option<usize> {
        match self {
            MoveCommand::Serve { index }
            | MoveCommand::Start { index }
            | MoveCommand::Dump { index }
            | MoveCommand::Restore { index }
            | MoveCommand::KillServers { index }
            | MoveCommand::Finish { index, .. } => Some(*index),
            MoveCommand::End => None,
        }
    }
}

fn pass() -> Outcome {
    Outcome::Pass
}

/// A guest's answer to one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveReport {
    pub index: usize,
    pub verb: String,
    /// How long the guest took (ms).
    pub ms: u64,
    /// `pass` when the command did what it should.
    #[serde(default = "pass")]
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The dump: its own time (the final `criu dump`), for the freeze time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu_ms: Option<u64>,
    /// The dump: the time the handoff took to write (the tree stopped meanwhile).
    #[serde(default)]
    pub handoff_ms: u64,
    /// The dump: bytes of pages sent over the link to the target's page servers (or, lazily,
    /// left to be served).
    #[serde(default)]
    pub link_bytes: u64,
    /// The restore and the finish: this guest's part of the scenario's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half: Option<Box<crate::model::outcome::ScenarioResult>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_show() {
        for (s, m) in [
            ("images", MoveMode::Images),
            ("page-server", MoveMode::PageServer),
            ("pre-dump", MoveMode::PreDump(2)),
            ("pre-dump=3", MoveMode::PreDump(3)),
            ("lazy", MoveMode::Lazy),
        ] {
            assert_eq!(s.parse::<MoveMode>().unwrap(), m);
        }
        assert_eq!(MoveMode::PreDump(2).to_string(), "pre-dump=2");
        assert!(matches!(
            "pre-dump=0".parse::<MoveMode>(),
            Err(MoveModeError::Count(_))
        ));
        let e = "ssh".parse::<MoveMode>().unwrap_err().to_string();
        assert!(e.contains("images, page-server, pre-dump[=N], lazy"), "{e}");
    }

    #[test]
    fn page_servers_take_each_copy_in_its_folder() {
        let slot = |dir: &str, port: u16, parent: Option<&str>| PageServerSlot {
            dir: dir.into(),
            port,
            parent: parent.map(String::from),
        };
        assert_eq!(
            MoveMode::PreDump(2).page_servers(),
            [
                slot("pre-1-1", FIRST_PORT + 1, None),
                slot("pre-1-2", FIRST_PORT + 2, Some("../pre-1-1")),
                slot("images-1", FIRST_PORT, Some("../pre-1-2")),
            ]
        );
        assert_eq!(
            MoveMode::PageServer.page_servers(),
            [slot("images-1", FIRST_PORT, None)]
        );
        assert!(MoveMode::Images.page_servers().is_empty());
        assert_eq!(MoveMode::Lazy.lazy_port(), Some(FIRST_PORT));
    }

    #[test]
    fn missing_cpu_features_are_the_sources_the_target_lacks() {
        let src = cpu_flags("flags\t\t: fpu acpi sse2 avx 3dnow fma avx2");
        let dst = cpu_flags("flags : fpu sse2 avx");
        assert_eq!(
            missing_cpu_flags(&src, &dst),
            ["avx2", "fma", "acpi", "3dnow"]
        );
        assert!(missing_cpu_flags(&dst, &src).is_empty());
        assert!(cpu_flags("no colon").is_empty());
    }

    #[test]
    fn commands_go_and_come_back_as_lines() {
        let all = [
            MoveCommand::Serve { index: 0 },
            MoveCommand::Start { index: 3 },
            MoveCommand::Dump { index: 3 },
            MoveCommand::Restore { index: 12 },
            MoveCommand::KillServers { index: 2 },
            MoveCommand::Finish {
                index: 1,
                keep: false,
            },
            MoveCommand::Finish {
                index: 1,
                keep: true,
            },
            MoveCommand::End,
        ];
        for c in all {
            assert_eq!(MoveCommand::parse(&c.line()), Some(c), "{}", c.line());
        }
        for bad in [
            "",
            "go 1 2",
            "move",
            "move start",
            "move start x",
            "move start 1 2",
            "move fly 1",
            "move end now",
            "move start -1",
        ] {
            assert_eq!(MoveCommand::parse(bad), None, "{bad}");
        }
        assert_eq!(
            MoveCommand::parse(&format!("move start {}", "9".repeat(200))),
            None
        );
    }
}
