//! Scenario files: the TOML data in `scenarios/` and its validated, expanded form.
//!
//! A scenario names a workload, its arguments and the steps to run on it. The file name
//! (without `.toml`) is the scenario's name. See `scenarios/README.md` for the schema.

mod file;
mod mode;
mod options;
mod targets;

pub use mode::*;
pub use options::*;
pub use targets::*;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Workloads the guest bundle ships (one binary each, built from `workloads/`).
pub const KNOWN_WORKLOADS: &[&str] = crtest_workloads::ALL;

/// Default time for a whole scenario, in seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 180;
/// Default time for one step, in seconds.
pub const DEFAULT_STEP_TIMEOUT_S: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot list scenario directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed scenario {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid scenario {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error("unknown scenario `{name}`; known scenarios: {}", shown(known))]
    Unknown { name: String, known: Vec<String> },
    #[error("scenario `{name}`: {message}")]
    Mode { name: String, message: String },
    #[error("scenario `{name}` is defined twice: {first} and {second}")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// At most this many names are listed in an error (a zdtm tree brings over a thousand).
const SHOWN_NAMES: usize = 200;

fn shown(names: &[String]) -> String {
    match names.len() {
        n if n <= SHOWN_NAMES => names.join(", "),
        n => format!(
            "{}, and {} more (see `crtest list`)",
            names[..SHOWN_NAMES].join(", "),
            n - SHOWN_NAMES
        ),
    }
}

/// One step as written in a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Start the workload in a fresh working directory, as a session leader.
    Start,
    /// Wait until the workload has written its `ready` file.
    WaitReady,
    /// `criu dump` the workload's process tree (it is killed by the dump).
    Checkpoint,
    /// `criu restore` it from the images of the last checkpoint and check it keeps working.
    Restore,
    /// Ask the workload to check its own state (SIGTERM) and read its verdict.
    Verify,
    /// Run an external test command to its end; exit status 0 = pass (`[external]` only).
    Run,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Start => "start",
            StepKind::WaitReady => "wait-ready",
            StepKind::Checkpoint => "checkpoint",
            StepKind::Restore => "restore",
            StepKind::Verify => "verify",
            StepKind::Run => "run",
        }
    }
}

const DEFAULT_STEPS: &[StepKind] = &[
    StepKind::Start,
    StepKind::WaitReady,
    StepKind::Checkpoint,
    StepKind::Restore,
    StepKind::Verify,
];

/// What a scenario needs; unmet, it is skipped with the requirement named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Requires {
    /// Kernel options that must be `y` or `m`.
    #[serde(default)]
    pub kernel_config: Vec<String>,
    /// Features `criu check --feature NAME` must report (probed once per guest).
    #[serde(default)]
    pub criu_features: Vec<String>,
    /// Kernel modules that must load.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Lowest kernel release, e.g. `5.10`.
    pub min_kernel: Option<String>,
    /// Lowest criu version, e.g. `3.16`.
    pub min_criu: Option<String>,
    /// Lowest lxc version.
    pub min_lxc: Option<String>,
    /// Options `criu --help` must list (probed once per guest), e.g. `--mntns-compat-mode`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub criu_options: Vec<String>,
}

/// What the scenario is expected to come to. A failure that matches is `xfail`; a pass
/// where a failure was expected is `xpass`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    /// `pass` (default) or `fail`.
    #[serde(default)]
    pub outcome: ExpectedOutcome,
    /// The failure class the diagnosis must name (see `harness/data/failure-classes.toml`).
    pub class: Option<String>,
    /// The errno the diagnosis must name, e.g. `EBUSY`.
    pub errno: Option<String>,
    /// Text the failure's first error line (or message) must contain, so that an expected
    /// failure cannot hide a different one of the same class.
    pub contains: Option<String>,
    /// Texts of which the failure's first error line (or message) must contain one: an
    /// expected failure that criu versions word differently.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contains_any: Vec<String>,
    /// Why the failure is expected (shown in reports).
    pub reason: Option<String>,
    /// The variants the expectation holds for (default: all); the others are expected to
    /// pass (e.g. `["plain", "pre-dump"]` when a leave-running dump leaves the state alone).
    /// `plain` stands for every mode that restores too (see [`Expect::holds_for`]).
    #[serde(default)]
    pub variants: Option<Vec<Mode>>,
    /// Items of the visible-state comparison whose differences do not fail the scenario,
    /// each with its reason: `[{ item = "fds.pos", reason = "..." }]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visible_state_ignore: Vec<crate::model::visible::Ignore>,
    /// The criu versions an expected failure holds for, a range as the compatibility rules
    /// write them (`<3.19`); a cell with another criu expects a pass. Default: every criu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu: Option<String>,
    /// The criu commit that mended the failure (`SHA subject (release; how it was found)`),
    /// as `crtest bisect` named it: evidence for `criu`'s bound, shown with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_by: Option<String>,
}

impl Expect {
    /// Whether the expectation holds in `mode`: it names no variants, or names this one, or
    /// names `plain` and the mode restores (a mode adds ways of driving criu to the plain
    /// dump and restore; what a restore gets wrong there it gets wrong in every mode).
    pub fn holds_for(&self, mode: &Mode) -> bool {
        match &self.variants {
            None => true,
            Some(vs) => vs.contains(mode) || (vs.contains(&Mode::PLAIN) && mode.restores()),
        }
    }

    /// The expectation on a cell whose criu is `version`: an expected failure bounded by
    /// `criu` becomes an expected pass (with the same relaxations) outside that range; an
    /// unknown version keeps it.
    pub fn for_criu(&self, version: Option<&str>) -> Expect {
        match (&self.criu, version) {
            (Some(range), Some(v)) if !crate::diagnose::version::in_range(v, range) => {
                self.relaxations_only()
            }
            _ => self.clone(),
        }
    }

    /// A pass expected, with the same visible-state relaxations (for the variants an
    /// expected failure does not hold for).
    fn relaxations_only(&self) -> Expect {
        Expect {
            visible_state_ignore: self.visible_state_ignore.clone(),
            ..Expect::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedOutcome {
    #[default]
    Pass,
    Fail,
}

/// What the scenario runs: one of our workloads or a user's program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Workload(Workload),
    Program(Program),
    External(External),
    /// A test of CRIU's zdtm suite (made by `crate::zdtm`, never read from a file).
    Zdtm(ZdtmTest),
}

/// A validated scenario with its steps expanded; this is what the executor runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub target: Target,
    /// Steps after expanding `iterations`: each step with its iteration number (from 1).
    pub steps: Vec<PlannedStep>,
    pub iterations: u32,
    /// How criu is driven (`plain`, `pre=2`, `lazy`, ...): the last `@` part of the name.
    pub mode: Mode,
    pub timeout_s: u64,
    pub step_timeout_s: u64,
    pub tags: Vec<String>,
    pub dump_args: Vec<String>,
    pub restore_args: Vec<String>,
    pub requires: Requires,
    pub expect: Expect,
    pub backend: Backend,
    pub lxc: Option<LxcOptions>,
    /// The container of an OCI backend (`podman`, `runc`, `crun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciOptions>,
    /// Screenshots and keys through VNC.
    #[serde(default)]
    pub vnc: Option<VncOptions>,
    /// Guest commands before the scenario and after it (always).
    pub before: Vec<Vec<String>>,
    pub after: Vec<Vec<String>>,
    /// Guest commands between each checkpoint and its restore (`CRTEST_IMAGES` set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub between: Vec<Vec<String>>,
    /// Needs a guest booted just for it.
    #[serde(default)]
    pub fresh_kernel: bool,
    /// The userland variant the scenario needs (`None`: the default image).
    #[serde(default)]
    pub userland_variant: Option<String>,
    /// Where the scenario was read from.
    pub source: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub kind: StepKind,
    pub iteration: u32,
}

impl Target {
    /// Host files the target copies into its working directory.
    pub fn files(&self) -> &[PathBuf] {
        match self {
            Target::Workload(_) => &[],
            Target::Program(p) => &p.files,
            Target::External(e) => &e.files,
            Target::Zdtm(_) => &[],
        }
    }
}

impl Scenario {
    /// The workload's name, or the user's program for a program scenario.
    pub fn what(&self) -> &str {
        match &self.target {
            Target::Workload(w) => &w.name,
            Target::Program(p) => p.command.first().map_or("program", String::as_str),
            Target::External(e) => e.command.first().map_or("external", String::as_str),
            Target::Zdtm(z) => &z.test,
        }
    }
}

/// All scenarios of a directory (`*.toml`), sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ScenarioError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ScenarioError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut out: Vec<Scenario> = Vec::new();
    for path in paths {
        for s in Scenario::load(&path)? {
            if let Some(prev) = out.iter().find(|p| p.name == s.name) {
                return Err(ScenarioError::Duplicate {
                    name: s.name.clone(),
                    first: prev.source.clone(),
                    second: s.source,
                });
            }
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Picks scenarios by name (all when `names` is empty) and by tag (any of `tags`).
pub fn select(
    all: &[Scenario],
    names: &[String],
    tags: &[String],
) -> Result<Vec<Scenario>, ScenarioError> {
    let known = || all.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let mut out = Vec::new();
    if names.is_empty() {
        // A `noauto` scenario (zdtm's flag) runs only when named.
        out.extend(
            all.iter()
                .filter(|s| !s.tags.iter().any(|t| t == "noauto"))
                .cloned(),
        );
    } else {
        for name in names {
            let found = match all.iter().find(|s| &s.name == name) {
                Some(s) => s.clone(),
                None => in_named_mode(all, name)?.ok_or_else(|| ScenarioError::Unknown {
                    name: name.clone(),
                    known: known(),
                })?,
            };
            if !out.iter().any(|o: &Scenario| o.name == found.name) {
                out.push(found);
            }
        }
    }
    if !tags.is_empty() {
        out.retain(|s| s.tags.iter().any(|t| tags.contains(t)));
    }
    Ok(out)
}

/// `NAME@MODE` for a scenario `NAME` of `all` and a mode it can run in: that scenario in
/// the mode; `None` when `NAME` is not a scenario (or `MODE` is a zdtm flavor's `@ns`).
fn in_named_mode(all: &[Scenario], name: &str) -> Result<Option<Scenario>, ScenarioError> {
    let Some((base, mode)) = name.rsplit_once('@') else {
        return Ok(None);
    };
    let Some(base) = all.iter().find(|s| s.name == base) else {
        return Ok(None);
    };
    if ZdtmFlavor::parse(mode).is_some() {
        return Ok(None);
    }
    let m = Mode::parse(mode).map_err(|e| ScenarioError::Mode {
        name: name.to_string(),
        message: e.to_string(),
    })?;
    base.in_mode(m)
        .map(Some)
        .ok_or_else(|| ScenarioError::Mode {
            name: name.to_string(),
            message: format!(
                "`{}` cannot run in mode `{m}` (lxc-checkpoint and the OCI runtimes have \
             plain, leave-running and pre-dump; an external test runs its own tools)",
                base.name
            ),
        })
}

/// Every scenario of `all` that is not itself a mode, in each of `modes` it can run in (the
/// catalog's own variant where it has one).
pub fn in_modes(all: &[Scenario], modes: &[Mode]) -> Vec<Scenario> {
    let mut out = Vec::new();
    for base in all.iter().filter(|s| s.mode.is_plain()) {
        for &m in modes {
            let own = all
                .iter()
                .find(|s| s.mode == m && s.name == format!("{}@{m}", base.name));
            if let Some(s) = own.cloned().or_else(|| base.in_mode(m)) {
                out.push(s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("scenarios/demo.toml"), text).map(|mut v| v.remove(0))
    }

    #[test]
    fn a_scenario_in_a_mode_by_name_or_for_all() {
        let mut all = Scenario::parse(
            Path::new("s/f.toml"),
            "description = \"d\"\nworkload = \"fileio1\"\nvariants = [\"pre-dump\"]\n",
        )
        .unwrap();
        let mut lxc = all[0].clone();
        lxc.name = "c".into();
        lxc.backend = Backend::Lxc;
        all.push(lxc);
        let names = |v: &[Scenario]| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let picked = select(&all, &["f@iters=2+lazy".into()], &[]).unwrap();
        assert_eq!(names(&picked), ["f@iters=2+lazy"]);
        assert_eq!(picked[0].iterations, 2);
        assert_eq!(
            picked[0]
                .steps
                .iter()
                .filter(|p| p.kind == StepKind::Restore)
                .count(),
            2
        );
        assert!(picked[0].tags.contains(&"mode-lazy".to_string()));
        for (name, want) in [
            ("f@lazyy", "unknown mode `lazyy`"),
            ("c@lazy", "`c` cannot run in mode `lazy`"),
            ("nope@lazy", "unknown scenario `nope@lazy`"),
        ] {
            let err = select(&all, &[name.into()], &[]).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
        let m = |s: &str| Mode::parse(s).unwrap();
        let every = in_modes(&all, &[m("plain"), m("pre-dump"), m("rpc")]);
        assert_eq!(
            names(&every),
            ["f", "f@pre-dump", "f@rpc", "c", "c@pre-dump"]
        );
    }

    #[test]
    fn zdtm_tests_leave_out_what_zdtm_py_leaves_out() {
        let mut sc = parse("description = \"d\"\nworkload = \"fileio1\"\n").unwrap();
        sc.target = Target::Zdtm(ZdtmTest {
            flags: vec!["nolazy".into(), "reqrst".into()],
            ..ZdtmTest::sample("static/x", &[])
        });
        let why = |mode: &str| match sc.in_mode(Mode::parse(mode).unwrap()).unwrap().target {
            Target::Zdtm(z) => z.unsupported,
            _ => None,
        };
        assert!(why("lazy")
            .unwrap()
            .contains("lazy pages are not supported"));
        assert!(why("leave-running")
            .unwrap()
            .contains("restore stage is required"));
        assert_eq!(why("pre=2+rpc"), None);
        let stop = sc.in_mode(Mode::parse("rpc+stop").unwrap()).unwrap();
        assert_eq!(stop.requires.min_criu.as_deref(), Some("3.18"));
    }

    #[test]
    fn variants_are_generated_from_one_file() {
        let all = Scenario::parse(
            Path::new("s/mem.toml"),
            "description = \"d\"\nworkload = \"fileio1\"\nvariants = [\"leave-running\", \"pre-dump\"]\ncriu-args = [\"--file-locks\"]\n",
        )
        .unwrap();
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["mem", "mem@leave-running", "mem@pre-dump"]);
        assert!(!all[1].steps.iter().any(|p| p.kind == StepKind::Restore));
        assert_eq!(all[2].mode, Mode::parse("pre-dump").unwrap());
        assert_eq!(all[2].dump_args, ["--file-locks"]);
        assert_eq!(all[2].restore_args, ["--file-locks"]);
    }

    #[test]
    fn visible_state_relaxations_are_checked_and_kept_by_variants() {
        let all = Scenario::parse(
            Path::new("s/v.toml"),
            "description = \"d\"\nworkload = \"fileio1\"\nvariants = [\"leave-running\", \"pre-dump\"]\n[expect]\noutcome = \"fail\"\ncontains = \"x\"\nvariants = [\"plain\"]\nvisible-state-ignore = [{ item = \"fds.pos\", reason = \"it appends\" }]\n",
        )
        .unwrap();
        // No restore: only the relaxations hold.
        assert_eq!(all[1].expect.outcome, ExpectedOutcome::Pass);
        assert_eq!(all[1].expect.visible_state_ignore[0].item, "fds.pos");
        // `plain` stands for every mode that restores.
        assert_eq!(all[2].expect.outcome, ExpectedOutcome::Fail);
        let lazy = all[0].in_mode(Mode::parse("lazy+rpc").unwrap()).unwrap();
        assert_eq!(lazy.expect.outcome, ExpectedOutcome::Fail);
        assert_eq!(lazy.name, "v@lazy+rpc");
        assert!(lazy
            .requires
            .criu_features
            .contains(&"uffd-noncoop".to_string()));
        let err = parse(
            "description = \"d\"\nworkload = \"fileio1\"\n[expect]\nvisible-state-ignore = [{ item = \"memory\", reason = \"r\" }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("visible-state-ignore") && err.contains("unknown item `memory`"),
            "{err}"
        );
    }

    #[test]
    fn requires_and_expect_parse() {
        let s = parse(
            "description = \"d\"\nworkload = \"fileio1\"\n[requires]\nkernel-config = [\"CONFIG_X\"]\nmin-criu = \"3.16\"\n[expect]\noutcome = \"fail\"\nclass = \"pid-collision\"\nerrno = \"EEXIST\"\n",
        )
        .unwrap();
        assert_eq!(s.requires.kernel_config, ["CONFIG_X"]);
        assert_eq!(s.expect.outcome, ExpectedOutcome::Fail);
        assert_eq!(s.expect.errno.as_deref(), Some("EEXIST"));
        let err =
            parse("description = \"d\"\nworkload = \"fileio1\"\n[requires]\nmin-kernal = \"5\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("min-kernal") && err.contains("line 4"),
            "{err}"
        );
    }

    /// An expected failure bounded by criu's version holds below the bound (packages'
    /// Debian versions included) and is an expected pass above it, its relaxations kept.
    #[test]
    fn expectations_bounded_by_the_criu_that_mended_them() {
        let s = parse(
            "description = \"d\"\nworkload = \"fileio1\"\n[expect]\noutcome = \"fail\"\nclass = \"workload-state\"\ncriu = \"<3.19\"\nfixed-by = \"a605cc9f3 prctl: Migrate prctl(NO_NEW_PRIVS) setting.\"\nvisible-state-ignore = [{ item = \"fds.pos\", reason = \"r\" }]\n",
        )
        .unwrap();
        for old in ["3.17.1-2+deb12u2", "3.18"] {
            assert_eq!(s.expect.for_criu(Some(old)), s.expect, "{old}");
        }
        assert_eq!(s.expect.for_criu(None), s.expect);
        let newer = s.expect.for_criu(Some("4.1.1-1"));
        assert_eq!(newer.outcome, ExpectedOutcome::Pass);
        assert_eq!(newer.visible_state_ignore, s.expect.visible_state_ignore);
        assert!(newer.criu.is_none() && newer.class.is_none());
    }

    #[test]
    fn a_users_program() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("loop.sh"), "true").unwrap();
        let s = Scenario::parse(
            &t.path().join("mine.toml"),
            "description = \"d\"\n[program]\ncommand = [\"./loop.sh\"]\nfiles = [\"loop.sh\"]\nready = \"file:started\"\ncheck = [\"sh\", \"-c\", \"test -s out\"]\n",
        )
        .unwrap()
        .remove(0);
        let Target::Program(p) = &s.target else {
            panic!("not a program")
        };
        assert_eq!(p.files, [t.path().canonicalize().unwrap().join("loop.sh")]);
        assert_eq!(
            ready_spec(&p.ready).unwrap(),
            ReadySpec::File("started".into())
        );
        let err = Scenario::parse(
            Path::new("x.toml"),
            "description = \"d\"\n[program]\ncommand = [\"a\"]\nready = \"soon\"\ncheck = [\"true\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("program.ready"), "{err}");
    }

    #[test]
    fn a_desktop_seen_through_vnc() {
        let s = parse(
            "description = \"d\"\nworkload = \"vncdesk\"\nuserland-variant = \"vnc\"\n[vnc]\ntype-before = \"ihi{Escape}\"\nexpect-file = \"notes.txt\"\nexpect-text = \"hi\\n\"\n",
        )
        .unwrap();
        assert_eq!(s.userland_variant.as_deref(), Some("vnc"));
        let v = s.vnc.unwrap();
        assert_eq!(v.socket, PathBuf::from("vnc.sock"));
        assert_eq!(v.max_diff_pixels, 200);
        assert_eq!(v.expect_text.as_deref(), Some("hi\n"));
    }

    #[rstest]
    #[case::unknown_variant(
        "userland-variant = \"gnome\"\n",
        "unknown userland variant `gnome`; known: vnc"
    )]
    #[case::bad_key("[vnc]\ntype-before = \"{Esc}\"\n", "vnc.type-before")]
    #[case::file_without_text(
        "[vnc]\nexpect-file = \"n.txt\"\n",
        "give `expect-file` and `expect-text` together"
    )]
    #[case::unknown_field("[vnc]\nscreen = 1\n", "screen")]
    fn bad_desktop_settings_are_named(#[case] extra: &str, #[case] want: &str) {
        let err = parse(&format!(
            "description = \"d\"\nworkload = \"vncdesk\"\n{extra}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains(want), "{err}");
    }

    #[test]
    fn an_external_test_takes_no_vnc() {
        let err = parse("description = \"d\"\n[external]\ncommand = [\"true\"]\n[vnc]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `[vnc]`"), "{err}");
    }

    #[test]
    fn defaults_expand_to_the_five_steps() {
        let s = parse("description = \"d\"\nworkload = \"counterloop\"\n").unwrap();
        assert_eq!(s.name, "demo");
        let kinds: Vec<_> = s.steps.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["start", "wait-ready", "checkpoint", "restore", "verify"]
        );
        assert_eq!(s.timeout_s, DEFAULT_TIMEOUT_S);
    }

    #[test]
    fn iterations_repeat_checkpoint_and_restore() {
        let s = parse("description = \"d\"\nworkload = \"fileio1\"\niterations = 3\n").unwrap();
        let got: Vec<_> = s
            .steps
            .iter()
            .map(|p| format!("{}#{}", p.kind.as_str(), p.iteration))
            .collect();
        assert_eq!(
            got,
            [
                "start#1",
                "wait-ready#1",
                "checkpoint#1",
                "restore#1",
                "checkpoint#2",
                "restore#2",
                "checkpoint#3",
                "restore#3",
                "verify#3"
            ]
        );
    }

    #[rstest]
    #[case::unknown_key("description = \"d\"\nworkload = \"fileio1\"\nbogus = 1\n", "line 3")]
    #[case::unknown_key_named("description = \"d\"\nworkload = \"fileio1\"\nbogus = 1\n", "bogus")]
    #[case::wrong_type(
        "description = \"d\"\nworkload = \"fileio1\"\niterations = \"x\"\n",
        "line 3"
    )]
    #[case::missing_workload("description = \"d\"\n", "missing: give `workload`")]
    #[case::lxc_without_backend(
        "description = \"d\"\nworkload = \"fileio1\"\n[lxc]\nnetwork = \"veth\"\n",
        "`[lxc]` needs `backend"
    )]
    #[case::lxc_unknown_network(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\nnetwork = \"macvlan\"\n",
        "macvlan"
    )]
    #[case::lxc_execute_with_init(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\nmode = \"execute\"\ninit = \"busybox\"\n",
        "lxc.init"
    )]
    #[case::lxc_liblxc_is_not_a_choice(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\ninit = \"liblxc\"\n",
        "liblxc"
    )]
    #[case::lxc_with_criu_args(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\ncriu-args = [\"--shell-job\"]\n",
        "lxc-checkpoint chooses"
    )]
    #[case::oci_without_backend(
        "description = \"d\"\nworkload = \"fileio1\"\n[oci]\nkeep = true\n",
        "`[oci]` needs"
    )]
    #[case::oci_podman_key_with_runc_alone(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"runc\"\n[oci]\nruntime = \"crun\"\n",
        "oci.runtime"
    )]
    #[case::oci_new_name_without_export(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"podman\"\n[oci]\nnew-name = true\n",
        "go with `export`"
    )]
    #[case::oci_unknown_compression(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"podman\"\n[oci]\nexport = \"xz\"\n",
        "xz"
    )]
    #[case::oci_with_criu_args(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"crun\"\ndump-args = [\"--shell-job\"]\n",
        "the OCI runtime chooses"
    )]
    #[case::oci_in_another_variant(
        "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"podman\"\nuserland-variant = \"vnc\"\n",
        "runs in the `oci` userland"
    )]
    #[case::external_with_steps(
        "description = \"d\"\nsteps = [\"start\"]\n[external]\ncommand = [\"true\"]\n",
        "no `steps`"
    )]
    #[case::external_with_between(
        "description = \"d\"\nbetween = [[\"true\"]]\n[external]\ncommand = [\"true\"]\n",
        "nothing runs between"
    )]
    #[case::external_and_workload(
        "description = \"d\"\nworkload = \"fileio1\"\n[external]\ncommand = [\"true\"]\n",
        "give one of"
    )]
    #[case::run_step_outside_external(
        "description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"run\"]\n",
        "`run`"
    )]
    #[case::unknown_workload(
        "description = \"d\"\nworkload = \"nope\"\n",
        "unknown workload `nope`"
    )]
    #[case::zero_iterations(
        "description = \"d\"\nworkload = \"fileio1\"\niterations = 0\n",
        "`iterations`"
    )]
    #[case::bad_order("description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"restore\", \"checkpoint\"]\n", "order")]
    #[case::restore_without_checkpoint("description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"wait-ready\", \"restore\"]\n", "needs a `checkpoint`")]
    #[case::unknown_step(
        "description = \"d\"\nworkload = \"fileio1\"\nsteps = [\"start\", \"dance\"]\n",
        "dance"
    )]
    #[case::bad_criu_bound(
        "description = \"d\"\nworkload = \"fileio1\"\n[expect]\noutcome = \"fail\"\ncriu = \"3.19\"\n",
        "expect.criu"
    )]
    #[case::criu_bound_on_a_pass(
        "description = \"d\"\nworkload = \"fileio1\"\n[expect]\ncriu = \"<3.19\"\n",
        "bounds an expected failure"
    )]
    #[case::fixed_by_alone(
        "description = \"d\"\nworkload = \"fileio1\"\n[expect]\noutcome = \"fail\"\nfixed-by = \"a605cc9f3\"\n",
        "give `criu` too"
    )]
    fn bad_files_name_the_file_and_the_problem(#[case] text: &str, #[case] needle: &str) {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("scenarios/demo.toml"), "{err}");
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }

    #[test]
    fn lxc_options_and_their_defaults() {
        let s = parse("description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n").unwrap();
        let o = s.lxc.as_ref().unwrap();
        assert_eq!(
            (o.mode, o.pid1(), o.network, o.pause_after_restore),
            (LxcMode::Start, LxcInit::LxcInit, LxcNetwork::Empty, false)
        );
        let s = parse(
            "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\nmode = \"execute\"\nnetwork = \"veth\"\npause-after-restore = true\n",
        )
        .unwrap();
        let o = s.lxc.as_ref().unwrap();
        assert_eq!((o.pid1(), o.network), (LxcInit::Liblxc, LxcNetwork::Veth));
        assert!(o.pause_after_restore);
        let s = parse(
            "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"lxc\"\n[lxc]\ninit = \"busybox\"\n",
        )
        .unwrap();
        assert_eq!(s.lxc.unwrap().pid1(), LxcInit::Busybox);
        // A criu scenario has no container.
        assert_eq!(
            parse("description = \"d\"\nworkload = \"fileio1\"\n")
                .unwrap()
                .lxc,
            None
        );
    }

    #[test]
    fn oci_scenarios_run_in_the_oci_variant_in_the_modes_their_tools_have() {
        let s =
            parse("description = \"d\"\nworkload = \"fileio1\"\nbackend = \"podman\"\n").unwrap();
        assert_eq!(s.userland_variant.as_deref(), Some("oci"));
        let o = s.oci.clone().unwrap();
        assert_eq!(o.runtime_of(Backend::Podman), OciRuntime::Runc);
        assert_eq!(o.runtime_of(Backend::Crun), OciRuntime::Crun);
        assert!(s.in_mode("leave-running".parse().unwrap()).is_some());
        assert!(s.in_mode("pre-dump".parse().unwrap()).is_some());
        assert!(s.in_mode("lazy".parse().unwrap()).is_none());
        let s = parse(
            "description = \"d\"\nworkload = \"fileio1\"\nbackend = \"podman\"\n[oci]\nruntime = \"crun\"\nexport = \"zstd\"\nnew-name = true\n",
        )
        .unwrap();
        let o = s.oci.unwrap();
        assert_eq!(o.runtime_of(Backend::Podman), OciRuntime::Crun);
        assert_eq!(o.export.map(Compression::extension), Some("tar.zst"));
        assert!(crate::model::migration::unmovable(
            &parse("description = \"d\"\nworkload = \"fileio1\"\nbackend = \"runc\"\n").unwrap()
        )
        .unwrap()
        .contains("Runc scenario does not move"));
    }

    #[test]
    fn an_external_test_is_one_run_step() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("fix.sh"), "true").unwrap();
        let s = Scenario::parse(
            &t.path().join("own.toml"),
            "description = \"d\"\ntimeout-s = 400\n[external]\ncommand = [\"lxc-test-checkpoint-restore\"]\nfiles = [\"fix.sh\"]\ncollect = [\"logs/dump.log\"]\n",
        )
        .unwrap()
        .remove(0);
        let Target::External(e) = &s.target else {
            panic!("not external")
        };
        assert_eq!(e.files, [t.path().canonicalize().unwrap().join("fix.sh")]);
        assert_eq!(e.collect, [PathBuf::from("logs/dump.log")]);
        assert_eq!(s.what(), "lxc-test-checkpoint-restore");
        let steps: Vec<_> = s.steps.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(steps, ["run"]);
        assert_eq!(s.timeout_s, 400);
    }

    /// A scenario from somewhere else cannot name a host file outside its folder, nor
    /// collect a guest file outside its working directory.
    #[rstest]
    #[case::dotdot("[program]\ncommand = [\"true\"]\nfiles = [\"../../../../etc/shadow\"]\ncheck = [\"true\"]\n", "program.files", "`..`")]
    #[case::absolute(
        "[program]\ncommand = [\"true\"]\nfiles = [\"/etc/shadow\"]\ncheck = [\"true\"]\n",
        "program.files",
        "absolute"
    )]
    #[case::symlink(
        "[program]\ncommand = [\"true\"]\nfiles = [\"shadow\"]\ncheck = [\"true\"]\n",
        "program.files",
        "through a symlink"
    )]
    #[case::missing(
        "[program]\ncommand = [\"true\"]\nfiles = [\"nope.sh\"]\ncheck = [\"true\"]\n",
        "program.files",
        "No such file"
    )]
    #[case::external_files(
        "[external]\ncommand = [\"true\"]\nfiles = [\"../x.sh\"]\n",
        "external.files",
        "`..`"
    )]
    #[case::external_symlink(
        "[external]\ncommand = [\"true\"]\nfiles = [\"shadow\"]\n",
        "external.files",
        "through a symlink"
    )]
    #[case::collect_absolute(
        "[external]\ncommand = [\"true\"]\ncollect = [\"/etc/shadow\"]\n",
        "external.collect",
        "absolute"
    )]
    #[case::collect_dotdot(
        "[external]\ncommand = [\"true\"]\ncollect = [\"../../etc/shadow\"]\n",
        "external.collect",
        "`..`"
    )]
    fn paths_that_lead_out_are_refused_at_load(
        #[case] body: &str,
        #[case] key: &str,
        #[case] needle: &str,
    ) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("scen");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(t.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink("../secret", dir.join("shadow")).unwrap();
        std::fs::write(
            dir.join("mine.toml"),
            format!("description = \"d\"\n{body}"),
        )
        .unwrap();
        let err = load_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("mine.toml"), "{err}");
        assert!(err.contains(key), "`{key}` not in {err}");
        assert!(err.contains(needle), "`{needle}` not in {err}");
    }

    #[test]
    fn selection_by_name_and_tag() {
        let mk = |name: &str, tags: &[&str]| {
            let mut s = parse("description = \"d\"\nworkload = \"fileio1\"\n").unwrap();
            s.name = name.into();
            s.tags = tags.iter().map(|t| t.to_string()).collect();
            s
        };
        let all = vec![
            mk("a", &["smoke"]),
            mk("b", &[]),
            mk("c", &["smoke", "slow"]),
        ];
        let names = |v: Vec<Scenario>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(select(&all, &[], &[]).unwrap()), ["a", "b", "c"]);
        assert_eq!(
            names(select(&all, &[], &["smoke".into()]).unwrap()),
            ["a", "c"]
        );
        assert_eq!(
            names(select(&all, &["c".into(), "a".into()], &[]).unwrap()),
            ["c", "a"]
        );
        let err = select(&all, &["zz".into()], &[]).unwrap_err().to_string();
        assert_eq!(err, "unknown scenario `zz`; known scenarios: a, b, c");
    }

    /// Mutated scenario files (every truncation, random byte changes) give errors, never a
    /// panic.
    #[test]
    fn mutated_files_never_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let alphabet = b"=[]\"#\n ,.-_az09{}'\\";
        for entry in std::fs::read_dir(&dir).unwrap().flatten().take(20) {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let bytes = text.as_bytes();
            for cut in 0..bytes.len() {
                let t = String::from_utf8_lossy(&bytes[..cut]);
                let _ = Scenario::parse(Path::new("x.toml"), &t);
            }
            for _ in 0..300 {
                let mut b = bytes.to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = next() % b.len().max(1);
                    if !b.is_empty() {
                        b[at] = alphabet[next() % alphabet.len()];
                    }
                }
                let _ = Scenario::parse(Path::new("x.toml"), &String::from_utf8_lossy(&b));
            }
        }
    }

    #[test]
    fn the_shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let all = load_dir(&dir).unwrap();
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        for want in ["counterloop", "fileio1", "ptree1"] {
            assert!(names.contains(&want), "{names:?}");
        }
    }
}
